/**
 * How a node supervises its named actors' activations, on the simulated clock over an in-process
 * network: each key has its own restart window and is given up (never the node) when it keeps
 * crashing; an unavailable journal is waited out, or answered at once; a stale fence stops the
 * activation and sends its messages to the key's owner; a node that cannot reach the cluster's store
 * declares nobody down; keys are checked before anything is activated.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  behavior,
  type ClusterStore,
  createNode,
  defineProtocol,
  exponential,
  inMemoryJournal,
  inProcessNetwork,
  type Journal,
  type KindOptions,
  persistentBehavior,
  type SystemEvent,
  type Transport,
  TroupeError,
} from '../../index.js';
import { SimulatedClock } from '../../runtime/testkit/index.js';

const open: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

const Fragile = defineProtocol('ac.fragile', {
  boom: ask(z.object({}), z.string()),
  ping: ask(z.object({}), z.string()),
});
const fragile = behavior({
  protocols: [Fragile],
  handlers: {
    boom: () => {
      throw new Error('boom');
    },
    ping: (_b, ctx) => `pong from ${ctx.system.node}`,
  },
});

const Bank = defineProtocol('ac.bank', {
  deposit: ask(
    z.object({ amount: z.number(), commandId: z.string() }),
    z.object({ balance: z.number(), node: z.string() }),
  ),
});

function bankOn(journal: Journal) {
  return persistentBehavior({
    protocols: [Bank],
    journal,
    persistenceId: ({ name }) => `bank-${name}`,
    initialState: () => 0,
    events: { deposited: z.object({ amount: z.number() }) },
    apply: { deposited: (balance, { amount }) => balance + amount },
    commands: {
      deposit: ({ amount }, ctx) => ({
        events: [{ type: 'deposited', data: { amount } }],
        reply: (balance) => ({ balance, node: ctx.system.node }),
      }),
    },
  });
}

/** A journal that fails every call with ERR_JOURNAL_UNAVAILABLE while `down`. */
function outageJournal(inner: Journal): { journal: Journal; setDown(down: boolean): void } {
  let down = false;
  const journal = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function' || property === 'close') return value;
      return (...args: unknown[]) =>
        down
          ? Promise.reject(new TroupeError('ERR_JOURNAL_UNAVAILABLE', 'the journal is down (test)'))
          : (value as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
  return {
    journal,
    setDown: (value) => {
      down = value;
    },
  };
}

/**
 * A transport whose cluster store can be made unreachable (its calls reject, as when NATS is away)
 * or silent (its calls do nothing, as for a killed process).
 */
function faultyStore(transport: Transport) {
  const faults = { unreachable: false, silent: false };
  const wrap =
    <A extends unknown[], R>(f: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> =>
      faults.unreachable
        ? Promise.reject(new Error('store unreachable (test)'))
        : faults.silent
          ? Promise.resolve(undefined as R)
          : f(...args);
  return {
    faults,
    transport: {
      ...transport,
      store: async (name: string): Promise<ClusterStore> => {
        const store = await transport.store!(name);
        return {
          ...store,
          announce: wrap(store.announce),
          withdraw: wrap(store.withdraw),
          release: wrap(store.release),
          lease: wrap(store.lease),
          fence: wrap(store.fence),
        };
      },
    } satisfies Transport,
  };
}

const HEARTBEAT_MS = 100;

async function nodes(
  ids: string[],
  kinds: Record<string, KindOptions>,
  clock = new SimulatedClock(),
): Promise<{
  systems: Map<string, ActorSystem>;
  events: Map<string, SystemEvent[]>;
  faults: Map<string, { unreachable: boolean; silent: boolean }>;
  clock: SimulatedClock;
  network: ReturnType<typeof inProcessNetwork>;
}> {
  const network = inProcessNetwork();
  const systems = new Map<string, ActorSystem>();
  const events = new Map<string, SystemEvent[]>();
  const faults = new Map<string, { unreachable: boolean; silent: boolean }>();
  for (const id of ids) {
    const faulty = faultyStore(network.transport());
    const system = await createNode({
      name: 'ac',
      node: id,
      transport: faulty.transport,
      clock,
      kinds,
      heartbeatMs: HEARTBEAT_MS,
      deadLetterLog: () => {},
    });
    const seen: SystemEvent[] = [];
    system.events$.subscribe((e) => seen.push(e));
    systems.set(id, system);
    events.set(id, seen);
    faults.set(id, faulty.faults);
    open.push(system);
  }
  // Every node hears every other's first heartbeat.
  await clock.advance(2 * HEARTBEAT_MS);
  for (const system of systems.values()) expect(system.members().map((m) => m.node)).toEqual([...ids].sort());
  return { systems, events, faults, clock, network };
}

describe("a node's activations supervisor", () => {
  it('gives up a key that keeps crashing, refuses it for its quarantine, then activates it again', async () => {
    const { systems, events, clock } = await nodes(['a'], {
      fragile: {
        behavior: fragile,
        restart: { intensity: 1, periodMs: 10_000, quarantine: exponential({ baseMs: 500, maxMs: 500 }) },
      },
    });
    const a = systems.get('a')!;
    const key = a.actorOf('fragile', 'k', Fragile);
    await expect(key.ask('boom', {})).rejects.toMatchObject({ code: 'ERR_ACTOR_CRASHED' });
    await expect(key.ask('boom', {})).rejects.toMatchObject({ code: 'ERR_ACTOR_CRASHED' });
    // Crashed twice within its window (one restart allowed): given up, and refused for 500 ms.
    const refused = await key.ask('ping', {}).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ERR_ACTIVATION_FAILED' });
    expect((refused as TroupeError).cause).toMatchObject({ message: 'boom' });
    expect(events.get('a')).toContainEqual(
      expect.objectContaining({
        type: 'activation-failed',
        address: 'troupe://ac/@fragile/k',
        quarantineMs: 500,
        error: expect.objectContaining({ code: 'ERR_ACTIVATION_FAILED' }),
      }),
    );
    expect(events.get('a')).toContainEqual(
      expect.objectContaining({
        type: 'dead-letter',
        reason: 'activation-failed',
        messageType: 'ac.fragile.ping',
      }),
    );
    // Other keys, and the node, go on.
    await expect(a.actorOf('fragile', 'other', Fragile).ask('ping', {})).resolves.toBe('pong from a');
    expect(a.status.tag).toBe('running');
    await clock.advance(500);
    await expect(key.ask('ping', {})).resolves.toBe('pong from a');
  });

  it('never stops the node, however many keys crash', async () => {
    const { systems } = await nodes(['a'], { fragile: { behavior: fragile } });
    const a = systems.get('a')!;
    // Far more crashes than any supervisor's window (the system default is 10 in 10 s).
    const crashes = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        a
          .actorOf('fragile', `k${i}`, Fragile)
          .ask('boom', {})
          .catch((e) => e),
      ),
    );
    expect(crashes.every((e) => TroupeError.is(e, 'ERR_ACTOR_CRASHED'))).toBe(true);
    expect(a.status.tag).toBe('running');
    const pongs = await Promise.all(
      Array.from({ length: 100 }, (_, i) => a.actorOf('fragile', `k${i}`, Fragile).ask('ping', {})),
    );
    expect(new Set(pongs)).toEqual(new Set(['pong from a']));
  });

  it('waits out a journal outage: messages wait, the node stays ready, the key comes back with the journal', async () => {
    const outage = outageJournal(inMemoryJournal());
    const { systems, events, clock } = await nodes(['a'], {
      bank: { behavior: bankOn(outage.journal) },
      fragile: { behavior: fragile },
    });
    const a = systems.get('a')!;
    const account = a.actorOf('bank', 'k', Bank);
    await expect(account.ask('deposit', { amount: 1, commandId: 'c1' })).resolves.toEqual({
      balance: 1,
      node: 'a',
    });
    outage.setDown(true);
    // The command that meets the outage fails; the ones behind it wait for the journal.
    await expect(account.ask('deposit', { amount: 2, commandId: 'c2' })).rejects.toMatchObject({
      code: 'ERR_ACTOR_CRASHED',
      cause: expect.objectContaining({ code: 'ERR_JOURNAL_UNAVAILABLE' }),
    });
    const waiting = account.ask('deposit', { amount: 3, commandId: 'c3' }, { timeoutMs: 60_000 });
    for (let i = 0; i < 20; i++) await clock.advance(500);
    // Ten seconds of outage: attempts every second at most, no give-up, and the node answers.
    const restarts = events.get('a')!.filter((e) => e.type === 'restart-scheduled');
    expect(restarts.length).toBeGreaterThanOrEqual(9);
    expect(restarts.every((e) => e.type === 'restart-scheduled' && e.delayMs <= 1200)).toBe(true);
    expect(events.get('a')!.filter((e) => e.type === 'activation-failed')).toEqual([]);
    await expect(a.actorOf('fragile', 'any', Fragile).ask('ping', {})).resolves.toBe('pong from a');
    outage.setDown(false);
    await clock.advance(1200);
    await expect(waiting).resolves.toEqual({ balance: 4, node: 'a' });
    expect(a.status.tag).toBe('running');
  });

  it("with outage: 'fail-fast', answers ERR_JOURNAL_UNAVAILABLE at once, and tries again after its backoff", async () => {
    const outage = outageJournal(inMemoryJournal());
    const { systems, clock } = await nodes(['a'], {
      bank: {
        behavior: bankOn(outage.journal),
        restart: { outage: 'fail-fast', outageBackoff: exponential({ baseMs: 300, maxMs: 300 }) },
      },
    });
    const account = systems.get('a')!.actorOf('bank', 'k', Bank);
    await account.ask('deposit', { amount: 1, commandId: 'c1' });
    outage.setDown(true);
    await expect(account.ask('deposit', { amount: 2, commandId: 'c2' })).rejects.toMatchObject({
      code: 'ERR_ACTOR_CRASHED',
    });
    await expect(account.ask('deposit', { amount: 2, commandId: 'c2' })).rejects.toMatchObject({
      code: 'ERR_JOURNAL_UNAVAILABLE',
    });
    outage.setDown(false);
    await expect(account.ask('deposit', { amount: 2, commandId: 'c2' })).rejects.toMatchObject({
      code: 'ERR_JOURNAL_UNAVAILABLE',
    });
    await clock.advance(300);
    await expect(account.ask('deposit', { amount: 2, commandId: 'c2' })).resolves.toEqual({
      balance: 3,
      node: 'a',
    });
  });

  it('stops a stale activation without a restart and sends its queued messages to the current owner', async () => {
    const journal = inMemoryJournal();
    const { systems, events, network } = await nodes(['a', 'b'], { bank: { behavior: bankOn(journal) } });
    const b = systems.get('b')!;
    // A key that b hosts.
    let key = '';
    for (let i = 0; key === ''; i++) {
      const reply = await b
        .actorOf('bank', `k${i}`, Bank)
        .ask('deposit', { amount: 1, commandId: `k${i}-0` });
      if (reply.node === 'b') key = `k${i}`;
    }
    // What a partition leaves behind: node a took the lease over and claimed the stream.
    const store = await network.transport().store!('ac');
    const lease = await store.lease(`bank/${key}`, 'a', () => true);
    await journal.append(`bank-${key}`, [], { fence: (lease as { fence: number }).fence });
    const ref = b.actorOf('bank', key, Bank);
    const asks = [1, 2, 3].map((n) =>
      ref.ask('deposit', { amount: 1, commandId: `${key}-${n}` }).catch((e) => e),
    );
    const [first, second, third] = await Promise.all(asks);
    // The first command met the stale fence; the two queued behind it were handled by a's activation.
    expect(first).toMatchObject({
      code: 'ERR_ACTOR_CRASHED',
      cause: expect.objectContaining({ code: 'ERR_FENCED' }),
    });
    expect(second).toEqual({ balance: 2, node: 'a' });
    expect(third).toEqual({ balance: 3, node: 'a' });
    const address = `troupe://ac/@bank/${key}`;
    expect(events.get('b')).toContainEqual(
      expect.objectContaining({ type: 'activation-stopped', address, reason: 'lease-lost' }),
    );
    expect(events.get('b')!.filter((e) => e.type === 'actor-restarted' && e.address === address)).toEqual([]);
    expect(b.status.tag).toBe('running');
  });
});

