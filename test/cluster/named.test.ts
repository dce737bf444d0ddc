/**
 * Named (virtual) actors over an in-process network: one activation per key whichever node asks,
 * placement by rendezvous hashing, failover when a node goes silent, graceful leave without loss,
 * passivation, fencing tokens. The same code runs over NATS in test/cluster/processes.test.ts. Every
 * node of a cluster here runs on one simulated clock: heartbeats, failure detection and passivation
 * happen exactly when the clock is moved.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  behavior,
  type ClusterStore,
  createNode,
  defineProtocol,
  inProcessNetwork,
  type SystemEvent,
  type Transport,
  tell,
} from '../../index.js';
import { flushMicrotasks, SimulatedClock } from '../../runtime/testkit/index.js';

const Account = defineProtocol('nm.account', {
  deposit: tell(z.object({ amount: z.number() })),
  balance: ask(z.object({}), z.object({ balance: z.number(), node: z.string() })),
});
/** Every deposit handled, per named actor address, whichever activation handled it. */
const handled = new Map<string, number>();
const account = behavior({
  protocols: [Account],
  initialState: () => 0,
  handlers: {
    deposit: ({ amount }, ctx) => {
      ctx.state += amount;
      handled.set(ctx.self.address, (handled.get(ctx.self.address) ?? 0) + 1);
    },
    balance: (_b, ctx) => ({ balance: ctx.state, node: ctx.system.node }),
  },
});

const open: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

/**
 * A transport whose node can "crash": from then on its store calls do nothing, so closing the system
 * neither withdraws it nor releases its leases, as with a killed process.
 */
function crashable(transport: Transport): { transport: Transport; crash: () => void; recover: () => void } {
  let crashed = false;
  const skip =
    <A extends unknown[]>(f: (...args: A) => Promise<void>) =>
    (...args: A) =>
      crashed ? Promise.resolve() : f(...args);
  return {
    transport: {
      ...transport,
      store: async (name: string) => {
        const store: ClusterStore = await transport.store!(name);
        return {
          ...store,
          announce: skip(store.announce),
          withdraw: skip(store.withdraw),
          release: skip(store.release),
        };
      },
    },
    crash: () => {
      crashed = true;
    },
    recover: () => {
      crashed = false;
    },
  };
}

/** Heartbeats every 40 ms; a member silent for 3 beats (120 ms) is down. */
const HEARTBEAT_MS = 40;

async function cluster(nodes: string[], passivateAfterMs = 60_000) {
  const clock = new SimulatedClock();
  const network = inProcessNetwork();
  const systems = new Map<string, ActorSystem>();
  const crashes = new Map<string, () => void>();
  const recoveries = new Map<string, () => void>();
  const events: SystemEvent[] = [];
  /** Each node's own events: membership is each node's own judgement. */
  const seenBy = new Map<string, SystemEvent[]>();
  for (const node of nodes) {
    const { transport, crash, recover } = crashable(network.transport());
    crashes.set(node, crash);
    recoveries.set(node, recover);
    const system = await createNode({
      name: 'bank',
      node,
      transport,
      kinds: { account: { behavior: account, passivateAfterMs } },
      heartbeatMs: HEARTBEAT_MS,
      downAfterMissed: 3,
      clock,
      deadLetterLog: () => {},
    });
    const own: SystemEvent[] = [];
    seenBy.set(node, own);
    system.events$.subscribe((e) => {
      events.push(e);
      own.push(e);
    });
    systems.set(node, system);
    open.push(system);
  }
  // Every node has heard every other once the in-process store's notifications have run.
  await flushMicrotasks();
  for (const system of systems.values()) expect(system.members()).toHaveLength(nodes.length);
  return { clock, systems, events, seenBy, crashes, recoveries };
}

