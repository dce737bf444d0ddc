/**
 * The net lab on real namespaces, links and packet filters, with real processes in them: each host
 * runs test/chaos/fixtures/netlab-peer.mjs (a UDP sink and echo server) and the test asks it to send,
 * count and time datagrams. A "barrier" host that no fault touches tells when packets sent before it
 * would have arrived, so no assertion waits on a fixed sleep. Needs root; otherwise skipped with the
 * reason printed.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type Fault,
  type NetLab,
  netLabUnavailable,
  openNetLab,
  parsePlan,
  removeStaleNetLabs,
  schedule,
} from '../../ops/chaos/index.js';
import { linkRules, type NetFault } from '../../ops/chaos/real/netlab.js';
import { SimNetwork } from '../../ops/chaos/sim/network.js';
import { SimScheduler } from '../../ops/chaos/sim/scheduler.js';
import { TroupeError } from '../../protocols/index.js';
import { seededRandom } from '../../runtime/index.js';
import { propertySeed, seeded } from '../harness/fast-check.js';
import { natsServerBinary } from '../harness/nats.js';

const PEER = join(import.meta.dirname, 'fixtures', 'netlab-peer.mjs');
const CRASH = join(import.meta.dirname, 'fixtures', 'netlab-crash.ts');
const NATS_CLIENT = join(import.meta.dirname, 'fixtures', 'netlab-nats-client.mjs');
const nats = natsServerBinary();
const reason = netLabUnavailable();
if (reason !== undefined) console.warn(`net lab tests skipped: ${reason}`);

interface Count {
  total: number;
  distinct: number;
  order: number[];
}

/** A peer process in one host of the lab, driven by JSON lines. */
class Peer {
  private next = 0;
  private readonly waiting = new Map<number, (value: Record<string, unknown>) => void>();
  private constructor(readonly child: ChildProcess) {}

  static async start(lab: NetLab, node: string, script = PEER, args: string[] = []): Promise<Peer> {
    const child = lab.spawn(node, process.execPath, [script, ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const peer = new Peer(child);
    const lines = createInterface({ input: child.stdout! });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`peer in ${node} exited with ${code}`)));
      lines.on('line', (line) => {
        const message = JSON.parse(line) as Record<string, unknown>;
        if (message.ready === true) resolve();
        const id = message.id as number | undefined;
        if (id !== undefined) peer.waiting.get(id)?.(message);
      });
    });
    return peer;
  }

  request<T>(op: string, body: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (message) => {
        this.waiting.delete(id);
        if (message.error !== undefined) reject(new Error(String(message.error)));
        else resolve(message as T);
      });
      this.child.stdin!.write(`${JSON.stringify({ id, op, ...body })}\n`);
    });
  }

  count(tag: string): Promise<Count> {
    return this.request<Count>('count', { tag });
  }
}

/** The process's state letter from /proc (`Z` for a zombie), or `gone`. */
function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return 'gone';
  }
}

/**
 * The names of the root namespace's links (a lab without an uplink never adds one); the uplinks of
 * labs that other tests may open meanwhile are left out.
 */
function rootLinks(): string[] {
  return execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => (line.split(': ')[1] ?? '').split('@')[0]!)
    .filter((name) => name !== '' && !/^tnl?u/.test(name))
    .sort();
}

function rootAddresses(): string {
  return execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
}

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => name !== '');
}

