import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  behavior,
  createSystem,
  defineProtocol,
  deliverFromBoundary,
  type SystemEvent,
  tell,
} from '../../index.js';
import { flushMicrotasks, SimulatedClock, settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, gate, makeSystem, rejection, thrown, track, within } from './helpers.js';

closeSystemsAfterEach();

const Job = defineProtocol('dc.job', {
  work: tell(z.object({ id: z.number() })),
  slow: tell(z.object({ id: z.number() })),
  hang: ask(z.object({}), z.number()),
  forward: tell(z.object({ to: z.string(), id: z.number() })),
  done: ask(z.object({}), z.array(z.number())),
});

/** Logs finished work; `slow` waits for `slowGate`; postStop is logged under `name`. */
function jobber(name: string, log: string[], slowGate?: Promise<void>, kids: string[] = []) {
  return behavior({
    protocols: [Job],
    initialState: () => ({ done: [] as number[] }),
    preStart: (ctx) => {
      for (const kid of kids) ctx.spawn(jobber(kid, log), { name: kid });
    },
    postStop: () => {
      log.push(`postStop:${name}`);
    },
    handlers: {
      work: ({ id }, ctx) => {
        ctx.state.done.push(id);
        log.push(`${name}:work${id}`);
      },
      slow: async ({ id }, ctx) => {
        log.push(`${name}:slow${id}-start`);
        await slowGate;
        ctx.state.done.push(id);
        log.push(`${name}:slow${id}-end`);
      },
      hang: () => new Promise<number>(() => {}),
      forward: ({ to, id }, ctx) => ctx.system.ref(to, Job).tell('work', { id }),
      done: (_b, ctx) => [...ctx.state.done],
    },
  });
}

const types = (events: SystemEvent[]) => events.map((e) => e.type);

