/**
 * Self-fencing of a node cut off from the cluster store, on the simulated cluster of the chaos
 * harness (its scheduler, network and store, which a partition makes unreachable from the minority
 * side): while the others declare the node down and take its named actors' leases, its old
 * activations must not answer. A read sent through it while it is cut off, or paused, waits and is
 * answered, once it reaches the store again, by the key's new holder, never from the stale copy.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  createNode,
  defineProtocol,
  inMemoryJournal,
  type Journal,
  persistentBehavior,
  seededRandom,
  type TreeNode,
} from '../../index.js';
import { SimNetwork } from '../../ops/chaos/sim/network.js';
import { type NodeClock, SimScheduler } from '../../ops/chaos/sim/scheduler.js';

const HEARTBEAT_MS = 500;
const NODES = ['n1', 'n2', 'n3'];

const Register = defineProtocol('sf.register', {
  read: ask(z.object({}), z.number().nullable()),
  write: ask(z.object({ value: z.number() }), z.null()),
});

function registerOn(journal: Journal) {
  return persistentBehavior({
    protocols: [Register],
    journal,
    persistenceId: ({ name }) => `register-${name}`,
    initialState: () => null as number | null,
    events: { written: z.object({ value: z.number() }) },
    apply: { written: (_s, { value }) => value },
    commands: {
      read: () => ({ reply: (s) => s }),
      write: ({ value }) => ({ events: [{ type: 'written', data: { value } }], reply: () => null }),
    },
  });
}

interface Lab {
  readonly scheduler: SimScheduler;
  readonly network: SimNetwork;
  readonly systems: Map<string, ActorSystem>;
  readonly clocks: Map<string, NodeClock>;
  /** Moves simulated time until `work` settles (at most `limitMs`), and returns it settled. */
  drive<T>(work: Promise<T>, limitMs?: number): Promise<PromiseSettledResult<T>>;
  /** Moves simulated time by `ms`. */
  advance(ms: number): Promise<void>;
  /** The node that runs the activation of `key` now. */
  holderOf(key: string): string | undefined;
}

let lab: Lab | undefined;
afterEach(async () => {
  if (lab === undefined) return;
  for (const clock of lab.clocks.values()) clock.kill();
  lab = undefined;
});

async function cluster(): Promise<Lab> {
  const scheduler = new SimScheduler();
  const network = new SimNetwork(scheduler, seededRandom(7), NODES);
  const journal = inMemoryJournal({ clock: scheduler, random: seededRandom(8) });
  const systems = new Map<string, ActorSystem>();
  const clocks = new Map<string, NodeClock>();
  const drive = async <T>(work: Promise<T>, limitMs = 30_000): Promise<PromiseSettledResult<T>> => {
    let result: PromiseSettledResult<T> | undefined;
    work.then(
      (value) => {
        result = { status: 'fulfilled', value };
      },
      (reason: unknown) => {
        result = { status: 'rejected', reason };
      },
    );
    const limit = scheduler.now() + limitMs;
    while (result === undefined && scheduler.now() < limit) await scheduler.run(scheduler.now() + 10);
    if (result === undefined) throw new Error(`still pending after ${limitMs} simulated ms`);
    return result;
  };
  for (const [i, name] of NODES.entries()) {
    const clock = scheduler.nodeClock(name);
    clocks.set(name, clock);
    const started = await drive(
      createNode({
        name: 'sf',
        node: name,
        transport: network.transport(name, clock),
        kinds: { register: { behavior: registerOn(journal), passivateAfterMs: 600_000 } },
        clock,
        random: seededRandom(100 + i),
        timeSlices: 'clock',
        heartbeatMs: HEARTBEAT_MS,
        deadLetterLog: () => {},
        devChecks: false,
      }),
    );
    if (started.status === 'rejected') throw started.reason;
    systems.set(name, started.value);
  }
  const holderOf = (key: string) => {
    const address = `troupe://sf/@register/${key}`;
    const has = (t: TreeNode): boolean => t.address === address || t.children.some(has);
    return NODES.find((name) => has(systems.get(name)!.tree()));
  };
  lab = {
    scheduler,
    network,
    systems,
    clocks,
    drive,
    advance: (ms) => scheduler.run(scheduler.now() + ms),
    holderOf,
  };
  // Everyone sees everyone.
  await lab.advance(3 * HEARTBEAT_MS);
  return lab;
}

function register(system: ActorSystem, key: string) {
  return system.actorOf('register', key, Register);
}

/** Writes 1 to `key`, then cuts its holder off; the others declare it down and write 2. */
async function takeOverFromIsolated(l: Lab, key: string): Promise<{ isolated: string; other: string }> {
  const first = await l.drive(register(l.systems.get('n1')!, key).ask('write', { value: 1 }));
  expect(first.status).toBe('fulfilled');
  const isolated = l.holderOf(key)!;
  expect(isolated).toBeDefined();
  const other = NODES.find((n) => n !== isolated)!;
  return { isolated, other };
}

