/**
 * A named group chat across node processes on a private nats-server and Postgres: the node hosting it
 * is killed (kill -9) mid-chat, and the chat continues on the survivor from its journal: every turn
 * recorded before the kill stays as it was, no turn number is taken twice, and it runs to its end.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { ChatStatus, ChatTurn } from '../../index.js';
import { NatsServer } from '../harness/nats.js';
import { NodeProcess } from '../harness/node-process.js';
import { PostgresServer } from '../harness/postgres.js';

const SCRIPT = join(import.meta.dirname, 'chat-node.ts');
const HEARTBEAT_MS = 300;

let nats: NatsServer;
let postgres: PostgresServer;
const nodes: NodeProcess[] = [];

beforeAll(async () => {
  [nats, postgres] = await Promise.all([NatsServer.start(), PostgresServer.start()]);
}, 60_000);
afterAll(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
  await Promise.all([nats?.dispose(), postgres?.dispose()]);
});

it('continues a named chat on a survivor from its journal after its node is killed mid-chat', async () => {
  const cluster = 'gchat';
  const ids = ['a', 'b'];
  const started = await Promise.all(
    ids.map((id) => NodeProcess.start(nats.url, cluster, id, HEARTBEAT_MS, postgres.url, SCRIPT)),
  );
  nodes.push(...started);
  await vi.waitFor(
    async () => {
      for (const node of started) {
        const members = await node.call<{ node: string; state: string }[]>({ cmd: 'members' });
        expect(members.filter((m) => m.state === 'up').map((m) => m.node)).toEqual(ids);
      }
    },
    { timeout: 15_000, interval: 50 },
  );
  const [a, b] = started as [NodeProcess, NodeProcess];
  await expect(
    a.call<ChatStatus>({ cmd: 'start', key: 'c1', task: 'plan the launch' }),
  ).resolves.toMatchObject({
    phase: 'running',
  });
  await vi.waitFor(
    async () =>
      expect((await a.call<ChatStatus>({ cmd: 'status', key: 'c1' })).turns).toBeGreaterThanOrEqual(6),
    { timeout: 15_000, interval: 20 },
  );
  const host = (await a.call<string[]>({ cmd: 'activations' })).some((x) => x.endsWith('@chat/c1')) ? a : b;
  const survivor = host === a ? b : a;
  const before = await survivor.call<ChatTurn[]>({ cmd: 'transcript', key: 'c1' });
  host.kill();
  // Asking the survivor (again and again) activates the chat there once the host is seen gone.
  const ended = await vi.waitFor(
    async () => {
      const status = await survivor.call<ChatStatus>({ cmd: 'status', key: 'c1' });
      expect(status.phase).toBe('ended');
      return status;
    },
    { timeout: 30_000, interval: 100 },
  );
  expect(ended).toMatchObject({ turns: 30, outcome: { reason: 'max-turns' } });
  expect((await survivor.call<string[]>({ cmd: 'activations' })).some((x) => x.endsWith('@chat/c1'))).toBe(
    true,
  );
  const after = await survivor.call<ChatTurn[]>({ cmd: 'transcript', key: 'c1' });
  expect(after.map((t) => t.turn)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  expect(after.map((t) => t.speaker)).toEqual(
    Array.from({ length: 30 }, (_, i) => ['ann', 'bob', 'cy'][i % 3]),
  );
  // What was recorded before the kill was not taken again: same answers, word for word.
  expect(after.slice(0, before.length)).toEqual(before);
  // Later turns were answered on the survivor.
  expect(after.at(-1)!.text.startsWith(`${survivor.node}#`)).toBe(true);
  expect(after.filter((t) => t.error !== undefined)).toEqual([]);
  // The journal holds one event per turn: started, 30 turns, ended.
  const db = new pg.Client({ connectionString: postgres.url });
  await db.connect();
  try {
    const rows = (
      await db.query<{ type: string; turn: number | null }>(
        `SELECT type, (data->>'turn')::int AS turn FROM gc_events WHERE stream_id = $1 ORDER BY version`,
        [`chat-${cluster}-c1`],
      )
    ).rows;
    expect(rows.map((r) => r.type)).toEqual(['started', ...Array(30).fill('turn'), 'ended']);
    expect(rows.filter((r) => r.type === 'turn').map((r) => r.turn)).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
  } finally {
    await db.end();
  }
}, 90_000);