describe('named actors', () => {
  it('has one activation per key, reached from every node', async () => {
    const { systems, events } = await cluster(['a', 'b', 'c']);
    for (const system of systems.values()) {
      for (let k = 0; k < 10; k++)
        system.actorOf('account', `acc-${k}`, Account).tell('deposit', { amount: 1 });
    }
    const hosts = new Set<string>();
    for (let k = 0; k < 10; k++) {
      // Each node's ask comes after its own deposit (order holds per sender and receiver): once all
      // have answered, every deposit is in.
      await Promise.all(
        [...systems.values()].map((s) => s.actorOf('account', `acc-${k}`, Account).ask('balance', {})),
      );
      const seen = await Promise.all(
        [...systems.values()].map((s) => s.actorOf('account', `acc-${k}`, Account).ask('balance', {})),
      );
      expect(seen.map((x) => x.balance)).toEqual([3, 3, 3]);
      expect(new Set(seen.map((x) => x.node)).size).toBe(1);
      hosts.add(seen[0]!.node);
    }
    // Rendezvous hashing spreads ten keys over more than one of three nodes.
    expect(hosts.size).toBeGreaterThan(1);
    const started = events.filter((e) => e.type === 'activation-started');
    expect(new Set(started.map((e) => (e as { address: string }).address)).size).toBe(10);
    expect(started).toHaveLength(10);
  });

  it('activates again on a survivor once the host is down, with a higher fence', async () => {
    const { clock, systems, events, seenBy, crashes } = await cluster(['a', 'b', 'c']);
    const a = systems.get('a')!;
    const first = await a.actorOf('account', 'k1', Account).ask('balance', {});
    const host = first.node;
    const survivor = [...systems.keys()].find((n) => n !== host)!;
    // The host stops heartbeating without a goodbye, like a killed process.
    crashes.get(host)!();
    await systems.get(host)!.close();
    // Each node judges by its own view: suspect after 1.5 silent beats, down after 3.
    const judged = () =>
      seenBy
        .get(survivor)!
        .filter((e) => 'node' in e && e.node === host)
        .map((e) => e.type);
    await clock.advance(2 * HEARTBEAT_MS);
    expect(judged()).toEqual(['member-up', 'member-suspect']);
    await clock.advance(2 * HEARTBEAT_MS);
    expect(judged()).toEqual(['member-up', 'member-suspect', 'member-down']);
    expect(events).toContainEqual(expect.objectContaining({ type: 'member-suspect', node: host }));
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'member-down', node: host, reason: 'unreachable' }),
    );
    const again = await systems.get(survivor)!.actorOf('account', 'k1', Account).ask('balance', {});
    expect(again.node).not.toBe(host);
    const fences = events
      .filter(
        (e): e is Extract<SystemEvent, { type: 'activation-started' }> => e.type === 'activation-started',
      )
      .filter((e) => e.address === 'troupe://bank/@account/k1')
      .map((e) => e.fence);
    expect(fences).toHaveLength(2);
    expect(fences[1]!).toBeGreaterThan(fences[0]!);
  });

  it('hands named actors over on a graceful leave without losing a message', async () => {
    handled.clear();
    const { clock, systems, events } = await cluster(['a', 'b', 'c']);
    const a = systems.get('a')!;
    const keys = Array.from({ length: 20 }, (_, i) => `acc-${i}`);
    for (const key of keys) a.actorOf('account', key, Account).tell('deposit', { amount: 1 });
    const before = await Promise.all(keys.map((k) => a.actorOf('account', k, Account).ask('balance', {})));
    const leaving = before.find((x) => x.node !== 'a')!.node;
    // Deposits keep coming while the node leaves.
    const draining = systems.get(leaving)!.drain();
    for (let round = 0; round < 5; round++) {
      for (const key of keys) a.actorOf('account', key, Account).tell('deposit', { amount: 1 });
      await clock.advance(5);
    }
    await draining;
    const after = await Promise.all(keys.map((k) => a.actorOf('account', k, Account).ask('balance', {})));
    // Handed over with its state? No: an activation's state is in memory (the journal comes later);
    // what must hold is that every deposit made after the handover reached the one new activation.
    for (const [i, x] of after.entries()) {
      expect(x.node).not.toBe(leaving);
      if (before[i]!.node !== leaving) expect(x.balance).toBe(6);
    }
    // Every deposit was handled exactly once, by the old activation or by the new one.
    for (const key of keys) expect(handled.get(`troupe://bank/@account/${key}`)).toBe(6);
    expect(events).toContainEqual(expect.objectContaining({ type: 'member-leaving', node: leaving }));
    expect(events.filter((e) => e.type === 'dead-letter')).toEqual([]);
  });

  it('passivates an idle activation and activates it again on the next message', async () => {
    const { clock, systems, events } = await cluster(['a'], 60);
    const a = systems.get('a')!;
    await a.actorOf('account', 'idle', Account).ask('balance', {});
    // The detector looks every 10 ms (a quarter beat): idle for more than 60 ms at 70 ms.
    await clock.advance(60);
    expect(events.filter((e) => e.type === 'activation-stopped')).toEqual([]);
    await clock.advance(10);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'activation-stopped', reason: 'passivated' }),
    );
    expect((await a.actorOf('account', 'idle', Account).ask('balance', {})).balance).toBe(0);
    expect(events.filter((e) => e.type === 'activation-started')).toHaveLength(2);
  });

  it("moves a closed node's named actors at once: it withdraws and gives its leases back", async () => {
    const { systems, events } = await cluster(['a', 'b']);
    const a = systems.get('a')!;
    const keys = ['x1', 'x2', 'x3', 'x4', 'x5', 'x6'];
    const before = await Promise.all(keys.map((k) => a.actorOf('account', k, Account).ask('balance', {})));
    expect(before.some((x) => x.node === 'b')).toBe(true);
    await systems.get('b')!.close();
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'member-down', node: 'b', reason: 'left' }),
    );
    const after = await Promise.all(keys.map((k) => a.actorOf('account', k, Account).ask('balance', {})));
    expect(after.map((x) => x.node)).toEqual(keys.map(() => 'a'));
  });

  it('stops the older activation once a partition heals and the lease belongs to another node', async () => {
    const { clock, systems, events, crashes, recoveries } = await cluster(['a', 'b']);
    const a = systems.get('a')!;
    // Find a key that b hosts.
    let key = '';
    for (let i = 0; key === ''; i++) {
      if ((await a.actorOf('account', `p${i}`, Account).ask('balance', {})).node === 'b') key = `p${i}`;
    }
    // b goes silent (a partition): a declares it down and takes the key over.
    crashes.get('b')!();
    await clock.advance(4 * HEARTBEAT_MS);
    expect(events).toContainEqual(expect.objectContaining({ type: 'member-down', node: 'b' }));
    expect((await a.actorOf('account', key, Account).ask('balance', {})).node).toBe('a');
    // The partition heals: b finds its lease gone and stops its activation, at the latest when it
    // checks its leases (every five beats).
    recoveries.get('b')!();
    await clock.advance(5 * HEARTBEAT_MS);
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'activation-stopped',
        reason: 'lease-lost',
        address: `troupe://bank/@account/${key}`,
      }),
    );
  });

  it('never runs two activations of a key while passivating and activating again', async () => {
    handled.clear();
    const { clock, systems, events } = await cluster(['a'], 20);
    const a = systems.get('a')!;
    const ref = a.actorOf('account', 'flappy', Account);
    let sent = 0;
    for (let round = 0; round < 30; round++) {
      ref.tell('deposit', { amount: 1 });
      sent++;
      await clock.advance(10 + (round % 5) * 10);
    }
    await ref.ask('balance', {});
    expect(handled.get('troupe://bank/@account/flappy')).toBe(sent);
    // Started and stopped alternate: never a second start before the stop.
    const lifecycle = events
      .filter(
        (e) =>
          (e.type === 'activation-started' || e.type === 'activation-stopped') &&
          e.address.endsWith('/flappy'),
      )
      .map((e) => e.type);
    expect(lifecycle.length).toBeGreaterThan(2);
    lifecycle.forEach((type, i) => {
      expect(type, `event ${i}`).toBe(i % 2 === 0 ? 'activation-started' : 'activation-stopped');
    });
  });

  it('refuses a kind the node does not have with ERR_NO_ROUTE', async () => {
    const { systems } = await cluster(['a']);
    expect(() => systems.get('a')!.actorOf('nope', 'k')).toThrow(
      expect.objectContaining({ code: 'ERR_NO_ROUTE' }),
    );
  });
});

