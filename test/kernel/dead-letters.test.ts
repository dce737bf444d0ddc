import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ask, behavior, createSystem, defineProtocol, tell } from '../../index.js';
import { flushMicrotasks, SimulatedClock, settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, gate, makeSystem, rejection, track } from './helpers.js';

closeSystemsAfterEach();

const Sink = defineProtocol('dl.sink', {
  put: tell(z.object({ v: z.number() })),
  get: ask(z.object({}), z.number()),
  slow: tell(z.object({})),
  relay: tell(z.object({ to: z.string(), v: z.number() })),
});

function sink(slow?: Promise<void>) {
  return behavior({
    protocols: [Sink],
    initialState: () => ({ n: 0 }),
    handlers: {
      put: (_b, ctx) => {
        ctx.state.n++;
      },
      get: (_b, ctx) => ctx.state.n,
      slow: async () => {
        await slow;
      },
      relay: ({ to, v }, ctx) => ctx.system.ref(to, Sink).tell('put', { v }),
    },
  });
}

describe('dead letters', () => {
  it('are made of messages to a stopped actor, with address, type, body and ERR_ACTOR_STOPPED', async () => {
    const { system, dead } = makeSystem();
    const ref = system.spawn(sink(), { name: 'gone' });
    await system.stop(ref);
    ref.tell('put', { v: 1 });
    expect(dead).toEqual([
      expect.objectContaining({
        type: 'dead-letter',
        to: ref.address,
        from: undefined,
        messageType: 'put',
        body: { v: 1 },
        reason: 'actor-stopped',
      }),
    ]);
    expect(dead[0]!.error?.code).toBe('ERR_ACTOR_STOPPED');
  });

  it('are made of asks to a stopped actor too, besides the ask rejecting', async () => {
    const { system, dead } = makeSystem();
    const ref = system.spawn(sink(), { name: 'gone' });
    await system.stop(ref);
    await expect(ref.ask('get', {})).rejects.toMatchObject({ code: 'ERR_ACTOR_STOPPED' });
    ref.tell('put', { v: 1 });
    expect(dead.map((d) => [d.messageType, d.reason])).toEqual([
      ['get', 'actor-stopped'],
      ['put', 'actor-stopped'],
    ]);
  });

  it('name the sending actor in `from`', async () => {
    const { system, dead } = makeSystem();
    const gone = system.spawn(sink(), { name: 'gone' });
    const relay = system.spawn(sink(), { name: 'relay' });
    await system.stop(gone);
    relay.tell('relay', { to: gone.address, v: 1 });
    await settle(system);
    // The address names no live actor any more: looked up afresh, it is no-such-actor.
    expect(dead.map((d) => [d.to, d.from, d.reason])).toEqual([
      [gone.address, relay.address, 'no-such-actor'],
    ]);
    dead.length = 0;
    // A ref held from before the stop reaches the stopped actor: actor-stopped.
    gone.tell('put', { v: 2 }, { from: relay });
    expect(dead.map((d) => [d.to, d.from, d.reason])).toEqual([
      [gone.address, relay.address, 'actor-stopped'],
    ]);
  });

  it('are made of the messages left in the mailbox when an actor stops, in order; asks are rejected', async () => {
    const slow = gate();
    const { system, dead } = makeSystem();
    const ref = system.spawn(sink(slow.promise));
    ref.tell('slow', {});
    await flushMicrotasks();
    ref.tell('put', { v: 1 });
    const asked = ref.ask('get', {});
    ref.tell('put', { v: 2 });
    const stopped = system.stop(ref);
    slow.open();
    await stopped;
    expect((await rejection(asked)).code).toBe('ERR_ACTOR_STOPPED');
    expect(dead.map((d) => [d.messageType, d.body, d.reason])).toEqual([
      ['put', { v: 1 }, 'actor-stopped'],
      ['get', {}, 'actor-stopped'],
      ['put', { v: 2 }, 'actor-stopped'],
    ]);
  });

  it('are published on deadLetters$, which carries nothing else', async () => {
    const system = track(createSystem({ deadLetterLog: () => {} }));
    const seen: string[] = [];
    system.deadLetters$.subscribe((d) => seen.push(`${d.type}:${d.reason}`));
    const ref = system.spawn(sink());
    ref.tell('put', { v: 1 });
    await system.stop(ref);
    ref.tell('put', { v: 2 });
    // The queued put and the late one; none of the lifecycle events events$ carries.
    expect(seen).toEqual(['dead-letter:actor-stopped', 'dead-letter:actor-stopped']);
  });
});

