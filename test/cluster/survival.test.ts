/**
 * A node must survive its own actors and its dependencies: node processes on a private nats-server
 * and Postgres, persistent named `bank` accounts taking deposits with command ids, retried by the
 * client until acknowledged. Poison frames, garbage to fresh keys, a Postgres restart and a NATS
 * restart under load: every node keeps running, every acknowledged deposit is in the journal once,
 * and none is lost or applied twice.
 */
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { sleep } from '../../index.js';
import { NatsServer } from '../harness/nats.js';
import { NodeProcess } from '../harness/node-process.js';
import { PostgresServer } from '../harness/postgres.js';

const HEARTBEAT_MS = 300;

let nats: NatsServer;
let postgres: PostgresServer;
let client: NatsConnection | undefined;
const nodes: NodeProcess[] = [];

beforeAll(async () => {
  [nats, postgres] = await Promise.all([NatsServer.start(), PostgresServer.start()]);
}, 60_000);
afterAll(async () => {
  await Promise.all([nats?.dispose(), postgres?.dispose()]);
});
afterEach(async () => {
  await client?.close();
  client = undefined;
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
  if (!nats.running) await nats.restart();
  if (!postgres.running) await postgres.restart();
});

interface NodeEvent {
  type: string;
  /** The node that saw it. */
  by: string;
  node?: string;
  to?: string;
  reason?: string;
  address?: string;
  wall: number;
}

/** Starts node processes hosting `bank` on the private Postgres; resolves once each sees the others. */
async function startNodes(cluster: string, ids: string[]): Promise<NodeProcess[]> {
  const started = await Promise.all(
    ids.map((id) => NodeProcess.start(nats.url, cluster, id, HEARTBEAT_MS, postgres.url)),
  );
  nodes.push(...started);
  await vi.waitFor(
    async () => {
      for (const node of started) {
        const members = await node.call<{ node: string; state: string }[]>({ cmd: 'members' });
        const up = members.filter((m) => m.state === 'up').map((m) => m.node);
        expect(up, `${node.node}'s view`).toEqual([...ids].sort());
      }
    },
    { timeout: 15_000, interval: 50 },
  );
  return started;
}

/** Publishes one raw frame to a node's inbox, as anyone on the NATS could. */
async function publishRaw(cluster: string, node: string, frame: string): Promise<void> {
  client ??= await connect({ servers: nats.url });
  client.publish(`troupe.${cluster}.node.${node}`, new TextEncoder().encode(frame));
  await client.flush();
}

async function deadLetters(node: NodeProcess): Promise<NodeEvent[]> {
  return (await node.call<NodeEvent[]>({ cmd: 'events' })).filter((e) => e.type === 'dead-letter');
}

/** Every node still runs, and answers a plain ask and a persistent one. */
async function expectAllAnswering(all: NodeProcess[], cluster: string): Promise<void> {
  for (const node of all) {
    expect(node.alive, `${node.node} is alive`).toBe(true);
    expect(await node.call({ cmd: 'status' }), `${node.node}'s system`).toBe('running');
    for (const other of all) {
      await expect(
        node.call({ cmd: 'ask', to: `troupe://${cluster}/${other.node}/counter` }),
      ).resolves.toMatchObject({ node: other.node });
    }
    await expect(node.call({ cmd: 'bank-balance', key: `probe-${node.node}` })).resolves.toBeTypeOf('number');
  }
}

async function query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  const db = new pg.Client({ connectionString: postgres.url });
  await db.connect();
  try {
    return (await db.query(sql, params)).rows as T[];
  } finally {
    await db.end();
  }
}

