/**
 * Remote cases: this process is one node, bench/remote-peer.ts (a child process) the other, over a
 * private nats-server. The baseline does the same work with nats.js alone (publish/subscribe and
 * request/reply of the same bytes), in the same two processes, interleaved round by round.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type ActorSystem, behavior, createNode, natsTransport } from '../index.js';
import { NatsServer } from '../test/harness/nats.js';
import { NodeProcess } from '../test/harness/node-process.js';
import { Peer, Waiter } from './remote-protocol.js';

export interface BenchResult {
  case: string;
  unit: string;
  troupe: number;
  baseline: string;
  baselineValue: number;
  ratio: number;
  goal: string;
  pass: boolean;
}

export interface BenchCase {
  name: string;
  unit: string;
  goal: string;
  run: () => Promise<BenchResult>;
}

export interface BenchTools {
  readonly quick: boolean;
  /**
   * Heap bytes per item of what `spawnAll` makes (`n` of them, kept alive by `refs`), after a full
   * GC on either side and a few turns for them to start; then `teardown`.
   */
  heapPerItem(
    n: number,
    spawnAll: () => { refs: readonly unknown[]; teardown: () => Promise<void> },
  ): Promise<number>;
  sideBySide(
    a: () => Promise<number>,
    b: () => Promise<number>,
    n?: number,
    forceGc?: boolean,
  ): Promise<[number, number, (readonly [number, number])[]]>;
  result(
    name: string,
    unit: string,
    troupe: number,
    baseline: string,
    baselineValue: number,
    higherIsBetter: boolean,
    pairs: readonly (readonly [number, number])[],
    goal: string,
    pass: (r: { troupe: number; ratio: number }) => boolean,
  ): BenchResult;
}

interface Remote {
  server: NatsServer;
  peer: ChildProcess;
  system: ActorSystem;
  nc: NatsConnection;
  /** Resolved by the waiter actor when the peer says a burst has arrived. */
  waitDone(): Promise<void>;
}

let remote: Promise<Remote> | undefined;

