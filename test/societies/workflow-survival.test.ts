/**
 * A workflow survives a kill -9 of the node that runs it: two node processes on a private
 * nats-server and Postgres; the node hosting a 12-step workflow is killed in the middle of it, and
 * the workflow finishes on the survivor from its events. The steps recorded before the kill do not
 * run again; at most the one in flight runs again, with the same idempotency key; the output equals
 * an uninterrupted run's.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { postgresJournal, type SqlJournal } from '../../index.js';
import { stopChild } from '../harness/child.js';
import { NatsServer } from '../harness/nats.js';
import { PostgresServer } from '../harness/postgres.js';

const SCRIPT = join(import.meta.dirname, 'workflow-node.ts');
const HEARTBEAT_MS = 300;
const STEPS = 12;

/** A workflow node process, driven over IPC like test/harness/node-process.ts. */
class WorkflowNode {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(
    readonly node: string,
    readonly child: ChildProcess,
  ) {
    child.on('message', (m: { id?: number; ok?: boolean; value?: unknown; error?: string }) => {
      if (m.id === undefined) return;
      const waiter = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.ok) waiter?.resolve(m.value);
      else waiter?.reject(new Error(m.error));
    });
    child.on('exit', () => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`node ${node} exited`));
      this.waiting.clear();
    });
  }

  static async start(nats: string, cluster: string, node: string, postgres: string): Promise<WorkflowNode> {
    const child = fork(SCRIPT, [nats, cluster, node, String(HEARTBEAT_MS), postgres], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`node ${node} exited with ${code} while starting`)));
    });
    return new WorkflowNode(node, child);
  }

  call<T>(command: Record<string, unknown>): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...command, id });
    });
  }
}

let nats: NatsServer;
let postgres: PostgresServer;
let journal: SqlJournal;
const nodes: WorkflowNode[] = [];

beforeAll(async () => {
  [nats, postgres] = await Promise.all([NatsServer.start(), PostgresServer.start()]);
  journal = await postgresJournal({ connectionString: postgres.url, prefix: 'wfnode_' });
}, 60_000);
afterAll(async () => {
  await Promise.all(nodes.map((n) => stopChild(n.child, 'SIGTERM')));
  await journal?.close();
  await Promise.all([nats?.dispose(), postgres?.dispose()]);
});

interface Ran {
  step: number;
  node: string;
  key: string;
}

it('finishes a workflow on the survivor after kill -9 of its node, without running recorded steps again', async () => {
  const started = await Promise.all(
    ['a', 'b'].map((n) => WorkflowNode.start(nats.url, 'wf', n, postgres.url)),
  );
  nodes.push(...started);
  await vi.waitFor(
    async () => {
      for (const n of started) {
        const members = await n.call<{ node: string; state: string }[]>({ cmd: 'members' });
        expect(members.filter((m) => m.state === 'up').map((m) => m.node)).toEqual(['a', 'b']);
      }
    },
    { timeout: 15_000, interval: 50 },
  );
  await started[0]!.call({ cmd: 'start', workflow: 'job-1', base: 1 });
  const runs = async () => (await journal.readStream('runs-job-1')).map((e) => e.data as Ran);
  await vi.waitFor(async () => expect((await runs()).length).toBeGreaterThanOrEqual(4), {
    timeout: 15_000,
    interval: 20,
  });
  const hostName = (await runs())[0]!.node;
  const victim = started.find((n) => n.node === hostName)!;
  const survivor = started.find((n) => n.node !== hostName)!;
  victim.child.kill('SIGKILL');
  await new Promise<void>((resolve) => victim.child.once('exit', () => resolve()));

  const outcome = await survivor.call<{ ok: boolean; output?: number }>({ cmd: 'result', workflow: 'job-1' });
  // 1, then x * 2 + 1 at each of the 12 steps: 2^13 - 1.
  expect(outcome).toEqual({ ok: true, output: 2 ** (STEPS + 1) - 1 });

  const all = await runs();
  const completed = (await journal.readStream('workflow-job-1'))
    .filter((e) => e.type === 'step-completed')
    .map((e) => (e.data as { step: string }).step);
  expect(completed).toEqual(Array.from({ length: STEPS }, (_, i) => `step-${i}`));
  const onVictim = all.filter((r) => r.node === hostName).map((r) => r.step);
  const onSurvivor = all.filter((r) => r.node !== hostName).map((r) => r.step);
  expect(onVictim.length).toBeGreaterThanOrEqual(4);
  expect(onSurvivor.length).toBeGreaterThan(0);
  // The survivor begins where the victim was: at its last step (in flight: run again) or the next.
  const last = onVictim.at(-1)!;
  expect([last, last + 1]).toContain(onSurvivor[0]);
  expect(onSurvivor).toEqual(Array.from({ length: STEPS - onSurvivor[0]! }, (_, i) => onSurvivor[0]! + i));
  // Each step ran once, but the one in flight at the kill, which ran again with the same key.
  const twice = all.filter((r, i) => all.findIndex((o) => o.step === r.step) !== i);
  expect(twice.length).toBeLessThanOrEqual(1);
  for (const again of twice) expect(again.key).toBe(`job-1/step-${again.step}`);
}, 90_000);