describe('a node cut off from the cluster store fences itself', () => {
  it('does not answer a read from its old activation once another node took the key over', async () => {
    const l = await cluster();
    const key = 'k0';
    const { isolated, other } = await takeOverFromIsolated(l, key);
    const rule = { sides: [[isolated], NODES.filter((n) => n !== isolated)], oneWay: false };
    l.network.partitions.add(rule);
    // Long enough for the others to declare it down (downAfterMissed = 3 beats, checked each quarter beat).
    await l.advance(5 * HEARTBEAT_MS);
    const second = await l.drive(register(l.systems.get(other)!, key).ask('write', { value: 2 }));
    expect(second.status).toBe('fulfilled');
    // A read through the cut-off node while it is cut off, and one right after the heal (before its
    // next heartbeat tells it that it reaches the store again).
    const during = register(l.systems.get(isolated)!, key).ask('read', {}, { timeoutMs: 20_000 });
    await l.advance(HEARTBEAT_MS);
    l.network.partitions.delete(rule);
    const after = register(l.systems.get(isolated)!, key).ask('read', {}, { timeoutMs: 20_000 });
    const results = await l.drive(Promise.allSettled([during, after]));
    expect(results.status).toBe('fulfilled');
    const [r1, r2] = (results as PromiseFulfilledResult<PromiseSettledResult<number | null>[]>).value;
    expect(r1).toEqual({ status: 'fulfilled', value: 2 });
    expect(r2).toEqual({ status: 'fulfilled', value: 2 });
    // Its old activation is gone; the key has one activation, on a node that was not cut off.
    await l.advance(2 * HEARTBEAT_MS);
    const holders = NODES.filter((n) => {
      const address = `troupe://sf/@register/${key}`;
      const has = (t: TreeNode): boolean => t.address === address || t.children.some(has);
      return has(l.systems.get(n)!.tree());
    });
    expect(holders).toHaveLength(1);
    expect(holders[0]).not.toBe(isolated);
  });

  it('holds a read that reaches a paused node once its last heartbeat is old, and serves it after it resumes', async () => {
    const l = await cluster();
    const key = 'k1';
    const { isolated: paused, other } = await takeOverFromIsolated(l, key);
    l.clocks.get(paused)!.pause();
    await l.advance(5 * HEARTBEAT_MS);
    const second = await l.drive(register(l.systems.get(other)!, key).ask('write', { value: 2 }));
    expect(second.status).toBe('fulfilled');
    // The first thing the paused node does on resuming is to take this read: it must not be answered
    // from the old activation, whose lease is another node's now.
    const read = register(l.systems.get(paused)!, key).ask('read', {}, { timeoutMs: 20_000 });
    l.clocks.get(paused)!.resume();
    l.network.resume(paused);
    expect(await l.drive(read)).toEqual({ status: 'fulfilled', value: 2 });
  });

  it('keeps serving from its activation when its store is back before anyone took the key', async () => {
    const l = await cluster();
    const key = 'k2';
    const { isolated } = await takeOverFromIsolated(l, key);
    const rule = { sides: [[isolated], NODES.filter((n) => n !== isolated)], oneWay: false };
    l.network.partitions.add(rule);
    // Shorter than the others' patience (three beats of silence, counted from its last heartbeat).
    await l.advance(1.8 * HEARTBEAT_MS);
    const read = register(l.systems.get(isolated)!, key).ask('read', {}, { timeoutMs: 20_000 });
    l.network.partitions.delete(rule);
    expect(await l.drive(read)).toEqual({ status: 'fulfilled', value: 1 });
    expect(l.holderOf(key)).toBe(isolated);
  });

  it('holds at most 10,000 messages while fenced: each further one is a dead letter with ERR_NOT_DELIVERED', async () => {
    const l = await cluster();
    const key = 'k3';
    const { isolated } = await takeOverFromIsolated(l, key);
    const system = l.systems.get(isolated)!;
    const refused: { reason: string; code: string | undefined }[] = [];
    system.events$.subscribe((event) => {
      if (event.type === 'dead-letter') refused.push({ reason: event.reason, code: event.error?.code });
    });
    const rule = { sides: [[isolated], NODES.filter((n) => n !== isolated)], oneWay: false };
    l.network.partitions.add(rule);
    await l.advance(5 * HEARTBEAT_MS);
    const reads = Array.from({ length: 10_001 }, () =>
      register(system, key).ask('read', {}, { timeoutMs: 60_000 }),
    );
    const last = await l.drive(reads[10_000]!, 1000);
    expect(last.status).toBe('rejected');
    expect((last as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_NOT_DELIVERED' });
    expect(refused).toEqual([{ reason: 'mailbox-full', code: 'ERR_NOT_DELIVERED' }]);
    // Healed (nobody took the key meanwhile): the held ones are answered by its activation.
    l.network.partitions.delete(rule);
    expect(await l.drive(reads[0]!)).toEqual({ status: 'fulfilled', value: 1 });
    expect(await l.drive(reads[9_999]!)).toEqual({ status: 'fulfilled', value: 1 });
  });
});