// These run without root: they check the rules the lab would install, against the simulation.
describe("the net lab's rules", () => {
  const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const node = fc.constantFrom(...NODES);
  const partition = fc.record({
    kind: fc.constant('partition' as const),
    sides: fc.array(fc.uniqueArray(node, { minLength: 1, maxLength: 3 }), { minLength: 2, maxLength: 3 }),
    oneWay: fc.boolean(),
  });

  it('block exactly the pairs the simulation cannot reach, for any partitions', () => {
    const seed = propertySeed(1313);
    fc.assert(
      fc.property(fc.array(partition, { minLength: 1, maxLength: 3 }), (faults) => {
        const sim = new SimNetwork(new SimScheduler(), seededRandom(1), NODES);
        for (const fault of faults) sim.partitions.add(fault);
        const blocked = new Set(
          linkRules(NODES, faults)
            .drops.filter((rule) => rule.probability === 1)
            .map((rule) => `${rule.src}>${rule.dst}`),
        );
        for (const src of NODES)
          for (const dst of NODES)
            if (src !== dst)
              expect(blocked.has(`${src}>${dst}`), `${src}>${dst}`).toBe(!sim.canReach(src, dst));
      }),
      seeded('partition rules', seed, 300),
    );
  });

  it('compose network faults per pair: one draw per fault, delays and jitters added', () => {
    const seed = propertySeed(1314);
    const network = fc.record({
      kind: fc.constant('network' as const),
      from: fc.option(fc.uniqueArray(node, { minLength: 1 }), { nil: undefined }),
      to: fc.option(fc.uniqueArray(node, { minLength: 1 }), { nil: undefined }),
      delayMs: fc.nat(100),
      jitterMs: fc.nat(50),
      drop: fc.double({ min: 0, max: 1, noNaN: true }),
      duplicate: fc.double({ min: 0, max: 1, noNaN: true }),
      reorder: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    fc.assert(
      fc.property(fc.array(network, { maxLength: 4 }), (faults) => {
        const rules = linkRules(NODES, faults);
        for (const src of NODES)
          for (const dst of NODES) {
            if (src === dst) continue;
            const on = faults.filter((f) => (f.from ?? NODES).includes(src) && (f.to ?? NODES).includes(dst));
            const at = <R extends { src: string; dst: string }>(list: readonly R[]) =>
              list.filter((rule) => rule.src === src && rule.dst === dst);
            expect(at(rules.drops).map((r) => r.probability)).toEqual(
              on.filter((f) => f.drop > 0).map((f) => f.drop),
            );
            expect(at(rules.duplicates)).toHaveLength(on.filter((f) => f.duplicate > 0).length);
            const delay = at(rules.delays);
            const slowed = on.filter((f) => f.delayMs > 0 || f.jitterMs > 0 || f.reorder > 0);
            expect(delay).toHaveLength(slowed.length > 0 ? 1 : 0);
            if (slowed.length > 0) {
              expect(delay[0]!.delayMs).toBe(slowed.reduce((sum, f) => sum + f.delayMs, 0));
              expect(delay[0]!.jitterMs).toBe(slowed.reduce((sum, f) => sum + f.jitterMs, 0));
              const keep = slowed.reduce((product, f) => product * (1 - f.reorder), 1);
              expect(delay[0]!.reorder).toBeCloseTo(1 - keep, 12);
            }
          }
        // No rule is about a host and itself: its own traffic never crosses the hub.
        const all = [...rules.drops, ...rules.duplicates, ...rules.delays];
        expect(all.filter((rule) => rule.src === rule.dst)).toEqual([]);
      }),
      seeded('network rules', seed, 100),
    );
  });

  it("takes a plan's partition and network faults as they are", () => {
    const plan = parsePlan({
      name: 'net',
      seed: 1,
      durationMs: 1000,
      nodes: ['n1', 'n2'],
      workload: { name: 'none' },
      faults: [
        { kind: 'partition', at: 0, durationMs: 10, sides: [['n1'], ['n2']] },
        { kind: 'network', at: 0, durationMs: 10, from: ['n1'], delayMs: 5 },
      ],
    });
    const faults: NetFault[] = schedule(plan).filter(
      (fault): fault is Extract<Fault, { kind: 'partition' | 'network' }> =>
        fault.kind === 'partition' || fault.kind === 'network',
    );
    const rules = linkRules(['n1', 'n2'], faults);
    expect(rules.drops).toEqual([
      { src: 'n1', dst: 'n2', probability: 1 },
      { src: 'n2', dst: 'n1', probability: 1 },
    ]);
    expect(rules.delays).toEqual([{ src: 'n1', dst: 'n2', delayMs: 5, jitterMs: 0, reorder: 0 }]);
  });

  it('a partition with a host on two sides follows the first side that names it, as the simulation', () => {
    const fault: NetFault = { kind: 'partition', sides: [['n1', 'n2'], ['n1']] };
    expect(linkRules(NODES, [fault]).drops).toEqual([]);
  });
});

describe.skipIf(reason !== undefined)('the net lab', () => {
  let lab: NetLab;
  const peers: Record<string, Peer> = {};
  let tags = 0;

  beforeAll(async () => {
    lab = await openNetLab({ nodes: ['a', 'b', 'c'], seed: 13 });
    for (const node of lab.nodes) peers[node] = await Peer.start(lab, node);
  });

  afterAll(async () => {
    await lab?.close();
  });

  afterEach(async () => {
    await lab.healAll();
  });

  /**
   * Sends `count` datagrams from `from` to `to`, then as many to `barrier`, waits until the barrier
   * has them all, and answers what `to` got by then.
   */
  async function sendPast(from: string, to: string, count: number, barrier: string): Promise<Count> {
    const tag = `t${tags++}`;
    const fence = `${tag}-fence`;
    await peers[from]!.request('send', { to: lab.address(to), tag, count });
    await peers[from]!.request('send', { to: lab.address(barrier), tag: fence, count });
    await vi.waitFor(async () => expect((await peers[barrier]!.count(fence)).distinct).toBe(count), {
      timeout: 10_000,
      interval: 20,
    });
    return peers[to]!.count(tag);
  }

  /** Sends `count` datagrams from `from` to `to` and waits until `to` has every one. */
  async function sendAll(from: string, to: string, count: number): Promise<Count> {
    const tag = `t${tags++}`;
    await peers[from]!.request('send', { to: lab.address(to), tag, count });
    let got: Count | undefined;
    await vi.waitFor(
      async () => {
        got = await peers[to]!.count(tag);
        expect(got.distinct).toBe(count);
      },
      { timeout: 10_000, interval: 20 },
    );
    return got!;
  }

  async function rtts(from: string, to: string, count: number): Promise<number[]> {
    const { times } = await peers[from]!.request<{ times: number[] }>('rtt', {
      to: lab.address(to),
      count,
      waitMs: 5_000,
    });
    return times;
  }

  it('gives each host its own address and reaches every host from every other', async () => {
    const addresses = lab.nodes.map((node) => lab.address(node));
    expect(new Set(addresses).size).toBe(3);
    expect(new Set(lab.nodes.map((node) => lab.namespace(node))).size).toBe(3);
    expect(lab.exec('a').slice(1)).toEqual(['netns', 'exec', lab.namespace('a')]);
    for (const [from, to] of [
      ['a', 'b'],
      ['b', 'c'],
      ['c', 'a'],
    ] as const)
      expect((await sendAll(from, to, 50)).total).toBe(50);
    expect(await rtts('a', 'b', 3)).toHaveLength(3);
  });

  it('a symmetric partition stops traffic both ways, leaves the rest, and heals', async () => {
    const heal = await lab.apply({ kind: 'partition', sides: [['a'], ['b']] });
    expect((await sendPast('a', 'b', 30, 'c')).total).toBe(0);
    expect((await sendPast('b', 'a', 30, 'c')).total).toBe(0);
    expect((await sendAll('c', 'a', 30)).total).toBe(30);
    await heal();
    expect(lab.faults()).toEqual([]);
    expect((await sendAll('a', 'b', 30)).total).toBe(30);
    expect((await sendAll('b', 'a', 30)).total).toBe(30);
  });

  it("a one-way partition loses only the first side's packets", async () => {
    const heal = await lab.apply({ kind: 'partition', sides: [['a'], ['b', 'c']], oneWay: true });
    expect((await sendPast('a', 'b', 30, 'a')).total).toBe(0);
    expect((await sendAll('b', 'a', 30)).total).toBe(30);
    expect((await sendAll('c', 'a', 30)).total).toBe(30);
    expect((await sendAll('b', 'c', 30)).total).toBe(30);
    await heal();
    expect((await sendAll('a', 'b', 30)).total).toBe(30);
  });

  it('delay with jitter raises the round-trip time by at least the delay, and heals', async () => {
    const delayMs = 60;
    const heal = await lab.apply({ kind: 'network', from: ['a'], to: ['b'], delayMs, jitterMs: 20 });
    // The request (a to b) waits going out; from b, the answer waits coming back.
    for (const time of await rtts('a', 'b', 5)) expect(time).toBeGreaterThanOrEqual(delayMs - 1);
    for (const time of await rtts('b', 'a', 5)) expect(time).toBeGreaterThanOrEqual(delayMs - 1);
    // Without a reorder fault, jitter keeps the order of a pair's packets, as in the simulation.
    const { order } = await sendAll('a', 'b', 100);
    expect(order).toEqual([...order].sort((x, y) => x - y));
    await heal();
    expect(await rtts('a', 'b', 3)).toHaveLength(3);
  });

  it('loss drops about the given share of packets, and only on its link', async () => {
    const heal = await lab.apply({ kind: 'network', from: ['a'], to: ['b'], drop: 0.5 });
    const got = await sendPast('a', 'b', 400, 'c');
    // 400 draws at 0.5: 200 expected, standard deviation 10.
    expect(got.distinct).toBeGreaterThan(120);
    expect(got.distinct).toBeLessThan(280);
    expect((await sendAll('b', 'a', 100)).total).toBe(100);
    await heal();
    expect((await sendAll('a', 'b', 100)).total).toBe(100);
  });

  it('duplication delivers some packets twice', async () => {
    const heal = await lab.apply({ kind: 'network', from: ['a'], to: ['b'], duplicate: 0.5 });
    const tag = `t${tags++}`;
    await peers.a!.request('send', { to: lab.address('b'), tag, count: 200 });
    await vi.waitFor(
      async () => {
        const got = await peers.b!.count(tag);
        expect(got.distinct).toBe(200);
        expect(got.total).toBeGreaterThan(230);
      },
      { timeout: 10_000, interval: 20 },
    );
    expect((await peers.b!.count(tag)).total).toBeLessThanOrEqual(400);
    await heal();
    expect((await sendAll('a', 'b', 50)).total).toBe(50);
  });

  it('reordering lets later packets overtake earlier ones', async () => {
    const heal = await lab.apply({ kind: 'network', from: ['a'], to: ['b'], delayMs: 5, reorder: 0.3 });
    const { order } = await sendAll('a', 'b', 200);
    const overtaken = order.filter((n, i) => i > 0 && n < order[i - 1]!).length;
    expect(overtaken).toBeGreaterThan(0);
    await heal();
  });

  it('composes faults on one link and heals them one at a time', async () => {
    const healDelay = await lab.apply({ kind: 'network', from: ['a'], to: ['b'], delayMs: 40 });
    const healLoss = await lab.apply({ kind: 'network', from: ['a'], to: ['b'], drop: 1 });
    const healPartition = await lab.apply({ kind: 'partition', sides: [['b'], ['c']] });
    expect(lab.faults().map((f) => f.kind)).toEqual(['network', 'network', 'partition']);
    expect((await sendPast('a', 'b', 30, 'c')).total).toBe(0);
    expect((await sendPast('b', 'c', 30, 'a')).total).toBe(0);
    await healLoss();
    await healLoss();
    for (const time of await rtts('a', 'b', 3)) expect(time).toBeGreaterThanOrEqual(39);
    expect((await sendPast('b', 'c', 30, 'a')).total).toBe(0);
    await healPartition();
    expect((await sendAll('b', 'c', 30)).total).toBe(30);
    await healDelay();
    expect(lab.faults()).toEqual([]);
  });

  it('refuses faults that name unknown hosts or are out of range, with typed errors', async () => {
    const refused = async (fault: Parameters<NetLab['apply']>[0]) => {
      const error = await lab.apply(fault).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(TroupeError.is(error, 'ERR_INVALID_OPTION'), String(error)).toBe(true);
    };
    await refused({ kind: 'partition', sides: [['a'], ['z']] });
    await refused({ kind: 'partition', sides: [['a']] });
    await refused({ kind: 'network', from: ['a'], drop: 2 });
    await refused({ kind: 'network', to: ['b'], delayMs: -1 });
    expect(lab.faults()).toEqual([]);
    expect(() => lab.address('z')).toThrow(/not a host/);
  });
});

describe.skipIf(reason !== undefined || nats === undefined)('a nats-server cluster in the net lab', () => {
  if (reason === undefined && nats === undefined) console.warn('net lab NATS test skipped: no nats-server');

  it('loses the routes of a partition and gets them back when it heals', async () => {
    await using lab = await openNetLab({ nodes: ['a', 'b', 'c'] });
    const route = (node: string) => `nats://${lab.address(node)}:6222`;
    for (const node of lab.nodes) {
      const others = lab.nodes.filter((other) => other !== node).map(route);
      lab.spawn(
        node,
        nats!,
        [
          '-a',
          '0.0.0.0',
          '-p',
          '4222',
          '--cluster_name',
          'lab',
          '--cluster',
          route(node),
          '--routes',
          others.join(','),
        ],
        { stdio: 'ignore' },
      );
    }
    const clients: Record<string, Peer> = {};
    for (const node of lab.nodes) {
      // The server may still be starting: the client retries until it connects.
      clients[node] = await Peer.start(lab, node, NATS_CLIENT, ['nats://127.0.0.1:4222']);
    }
    const count = async (node: string, tag: string) =>
      (await clients[node]!.request<{ distinct: number }>('count', { tag })).distinct;
    let tags = 0;
    const publish = async (node: string, count: number) => {
      const tag = `m${tags++}`;
      await clients[node]!.request('publish', { tag, count });
      return tag;
    };
    // The routes form: a message from each server reaches the clients of the two others.
    await vi.waitFor(
      async () => {
        for (const node of lab.nodes) {
          const tag = await publish(node, 1);
          for (const other of lab.nodes) expect(await count(other, tag)).toBe(1);
        }
      },
      { timeout: 15_000, interval: 200 },
    );
    const heal = await lab.apply({ kind: 'partition', sides: [['a'], ['b']] });
    const during = await publish('a', 20);
    await vi.waitFor(async () => expect(await count('c', during)).toBe(20), { timeout: 10_000 });
    expect(await count('b', during)).toBe(0);
    await heal();
    // TCP carries the route on once the partition heals.
    const after = await publish('a', 20);
    await vi.waitFor(async () => expect(await count('b', after)).toBe(20), {
      timeout: 15_000,
      interval: 100,
    });
  });
});

describe.skipIf(reason !== undefined)('the net lab with an uplink', () => {
  it('lets its hosts reach a server in the root namespace, each lab on a subnet of its own', async () => {
    const one = await openNetLab({ nodes: ['a', 'b'], uplink: true });
    const two = await openNetLab({ nodes: ['c'], uplink: true });
    const uplink = one.uplinkAddress!;
    expect(uplink).toMatch(/^198\.1[89]\./);
    expect(two.uplinkAddress).not.toBe(uplink);
    expect(two.address('c')).not.toBe(one.address('a'));
    // A UDP echo server in this process, in the root namespace, on the uplink address.
    const server = dgram.createSocket('udp4');
    server.on('message', (message, from) => server.send(message, from.port, from.address));
    await new Promise<void>((resolve) => server.bind(7001, uplink, resolve));
    try {
      const a = await Peer.start(one, 'a');
      const { times } = await a.request<{ times: number[] }>('rtt', { to: uplink, count: 3, waitMs: 5_000 });
      expect(times).toHaveLength(3);
      // Faults are between hosts; the uplink is not one, so a partition leaves it alone.
      await one.apply({ kind: 'partition', sides: [['a'], ['b']] });
      const again = await a.request<{ times: number[] }>('rtt', { to: uplink, count: 3, waitMs: 5_000 });
      expect(again.times).toHaveLength(3);
    } finally {
      server.close();
      await one.close();
      await two.close();
    }
    expect(rootAddresses()).not.toContain(` ${uplink}/`);
    expect(rootAddresses()).not.toContain(` ${two.uplinkAddress}/`);
  });
});

describe.skipIf(reason !== undefined)('the net lab cleans up', () => {
  it('removes its namespaces and links, and kills what ran in them, on close', async () => {
    const links = rootLinks();
    const lab = await openNetLab({ nodes: ['p', 'q'] });
    const mine = [lab.namespace('p'), lab.namespace('q')];
    expect(namespaces()).toEqual(expect.arrayContaining(mine));
    const sleeper = lab.spawn('p', 'sleep', ['600'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => sleeper.once('exit', (_code, signal) => resolve(signal)));
    await lab.apply({ kind: 'partition', sides: [['p'], ['q']] });
    await lab.close();
    await lab.close();
    expect(await exited).toBe('SIGKILL');
    const left = namespaces();
    for (const ns of mine) expect(left).not.toContain(ns);
    expect(left.filter((ns) => ns.startsWith(mine[0]!.replace(/-h0$/, '')))).toEqual([]);
    expect(rootLinks()).toEqual(links);
    await expect(lab.apply({ kind: 'partition', sides: [['p'], ['q']] })).rejects.toMatchObject({
      code: 'ERR_NET_LAB',
    });
  });

  it('removes the leftovers of a process that died holding a lab, and no live lab', async () => {
    const live = await openNetLab({ nodes: ['l'] });
    const child = spawn(process.execPath, ['--import', 'tsx', CRASH], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the crashing child exited early (${code})`)));
      createInterface({ input: child.stdout! }).once('line', resolve);
    });
    const { namespaces: theirs, pid } = JSON.parse(line) as { namespaces: string[]; pid: number };
    expect(namespaces()).toEqual(expect.arrayContaining(theirs));
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
    // Another test's openNetLab may reap them first (it removes stale labs too): either way they go.
    await removeStaleNetLabs();
    const left = namespaces();
    for (const ns of theirs) expect(left).not.toContain(ns);
    expect(left).toContain(live.namespace('l'));
    // Killed: gone, or a zombie until whoever adopted it reaps it.
    await vi.waitFor(() => expect(['gone', 'Z', 'X']).toContain(processState(pid)));
    await live.close();
  });
});