describe('drain()', () => {
  it('refuses external tells as system-draining dead letters, finishes in-flight work, then stops', async () => {
    const slow = gate();
    const log: string[] = [];
    const { system, dead, events } = makeSystem();
    const ref = system.spawn(jobber('a', log, slow.promise), { name: 'a' });
    ref.tell('slow', { id: 1 });
    ref.tell('work', { id: 2 });
    await flushMicrotasks();
    const draining = system.drain();
    expect(system.status.tag).toBe('draining');
    ref.tell('work', { id: 3 });
    expect((await rejection(ref.ask('done', {}))).code).toBe('ERR_SYSTEM_DRAINING');
    slow.open();
    await draining;
    expect(log).toEqual(['a:slow1-start', 'a:slow1-end', 'a:work2', 'postStop:a']);
    expect(dead.map((d) => [d.messageType, d.reason, d.error?.code])).toEqual([
      ['work', 'system-draining', 'ERR_SYSTEM_DRAINING'],
      ['done', 'system-draining', 'ERR_SYSTEM_DRAINING'],
    ]);
    expect(system.status.tag).toBe('stopped');
    expect(types(events)).toContain('system-draining');
    expect(events.at(-1)).toMatchObject({ type: 'system-stopped', error: undefined, drainTimedOut: false });
    await expect(system.closed()).resolves.toBeUndefined();
  });

  it('still delivers messages between actors while draining', async () => {
    const slow = gate();
    const log: string[] = [];
    const { system } = makeSystem();
    const a = system.spawn(jobber('a', log, slow.promise), { name: 'a' });
    const b = system.spawn(jobber('b', log), { name: 'b' });
    a.tell('slow', { id: 1 });
    a.tell('forward', { to: b.address, id: 7 });
    await flushMicrotasks();
    const draining = system.drain();
    slow.open();
    await draining;
    expect(log).toContain('b:work7');
  });

  it('delivers what an in-flight async handler sends after an await with `from: ctx.self`', async () => {
    const Relay = defineProtocol('dc.relay', { relayLater: tell(z.object({ to: z.string() })) });
    const slow = gate();
    const relay = behavior({
      protocols: [Relay],
      handlers: {
        relayLater: async ({ to }, ctx) => {
          await slow.promise;
          ctx.system.ref(to, Job).tell('work', { id: 9 }, { from: ctx.self });
        },
      },
    });
    const log: string[] = [];
    const { system, dead } = makeSystem();
    const sink = system.spawn(jobber('sink', log), { name: 'sink' });
    system.spawn(relay).tell('relayLater', { to: sink.address });
    await flushMicrotasks();
    const draining = system.drain();
    slow.open();
    await draining;
    expect(log).toContain('sink:work9');
    expect(dead).toEqual([]);
  });

  it('runs postStop leaf-first', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    system.spawn(jobber('root', log, undefined, ['k1', 'k2']), { name: 'root' });
    system.spawn(jobber('other', log), { name: 'other' });
    await settle(system);
    await system.drain();
    expect(log).toEqual(['postStop:other', 'postStop:k2', 'postStop:k1', 'postStop:root']);
  });

  it('stops anyway after its timeout and reports drainTimedOut', async () => {
    const clock = new SimulatedClock();
    const { system, events } = makeSystem({ clock, shutdownMs: 50 });
    const ref = system.spawn(jobber('a', []));
    const hung = ref.ask('hang', {}, { timeoutMs: 60_000 });
    hung.catch(() => {});
    await flushMicrotasks();
    let drained = false;
    const draining = system.drain({ timeoutMs: 100 }).then(() => {
      drained = true;
    });
    await clock.advance(99);
    expect(drained).toBe(false);
    await clock.advance(1);
    await clock.advance(50);
    await draining;
    expect(events.at(-1)).toMatchObject({ type: 'system-stopped', drainTimedOut: true });
    expect((await rejection(hung)).code).toBe('ERR_SYSTEM_STOPPED');
  });

  it('refuses spawning from outside while draining with ERR_SYSTEM_DRAINING', async () => {
    const slow = gate();
    const { system } = makeSystem();
    const ref = system.spawn(jobber('a', [], slow.promise));
    ref.tell('slow', { id: 1 });
    await flushMicrotasks();
    const draining = system.drain();
    expect(thrown(() => system.spawn(jobber('b', []))).code).toBe('ERR_SYSTEM_DRAINING');
    slow.open();
    await draining;
  });

  it('returns the same completion when called twice, and close() during a drain waits for it', async () => {
    const slow = gate();
    const log: string[] = [];
    const { system } = makeSystem();
    const ref = system.spawn(jobber('a', log, slow.promise));
    ref.tell('slow', { id: 1 });
    await flushMicrotasks();
    const first = system.drain();
    const second = system.drain();
    const closing = system.close();
    slow.open();
    await Promise.all([first, second, closing]);
    expect(log).toEqual(['a:slow1-start', 'a:slow1-end', 'postStop:a']);
  });
});

describe('status', () => {
  it('says stopping while the tree stops, and stopped once it has', async () => {
    const { system } = makeSystem();
    const release = gate();
    system.spawn(behavior({ protocols: [], handlers: {}, postStop: () => release.promise }), {
      name: 'slow-to-stop',
    });
    const closing = system.close();
    expect(system.status.tag).toBe('stopping');
    release.open();
    await closing;
    expect(system.status.tag).toBe('stopped');
  });
});

describe('drain() options', () => {
  it('rejects a negative timeoutMs with ERR_INVALID_OPTION and leaves the system running', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(jobber('a', []));
    expect((await rejection(system.drain({ timeoutMs: -1 }))).code).toBe('ERR_INVALID_OPTION');
    expect(system.status.tag).toBe('running');
    ref.tell('work', { id: 1 });
    expect(await ref.ask('done', {})).toEqual([1]);
  });
});