describe('fencing tokens', () => {
  it('are carried by the envelopes a named actor sends', async () => {
    const Probe = defineProtocol('nm.probe', { hit: tell(z.object({})) });
    const Pinger = defineProtocol('nm.pinger', { ping: tell(z.object({ to: z.string() })) });
    const network = inProcessNetwork();
    const inner = network.transport();
    const sent: string[] = [];
    const spying = {
      ...inner,
      publish: (channel: 'node' | 'reply', node: string, frame: Parameters<typeof inner.publish>[2]) => {
        sent.push(Buffer.from(frame.bytes).toString());
        inner.publish(channel, node, frame);
      },
    };
    const pinger = behavior({
      protocols: [Pinger],
      handlers: {
        ping: ({ to }, ctx) => ctx.system.ref(to, Probe).tell('hit', {}),
      },
    });
    const a = await createNode({
      name: 'f',
      node: 'a',
      transport: spying,
      kinds: { pinger },
      deadLetterLog: () => {},
    });
    const b = await createNode({
      name: 'f',
      node: 'b',
      transport: network.transport(),
      deadLetterLog: () => {},
    });
    open.push(a, b);
    let hits = 0;
    b.spawn(behavior({ protocols: [Probe], handlers: { hit: () => void hits++ } }), { name: 'probe' });
    a.actorOf('pinger', 'p1', Pinger).tell('ping', { to: 'troupe://f/b/probe' });
    await vi.waitFor(() => expect(hits).toBe(1));
    const hit = sent.map((s) => JSON.parse(s)).find((e) => e.type === 'nm.probe.hit');
    expect(hit).toMatchObject({ from: 'troupe://f/@pinger/p1', fence: expect.any(Number) });
  });
});