describe('membership while the cluster store is unreachable', () => {
  it('declares nobody down while this node cannot reach the store, and still sees a real crash', async () => {
    const { systems, events, faults, clock } = await nodes(['a', 'b', 'c'], {
      fragile: { behavior: fragile },
    });
    for (const fault of faults.values()) fault.unreachable = true;
    await clock.advance(10 * HEARTBEAT_MS);
    for (const fault of faults.values()) fault.unreachable = false;
    await clock.advance(2 * HEARTBEAT_MS);
    for (const [id, seen] of events) {
      expect(
        seen.filter((e) => e.type === 'member-down'),
        id,
      ).toEqual([]);
      expect(
        systems
          .get(id)!
          .members()
          .map((m) => `${m.node}:${m.state}`),
      ).toEqual(['a:up', 'b:up', 'c:up']);
    }
    // c dies for real (its store calls do nothing, as for a killed process): the others see it.
    faults.get('c')!.silent = true;
    await clock.advance(5 * HEARTBEAT_MS);
    for (const id of ['a', 'b']) {
      expect(events.get(id)).toContainEqual(expect.objectContaining({ type: 'member-down', node: 'c' }));
    }
  });
});

describe('keys', () => {
  it('are checked by actorOf: length, control characters, lone surrogates and the kind pattern', async () => {
    const { systems } = await nodes(['a'], {
      fragile: { behavior: fragile },
      strict: { behavior: fragile, keys: { maxLength: 8, pattern: /^[a-z0-9-]+$/ } },
    });
    const a = systems.get('a')!;
    for (const key of ['k'.repeat(257), 'nul\u0000', 'bell\u0007', 'lone\uD800']) {
      expect(() => a.actorOf('fragile', key), JSON.stringify(key)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_NAME' }),
      );
    }
    expect(() => a.actorOf('strict', 'Upper')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_NAME' }));
    expect(() => a.actorOf('strict', 'too-long-key')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_NAME' }),
    );
    await expect(a.actorOf('strict', 'ok-1', Fragile).ask('ping', {})).resolves.toBe('pong from a');
    await expect(a.actorOf('fragile', 'k'.repeat(256), Fragile).ask('ping', {})).resolves.toBe('pong from a');
  });

  it('rules are options: a bad one is ERR_INVALID_OPTION naming it', async () => {
    await expect(
      createNode({
        name: 'ac',
        node: 'x',
        transport: inProcessNetwork().transport(),
        kinds: { fragile: { behavior: fragile, keys: { pattern: 'abc' as unknown as RegExp } } },
      }),
    ).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      message: expect.stringContaining('kinds.fragile.keys.pattern'),
    });
    await expect(
      createNode({
        name: 'ac',
        node: 'x',
        transport: inProcessNetwork().transport(),
        kinds: { fragile: { behavior: fragile, restart: { outage: 'later' as 'wait' } } },
      }),
    ).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      message: expect.stringContaining('kinds.fragile.restart.outage'),
    });
  });
});