describe('a node survives what arrives from outside', () => {
  it('refuses one poison frame per kind of bad key as a dead letter and keeps answering', async () => {
    const all = await startNodes('poison', ['a', 'b']);
    const badKeys = {
      long: 'k'.repeat(600),
      surrogate: 'lone\uD800surrogate',
      nul: 'nul\u0000key',
      control: 'bell\u0007key',
    };
    for (const node of all) {
      for (const [name, key] of Object.entries(badKeys)) {
        await publishRaw(
          'poison',
          node.node,
          JSON.stringify({
            id: `poison-${name}`,
            to: `troupe://poison/@bank/${key}`,
            type: 'np.bank.deposit',
            body: { amount: 1, commandId: `poison-${name}` },
          }),
        );
      }
    }
    for (const node of all) {
      await vi.waitFor(
        async () => {
          const refused = (await deadLetters(node)).filter((d) => d.to?.startsWith('troupe://poison/@bank/'));
          expect(refused.map((d) => d.reason)).toEqual(Object.keys(badKeys).map(() => 'malformed'));
        },
        { timeout: 10_000, interval: 50 },
      );
    }
    // The nodes go on: deposits through either of them, for a while after the frames.
    for (let i = 0; i < 20; i++) {
      const node = all[i % all.length]!;
      await expect(
        node.call({ cmd: 'bank-deposit', key: 'fine', amount: 1, commandId: `fine-${i}`, timeoutMs: 5000 }),
      ).resolves.toBe(i + 1);
    }
    await expectAllAnswering(all, 'poison');
    const activated = (await Promise.all(all.map((n) => n.call<NodeEvent[]>({ cmd: 'events' }))))
      .flat()
      .filter((e) => e.type === 'activation-started')
      .map((e) => e.address);
    expect(activated.filter((a) => a !== undefined && !/@bank\/(fine|probe-.)$/.test(a))).toEqual([]);
  }, 60_000);

  it('activates nothing, takes no lease and writes no fence for garbage to fresh keys', async () => {
    const all = await startNodes('garbage', ['a', 'b']);
    const garbage = [
      { type: 'np.bank.nothing', body: {} },
      { type: 'np.bank.deposit', body: { amount: -5, commandId: 'x' } },
      { type: 'np.bank.deposit', body: 'not an object' },
      { type: 'np.bank.deposit' },
      { type: 'np.counter.add', body: { by: 1 } },
      { type: 'deposit', body: { amount: 'many' } },
    ];
    let n = 0;
    for (const node of all) {
      for (const frame of garbage) {
        n++;
        await publishRaw(
          'garbage',
          node.node,
          JSON.stringify({
            id: `g-${n}`,
            to: `troupe://garbage/@bank/fresh-${n}`,
            replyTo: 'troupe://garbage/nobody/',
            correlationId: `g-${n}`,
            ...frame,
          }),
        );
      }
    }
    await vi.waitFor(
      async () => {
        const refused = (await Promise.all(all.map(deadLetters)))
          .flat()
          .filter((d) => d.to?.includes('/@bank/fresh-'));
        expect(new Set(refused.map((d) => d.to)).size).toBe(n);
      },
      { timeout: 10_000, interval: 50 },
    );
    const events = (await Promise.all(all.map((node) => node.call<NodeEvent[]>({ cmd: 'events' })))).flat();
    expect(events.filter((e) => e.type === 'activation-started')).toEqual([]);
    client ??= await connect({ servers: nats.url });
    const leases = await new Kvm(client).open('troupe_garbage_leases');
    const keys: string[] = [];
    for await (const key of await leases.keys()) keys.push(Buffer.from(key, 'base64url').toString());
    expect(keys.filter((k) => k.startsWith('bank/fresh-'))).toEqual([]);
    const fences = await query<{ stream_id: string }>(
      `SELECT stream_id FROM np_fences WHERE stream_id LIKE 'bank-garbage-fresh-%'`,
    );
    expect(fences).toEqual([]);
    await expectAllAnswering(all, 'garbage');
  }, 60_000);
});

/**
 * A client that keeps depositing to each key (one worker per key) through the nodes in turn, each
 * deposit retried with its command id until acknowledged, and records how long each key went
 * without an answer.
 */
class Depositor {
  readonly acked = new Map<string, { key: string; amount: number }>();
  /** Per key: the longest stretch from a failed attempt to the next acknowledgement, in ms. */
  readonly unavailableMs = new Map<string, number>();
  /** Per key: when it last answered. */
  readonly lastAnswer = new Map<string, number>();
  private stopped = false;
  private readonly workers: Promise<void>[] = [];

  constructor(
    private readonly all: NodeProcess[],
    private readonly keys: string[],
  ) {}