const Waiter = defineProtocol('nm.waiter', {
  wait: ask(z.object({}), z.null()),
  ping: ask(z.object({}), z.string()),
  note: tell(z.object({})),
});
const waiter = behavior({
  protocols: [Waiter],
  initialState: () => null,
  handlers: {
    // Never answers (and holds its actor): only the ask's end tells the asker anything.
    wait: () => new Promise<null>(() => {}),
    ping: () => 'pong',
    note: () => {},
  },
});

describe('asks to the actors of a node that goes down', () => {
  it('fail with ERR_NODE_DOWN once it is declared down, and at once while it stays down (tells are dead letters); they reach it when it is back', async () => {
    const { clock, systems, crashes, recoveries, seenBy } = await cluster(['a', 'b']);
    const a = systems.get('a')!;
    const b = systems.get('b')!;
    const stuck = b.spawn(waiter, { name: 'stuck' });
    const echo = a.ref(b.spawn(waiter, { name: 'echo' }).address, Waiter);
    const waiting = a.ref(stuck.address, Waiter).ask('wait', {}, { timeoutMs: 60_000 });
    waiting.catch(() => {});
    expect(await echo.ask('ping', {})).toBe('pong');
    // b goes silent: a declares it down after three missed beats, long before the ask's 60 s.
    crashes.get('b')!();
    await clock.advance(4 * HEARTBEAT_MS);
    expect(seenBy.get('a')).toContainEqual(expect.objectContaining({ type: 'member-down', node: 'b' }));
    await expect(waiting).rejects.toMatchObject({
      code: 'ERR_NODE_DOWN',
      message: expect.stringContaining('went down before'),
    });
    await expect(echo.ask('ping', {}, { timeoutMs: 60_000 })).rejects.toMatchObject({
      code: 'ERR_NODE_DOWN',
      message: expect.stringContaining('is down'),
    });
    // A tell meanwhile is a dead letter, not a frame sent into the void.
    a.ref(stuck.address, Waiter).tell('note', {});
    expect(seenBy.get('a')).toContainEqual(
      expect.objectContaining({
        type: 'dead-letter',
        to: stuck.address,
        reason: 'node-down',
        error: expect.objectContaining({ code: 'ERR_NODE_DOWN' }),
      }),
    );
    // b is heard again: asks go to it again.
    recoveries.get('b')!();
    await clock.advance(2 * HEARTBEAT_MS);
    expect(seenBy.get('a')!.filter((e) => e.type === 'member-up' && e.node === 'b').length).toBeGreaterThan(
      0,
    );
    expect(await echo.ask('ping', {})).toBe('pong');
  });
});