describe('an ask that ended while it waited in the mailbox', () => {
  it('is not handled: it becomes an expired dead letter, and the asks still waiting are handled', async () => {
    const clock = new SimulatedClock();
    const { system, dead } = makeSystem({ clock });
    const slow = gate();
    let handled = 0;
    const counting = behavior({
      protocols: [Sink],
      handlers: {
        put: () => {},
        get: () => ++handled,
        slow: () => slow.promise,
        relay: () => {},
      },
    });
    const ref = system.spawn(counting, { name: 'busy' });
    ref.tell('slow', {});
    const early = ref.ask('get', {}, { timeoutMs: 100 }).catch((e: unknown) => e);
    const controller = new AbortController();
    const aborted = ref
      .ask('get', {}, { timeoutMs: 10_000, signal: controller.signal })
      .catch((e: unknown) => e);
    const patient = ref.ask('get', {}, { timeoutMs: 10_000 });
    await flushMicrotasks();
    await clock.advance(100);
    controller.abort();
    expect(await early).toMatchObject({ code: 'ERR_ASK_TIMEOUT' });
    expect(await aborted).toMatchObject({ code: 'ERR_ASK_ABORTED' });
    slow.open();
    await expect(patient).resolves.toBe(1);
    expect(handled).toBe(1);
    expect(dead.map((d) => [d.to, d.messageType, d.reason, d.error?.code])).toEqual([
      [ref.address, 'get', 'expired', 'ERR_ASK_TIMEOUT'],
      [ref.address, 'get', 'expired', 'ERR_ASK_TIMEOUT'],
    ]);
  });
});

describe('the dead-letter log', () => {
  it('receives up to deadLetterLogLimit lines while nobody subscribes, then one suppression line', async () => {
    const lines: string[] = [];
    const system = track(createSystem({ deadLetterLog: (line) => lines.push(line), deadLetterLogLimit: 3 }));
    const ref = system.spawn(sink(), { name: 'gone' });
    await system.stop(ref);
    for (let v = 0; v < 10; v++) ref.tell('put', { v });
    expect(lines).toHaveLength(4);
    for (const line of lines.slice(0, 3)) {
      expect(line).toContain('"put"');
      expect(line).toContain(ref.address);
      expect(line).toContain('actor-stopped');
    }
    expect(lines[3]).toMatch(/3 dead letters logged/);
    expect(lines[3]).toContain('deadLetters$');
  });

  it('prints no suppression line when exactly the limit was reached', async () => {
    const lines: string[] = [];
    const system = track(createSystem({ deadLetterLog: (line) => lines.push(line), deadLetterLogLimit: 3 }));
    const ref = system.spawn(sink());
    await system.stop(ref);
    for (let v = 0; v < 3; v++) ref.tell('put', { v });
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).toContain('"put"');
  });

  it('defaults to 10 lines', async () => {
    const lines: string[] = [];
    const system = track(createSystem({ deadLetterLog: (line) => lines.push(line) }));
    const ref = system.spawn(sink());
    await system.stop(ref);
    for (let v = 0; v < 30; v++) ref.tell('put', { v });
    expect(lines).toHaveLength(11);
  });

  it('is not written while someone subscribes to the events', async () => {
    const lines: string[] = [];
    const system = track(createSystem({ deadLetterLog: (line) => lines.push(line) }));
    const subscription = system.events$.subscribe(() => {});
    const ref = system.spawn(sink());
    await system.stop(ref);
    ref.tell('put', { v: 1 });
    expect(lines).toEqual([]);
    subscription.unsubscribe();
    ref.tell('put', { v: 2 });
    expect(lines).toHaveLength(1);
  });
});

describe('the node address', () => {
  it('parses as the tree root; a message to it is a no-such-actor dead letter', () => {
    const { system, dead } = makeSystem();
    const root = system.tree().address;
    const ref = system.ref(root);
    ref.tell('anything', {});
    expect(dead).toEqual([expect.objectContaining({ to: root, reason: 'no-such-actor' })]);
  });
});

describe('a reply after the ask stopped waiting', () => {
  it('is an expired dead letter, not lost', async () => {
    const Slow = defineProtocol('dl.slow', { work: ask(z.object({}), z.string()) });
    const g = gate();
    const { system, dead } = makeSystem();
    const ref = system.spawn(
      behavior({
        protocols: [Slow],
        handlers: {
          work: async () => {
            await g.promise;
            return 'late';
          },
        },
      }),
      { name: 'slow' },
    );
    expect((await rejection(ref.ask('work', {}, { timeoutMs: 10 }))).code).toBe('ERR_ASK_TIMEOUT');
    g.open();
    await settle(system);
    expect(dead).toEqual([
      expect.objectContaining({ from: ref.address, messageType: 'work', body: 'late', reason: 'expired' }),
    ]);
  });
});