describe('close()', () => {
  it('stops at once: does not wait for in-flight work, dead-letters the queue, rejects asks', async () => {
    const log: string[] = [];
    const { system, dead } = makeSystem();
    const ref = system.spawn(jobber('a', log, new Promise(() => {})), { name: 'a' });
    ref.tell('slow', { id: 1 });
    await flushMicrotasks();
    ref.tell('work', { id: 2 });
    const queued = ref.ask('done', {});
    await within(system.close(), 200, 'close()');
    expect(log).toEqual(['a:slow1-start', 'postStop:a']);
    expect(dead.map((d) => [d.messageType, d.reason])).toEqual([
      ['work', 'actor-stopped'],
      ['done', 'actor-stopped'],
    ]);
    expect((await rejection(queued)).code).toBe('ERR_ACTOR_STOPPED');
    expect(system.status.tag).toBe('stopped');
    await expect(system.closed()).resolves.toBeUndefined();
  });

  it('stops at once even while a drain waits for in-flight work', async () => {
    // close(): "Stops the tree now, leaf-first." A drain in progress must not hold it back.
    const clock = new SimulatedClock();
    const log: string[] = [];
    const { system } = makeSystem({ clock, shutdownMs: 0 });
    const ref = system.spawn(jobber('a', log, new Promise(() => {})));
    ref.tell('slow', { id: 1 });
    await flushMicrotasks();
    const draining = system.drain({ timeoutMs: 60_000 });
    try {
      await within(system.close(), 300, 'close() during a drain');
      expect(system.status.tag).toBe('stopped');
      expect(log).toEqual(['a:slow1-start', 'postStop:a']);
      await within(draining, 300, 'the drain');
    } finally {
      // Let the drain time out either way, so the system can be closed after the test.
      await clock.advance(60_000);
    }
  });

  it('rejects an ask in flight when the system stops', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(jobber('a', []));
    const hung = ref.ask('hang', {});
    await flushMicrotasks();
    await system.close();
    expect((await rejection(hung)).code).toBe('ERR_SYSTEM_STOPPED');
  });

  it('refuses spawn afterwards with ERR_SYSTEM_STOPPED; sends are system-stopped dead letters', async () => {
    const lines: string[] = [];
    // The event stream completes at close, so later dead letters go to the log.
    const system = track(createSystem({ deadLetterLog: (l) => lines.push(l) }));
    const ref = system.spawn(jobber('a', []));
    await system.close();
    expect(thrown(() => system.spawn(jobber('b', []))).code).toBe('ERR_SYSTEM_STOPPED');
    expect((await rejection(ref.ask('done', {}))).code).toBe('ERR_SYSTEM_STOPPED');
    ref.tell('work', { id: 1 });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('"done"');
    expect(lines[1]).toContain('"work"');
    for (const line of lines) expect(line).toContain('(system-stopped)');
  });
});

describe('disposal', () => {
  it('drains the system at the end of an `await using` block', async () => {
    const log: string[] = [];
    let escaped: ActorSystem | undefined;
    {
      await using system = createSystem({ deadLetterLog: () => {} });
      escaped = system;
      const ref = system.spawn(jobber('a', log));
      ref.tell('work', { id: 1 });
    }
    expect(escaped.status.tag).toBe('stopped');
    expect(log).toEqual(['a:work1', 'postStop:a']);
    await expect(escaped.closed()).resolves.toBeUndefined();
  });
});

describe('supervision option', () => {
  it('refuses an unknown strategy with ERR_INVALID_OPTION at createSystem and at spawn', () => {
    const strategy = 'one_for_some' as 'one_for_one';
    expect(thrown(() => createSystem({ supervision: { strategy } })).code).toBe('ERR_INVALID_OPTION');
    const { system } = makeSystem();
    expect(thrown(() => system.spawn(jobber('a', []), { supervision: { strategy } })).code).toBe(
      'ERR_INVALID_OPTION',
    );
  });
});

describe('drain() and senders from elsewhere', () => {
  it('refuses a message that names a sender outside this system, from a caller or a boundary', async () => {
    const slow = gate();
    const { system, dead } = makeSystem();
    const other = track(createSystem({ name: 'other', deadLetterLog: () => {} }));
    const stranger = other.spawn(jobber('x', []));
    const ref = system.spawn(jobber('a', [], slow.promise), { name: 'a' });
    ref.tell('slow', { id: 1 });
    await flushMicrotasks();
    const draining = system.drain({ timeoutMs: 1000 });
    ref.tell('work', { id: 2 }, { from: stranger });
    await deliverFromBoundary(system, {
      id: 'e1',
      to: ref.address,
      from: 'troupe://other/n9/x',
      type: 'dc.job.work',
      body: { id: 3 },
    });
    slow.open();
    await draining;
    expect(dead.map((d) => [d.reason, (d.body as { id?: number }).id])).toEqual([
      ['system-draining', 2],
      ['system-draining', 3],
    ]);
  });
});