  start(): void {
    for (const key of this.keys) this.workers.push(this.work(key));
  }

  private async work(key: string): Promise<void> {
    for (let sequence = 0; !this.stopped; sequence++) {
      const commandId = `${key}-${sequence}`;
      const amount = 1 + (sequence % 5);
      let failingSince: number | undefined;
      // Retried until acknowledged, even after stop(): an unacknowledged deposit must not be left behind.
      for (let attempt = 0; ; attempt++) {
        const node = this.all[(sequence + attempt) % this.all.length]!;
        try {
          await node.call({ cmd: 'bank-deposit', key, amount, commandId, timeoutMs: 1000 });
          const now = Date.now();
          this.acked.set(commandId, { key, amount });
          this.lastAnswer.set(key, now);
          if (failingSince !== undefined) {
            this.unavailableMs.set(key, Math.max(now - failingSince, this.unavailableMs.get(key) ?? 0));
          }
          break;
        } catch {
          failingSince ??= Date.now();
          // The client's own pace between retries, not a wait for a result.
          await sleep(20);
        }
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }

  get longestUnavailableMs(): number {
    return Math.max(0, ...this.unavailableMs.values());
  }

  /** How long after `since` (a server coming back) the last key answered again. */
  async everyKeyAnsweredAfter(since: number): Promise<number> {
    await vi.waitFor(
      () => {
        for (const key of this.keys) expect(this.lastAnswer.get(key) ?? 0, key).toBeGreaterThan(since);
      },
      { timeout: 30_000, interval: 20 },
    );
    return Math.max(...this.keys.map((key) => this.lastAnswer.get(key)!)) - since;
  }
}

/**
 * The longest time, in ms of wall time, during which one key had a live activation on two nodes:
 * from each activation-started to its activation-stopped (or now), per node.
 */
function longestDoubleActivation(events: NodeEvent[]): number {
  const spans = new Map<string, { node: string; from: number; to: number }[]>();
  const open = new Map<string, number>();
  const close = (node: string, address: string, to: number) => {
    const from = open.get(`${node}|${address}`);
    if (from === undefined) return;
    open.delete(`${node}|${address}`);
    spans.set(address, [...(spans.get(address) ?? []), { node, from, to }]);
  };
  for (const e of [...events].sort((x, y) => x.wall - y.wall)) {
    if (e.address === undefined) continue;
    if (e.type === 'activation-started') open.set(`${e.by}|${e.address}`, e.wall);
    if (e.type === 'activation-stopped') close(e.by, e.address, e.wall);
  }
  for (const id of [...open.keys()]) {
    const [node, address] = [id.slice(0, id.indexOf('|')), id.slice(id.indexOf('|') + 1)];
    close(node, address, Date.now());
  }
  let longest = 0;
  for (const list of spans.values()) {
    for (const x of list) {
      for (const y of list) {
        if (x.node !== y.node) longest = Math.max(longest, Math.min(x.to, y.to) - Math.max(x.from, y.from));
      }
    }
  }
  return longest;
}

/** Every acknowledged deposit is in the journal exactly once, and each balance is their sum. */
async function expectJournalMatches(
  cluster: string,
  depositor: Depositor,
  keys: string[],
  all: NodeProcess[],
): Promise<void> {
  const rows = await query<{ stream_id: string; message_id: string }>(
    `SELECT stream_id, message_id FROM np_events WHERE stream_id LIKE $1 AND message_id IS NOT NULL`,
    [`bank-${cluster}-%`],
  );
  const seen = new Map<string, number>();
  for (const row of rows) seen.set(row.message_id, (seen.get(row.message_id) ?? 0) + 1);
  for (const [commandId, { key }] of depositor.acked) {
    expect(seen.get(commandId), `acknowledged ${commandId} to ${key}`).toBe(1);
  }
  expect(
    [...seen.values()].every((count) => count === 1),
    'no deposit appended twice',
  ).toBe(true);
  for (const key of keys) {
    const expected = [...depositor.acked.values()]
      .filter((d) => d.key === key)
      .reduce((sum, d) => sum + d.amount, 0);
    await expect(all[0]!.call({ cmd: 'bank-balance', key })).resolves.toBe(expected);
  }
}

describe('the double-activation measure', () => {
  it('sees two nodes running one key at once, and not a handover', () => {
    const at = (type: string, by: string, wall: number): NodeEvent => ({
      type,
      by,
      wall,
      address: 'troupe://x/@bank/k',
    });
    const handover = [
      at('activation-started', 'a', 0),
      at('activation-stopped', 'a', 100),
      at('activation-started', 'b', 100),
    ];
    expect(longestDoubleActivation(handover)).toBe(0);
    const overlapping = [
      at('activation-started', 'a', 0),
      at('activation-started', 'b', 40),
      at('activation-stopped', 'a', 340),
      at('activation-stopped', 'b', 400),
    ];
    expect(longestDoubleActivation(overlapping)).toBe(300);
  });
});

describe('a node survives its dependencies', () => {
  const keys = Array.from({ length: 12 }, (_, i) => `acct-${i}`);

  it('keeps every node running through a 10 s Postgres outage under load, losing and doubling nothing', async () => {
    const all = await startNodes('pgout', ['a', 'b', 'c']);
    const depositor = new Depositor(all, keys);
    depositor.start();
    await vi.waitFor(() => expect(depositor.acked.size).toBeGreaterThanOrEqual(60), {
      timeout: 20_000,
      interval: 50,
    });
    await postgres.stop();
    const outageStart = depositor.acked.size;
    // The outage itself (a fault window, not a wait for a result): ten seconds of deposits that
    // cannot be written.
    await sleep(10_000);
    await postgres.restart();
    const back = await depositor.everyKeyAnsweredAfter(Date.now());
    await vi.waitFor(() => expect(depositor.acked.size).toBeGreaterThanOrEqual(outageStart + 60), {
      timeout: 30_000,
      interval: 50,
    });
    await depositor.stop();
    console.log(
      `postgres outage of 10000 ms: the longest a key was unavailable was ${depositor.longestUnavailableMs} ms; every key answered again ${back} ms after the server was back`,
    );
    await expectAllAnswering(all, 'pgout');
    await expectJournalMatches('pgout', depositor, keys, all);
  }, 90_000);

  it('keeps every node running through a NATS restart under load, losing and doubling nothing', async () => {
    const all = await startNodes('natsout', ['a', 'b', 'c']);
    const depositor = new Depositor(all, keys);
    depositor.start();
    await vi.waitFor(() => expect(depositor.acked.size).toBeGreaterThanOrEqual(60), {
      timeout: 20_000,
      interval: 50,
    });
    await nats.stop(true);
    const outageStart = depositor.acked.size;
    // The fault window, not a wait for a result: down for ten heartbeats, long enough for every
    // node to miss the others' beats.
    await sleep(10 * HEARTBEAT_MS);
    await nats.restart();
    const back = await depositor.everyKeyAnsweredAfter(Date.now());
    await vi.waitFor(() => expect(depositor.acked.size).toBeGreaterThanOrEqual(outageStart + 60), {
      timeout: 30_000,
      interval: 50,
    });
    await depositor.stop();
    console.log(
      `nats outage of ${10 * HEARTBEAT_MS} ms: the longest a key was unavailable was ${depositor.longestUnavailableMs} ms; every key answered again ${back} ms after the server was back`,
    );
    await expectAllAnswering(all, 'natsout');
    await expectJournalMatches('natsout', depositor, keys, all);
    // Membership came back whole (each node's watch of the members bucket survived the restart).
    for (const node of all) {
      const members = await node.call<{ node: string; state: string }[]>({ cmd: 'members' });
      expect(members.map((m) => `${m.node}:${m.state}`)).toEqual(['a:up', 'b:up', 'c:up']);
    }
    const events = (await Promise.all(all.map((n) => n.call<NodeEvent[]>({ cmd: 'events' })))).flat();
    expect(events.filter((e) => e.type === 'supervisor-escalated')).toEqual([]);
    const overlap = longestDoubleActivation(events);
    console.log(`nats outage: the longest time a key had activations on two nodes was ${overlap} ms`);
    expect(overlap).toBeLessThanOrEqual(HEARTBEAT_MS);
  }, 90_000);
});