/** The server, the peer process and this node, made on first use and shared by the remote cases. */
function setUp(): Promise<Remote> {
  remote ??= (async () => {
    const server = await NatsServer.start();
    const peer = fork(join(import.meta.dirname, 'remote-peer.ts'), [server.url], {
      // TROUPE_PROFILE_PEER=<dir> writes a CPU profile of the peer, to see where its time goes.
      execArgv: [
        ...(process.env.TROUPE_PROFILE_PEER
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.TROUPE_PROFILE_PEER}`]
          : []),
        '--import',
        'tsx',
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await new Promise<void>((resolve, reject) => {
      peer.once('message', () => resolve());
      peer.once('exit', (code) => reject(new Error(`the bench peer exited with ${code}`)));
    });
    const system = await createNode({
      name: 'bench',
      node: 'main',
      transport: await natsTransport({ servers: server.url }),
      devChecks: false,
      mailbox: { capacity: 1_000_000 },
      deadLetterLog: () => {},
    });
    let resolveDone: () => void = () => {};
    system.spawn(
      behavior({
        protocols: [Waiter],
        handlers: {
          done: () => resolveDone(),
        },
      }),
      { name: 'waiter' },
    );
    const nc = await connect({ servers: server.url });
    return {
      server,
      peer,
      system,
      nc,
      waitDone: () =>
        new Promise<void>((resolve) => {
          resolveDone = resolve;
        }),
    };
  })();
  return remote;
}

/** Stops the peer, this node and the server, if the remote cases ran. */
export async function tearDownRemote(): Promise<void> {
  if (remote === undefined) return;
  const r = await remote;
  const exited = new Promise((resolve) => r.peer.once('exit', resolve));
  r.peer.send('exit');
  await exited;
  await r.nc.close();
  await r.system.close();
  await r.server.dispose();
}

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const BODY = { p: 'x'.repeat(56) };
const BYTES = new TextEncoder().encode(JSON.stringify(BODY));
if (BYTES.length !== 64) throw new Error('the remote bodies must be 64 bytes');

export function remoteCases(tools: BenchTools): BenchCase[] {
  const { quick } = tools;
  // Ten rounds, five blocks (see sideBySide in main.ts): these cases sit near their goals.
  const rounds = quick ? 1 : 10;
  /** Asks to the peer's echo, `inFlight` at a time, against nats.js request/reply doing the same. */
  const echoCase = (name: string, unit: string, inFlight: number, total: number, min: number): BenchCase => ({
    name,
    unit,
    goal: `ratio >= ${min}`,
    async run() {
      const r = await setUp();
      const echo = r.system.ref('troupe://bench/peer/sink', Peer);
      const measure = async (one: () => Promise<unknown>) => {
        let next = 0;
        const start = performance.now();
        const worker = async () => {
          while (next < total) {
            next++;
            await one();
          }
        };
        await Promise.all(Array.from({ length: inFlight }, worker));
        return total / ((performance.now() - start) / 1000);
      };
      const [t, b, pairs] = await tools.sideBySide(
        () => measure(() => echo.ask('echo', BODY)),
        () => measure(() => r.nc.request('raw.echo', BYTES, { timeout: 5000 })),
        rounds,
      );
      return tools.result(
        name,
        unit,
        t,
        'nats.js request/reply',
        b,
        true,
        pairs,
        this.goal,
        (x) => x.ratio >= min,
      );
    },
  });
  return [
    {
      name: 'remote.tell',
      unit: 'msg/s',
      goal: 'ratio >= 0.8',
      async run() {
        const r = await setUp();
        const sink = r.system.ref('troupe://bench/peer/sink', Peer);
        const total = quick ? 20_000 : 200_000;
        const chunk = 1000;
        const troupe = async () => {
          await sink.ask('arm', { n: total, notify: 'troupe://bench/main/waiter' });
          const done = r.waitDone();
          const start = performance.now();
          for (let sent = 0; sent < total; sent += chunk) {
            for (let i = 0; i < chunk; i++) sink.tell('hit', BODY);
            await yieldTurn();
          }
          await done;
          return total / ((performance.now() - start) / 1000);
        };
        const raw = async () => {
          await r.nc.request('raw.arm', String(total), { timeout: 5000 });
          const done = new Promise<void>((resolve) => {
            r.nc.subscribe('raw.done', { max: 1, callback: () => resolve() });
          });
          await r.nc.flush();
          const start = performance.now();
          for (let sent = 0; sent < total; sent += chunk) {
            for (let i = 0; i < chunk; i++) r.nc.publish('raw.tell', BYTES);
            await yieldTurn();
          }
          await done;
          return total / ((performance.now() - start) / 1000);
        };
        const [t, b, pairs] = await tools.sideBySide(troupe, raw, rounds);
        return tools.result(
          this.name,
          this.unit,
          t,
          'nats.js pub/sub',
          b,
          true,
          pairs,
          this.goal,
          (x) => x.ratio >= 0.8,
        );
      },
    },
    echoCase('remote.ask.256-in-flight', 'asks/s', 256, quick ? 5_000 : 50_000, 3),
    echoCase('remote.ask.sequential', 'round trips/s', 1, quick ? 500 : 5_000, 1),
    {
      name: 'cluster.failover',
      unit: 'ms',
      goal: 'reported',
      async run() {
        const r = await setUp();
        // Three node processes with the default failure detection: a heartbeat a second, down after
        // three missed. kill -9 the node hosting a named actor, then ask it through a survivor until
        // a survivor's activation answers.
        const heartbeatMs = 1000;
        const detection = heartbeatMs * 3;
        const times: number[] = [];
        for (let round = 0; round < (quick ? 1 : 3); round++) {
          const cluster = `failover${round}`;
          const ids = ['a', 'b', 'c'];
          const nodes = await Promise.all(
            ids.map((id) => NodeProcess.start(r.server.url, cluster, id, heartbeatMs)),
          );
          try {
            await new Promise((res) => setTimeout(res, 2 * heartbeatMs));
            const first = await nodes[0]!.call<{ node: string }>({ cmd: 'balance', key: 'k' });
            const victim = nodes.find((n) => n.node === first.node)!;
            const survivor = nodes.find((n) => n !== victim)!;
            const start = performance.now();
            victim.kill();
            for (;;) {
              try {
                const answer = await survivor.call<{ node: string }>({
                  cmd: 'balance',
                  key: 'k',
                  timeoutMs: 200,
                });
                if (answer.node !== victim.node) break;
              } catch {
                // Not yet: the victim is not declared down, or its actor has not moved yet.
              }
            }
            times.push(performance.now() - start);
          } finally {
            await Promise.all(nodes.map((n) => n.stop()));
          }
        }
        const ms = [...times].sort((x, y) => x - y)[Math.floor(times.length / 2)]!;
        return tools.result(
          this.name,
          this.unit,
          ms,
          'detection time configured',
          detection,
          false,
          [[ms, detection]],
          this.goal,
          () => true,
        );
      },
    },
  ];
}
