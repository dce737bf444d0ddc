import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ask, behavior, createSystem, defineProtocol, type SystemEvent, tell } from '../../index.js';
import { flushMicrotasks, SimulatedClock, settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, makeSystem, rejection, thrown } from './helpers.js';

closeSystemsAfterEach();

const Box = defineProtocol('mb.box', {
  push: tell(z.object({ v: z.number() })),
  echo: ask(z.object({ v: z.number() }), z.number()),
  read: ask(z.object({}), z.array(z.number())),
});

const recorder = behavior({
  protocols: [Box],
  initialState: () => ({ seen: [] as number[] }),
  handlers: {
    push: ({ v }, ctx) => {
      ctx.state.seen.push(v);
    },
    echo: ({ v }, ctx) => {
      ctx.state.seen.push(v);
      return v;
    },
    read: (_b, ctx) => [...ctx.state.seen],
  },
});

type Overflow = Extract<SystemEvent, { type: 'mailbox-overflow' }>;
const overflows = (events: SystemEvent[]) =>
  events.filter((e): e is Overflow => e.type === 'mailbox-overflow');

// Messages sent synchronously from outside queue up: the actor runs only once the test yields.

describe('overflow policy reject (the default)', () => {
  it('throws ERR_MAILBOX_FULL from tell, dead-letters the message (mailbox-full) and keeps the queue', async () => {
    const { system, dead } = makeSystem();
    const ref = system.spawn(recorder, { mailbox: { capacity: 2 } });
    ref.tell('push', { v: 1 });
    ref.tell('push', { v: 2 });
    const error = thrown(() => ref.tell('push', { v: 3 }));
    expect(error.code).toBe('ERR_MAILBOX_FULL');
    await settle(system);
    expect(await ref.ask('read', {})).toEqual([1, 2]);
    expect(dead.map((d) => [d.messageType, d.body, d.reason, d.error?.code])).toEqual([
      ['push', { v: 3 }, 'mailbox-full', 'ERR_MAILBOX_FULL'],
    ]);
  });

  it('rejects an ask with ERR_MAILBOX_FULL and dead-letters it', async () => {
    const { system, dead } = makeSystem();
    const ref = system.spawn(recorder, { mailbox: { capacity: 1, overflow: 'reject' } });
    ref.tell('push', { v: 1 });
    const error = await rejection(ref.ask('echo', { v: 2 }));
    expect(error.code).toBe('ERR_MAILBOX_FULL');
    await settle(system);
    expect(await ref.ask('read', {})).toEqual([1]);
    expect(dead.map((d) => [d.messageType, d.reason])).toEqual([['echo', 'mailbox-full']]);
  });

  it('emits a mailbox-overflow event naming the policy and capacity', async () => {
    const { system, events } = makeSystem();
    const ref = system.spawn(recorder, { name: 'full', mailbox: { capacity: 1 } });
    ref.tell('push', { v: 1 });
    thrown(() => ref.tell('push', { v: 2 }));
    expect(overflows(events)).toEqual([
      expect.objectContaining({ address: ref.address, policy: 'reject', capacity: 1 }),
    ]);
  });

  it('accepts messages again once the queue has room', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(recorder, { mailbox: { capacity: 1 } });
    ref.tell('push', { v: 1 });
    thrown(() => ref.tell('push', { v: 2 }));
    await settle(system);
    ref.tell('push', { v: 3 });
    await settle(system);
    expect(await ref.ask('read', {})).toEqual([1, 3]);
  });
});

describe('overflow policy drop-newest', () => {
  it('drops the new message as a dead letter (mailbox-overflow) without throwing', async () => {
    const { system, dead, events } = makeSystem();
    const ref = system.spawn(recorder, { mailbox: { capacity: 2, overflow: 'drop-newest' } });
    ref.tell('push', { v: 1 });
    ref.tell('push', { v: 2 });
    ref.tell('push', { v: 3 });
    await settle(system);
    expect(await ref.ask('read', {})).toEqual([1, 2]);
    expect(dead.map((d) => [d.messageType, d.body, d.reason])).toEqual([
      ['push', { v: 3 }, 'mailbox-overflow'],
    ]);
    expect(overflows(events).map((e) => [e.policy, e.capacity])).toEqual([['drop-newest', 2]]);
  });

  it('rejects a dropped ask', async () => {
    const { system, dead } = makeSystem();
    const ref = system.spawn(recorder, { mailbox: { capacity: 1, overflow: 'drop-newest' } });
    ref.tell('push', { v: 1 });
    const error = await rejection(ref.ask('echo', { v: 2 }));
    expect(error.code).toBe('ERR_MAILBOX_FULL');
    await settle(system);
    expect(dead.map((d) => [d.messageType, d.reason])).toEqual([['echo', 'mailbox-overflow']]);
  });
});

describe('overflow policy drop-oldest', () => {
  it('drops the oldest queued message as a dead letter (mailbox-overflow) to make room', async () => {
    const { system, dead, events } = makeSystem();
    const ref = system.spawn(recorder, { mailbox: { capacity: 2, overflow: 'drop-oldest' } });
    ref.tell('push', { v: 1 });
    ref.tell('push', { v: 2 });
    ref.tell('push', { v: 3 });
    ref.tell('push', { v: 4 });
    await settle(system);
    expect(await ref.ask('read', {})).toEqual([3, 4]);
    expect(dead.map((d) => [d.messageType, d.body, d.reason])).toEqual([
      ['push', { v: 1 }, 'mailbox-overflow'],
      ['push', { v: 2 }, 'mailbox-overflow'],
    ]);
    expect(overflows(events).map((e) => e.policy)).toEqual(['drop-oldest', 'drop-oldest']);
  });

  it('rejects an ask that is dropped as the oldest message', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(recorder, { mailbox: { capacity: 1, overflow: 'drop-oldest' } });
    const dropped = ref.ask('echo', { v: 1 });
    ref.tell('push', { v: 2 });
    const error = await rejection(dropped);
    expect(error.code).toBe('ERR_MAILBOX_FULL');
    await settle(system);
    expect(await ref.ask('read', {})).toEqual([2]);
  });
});

describe('what the capacity counts', () => {
  const Ticking = defineProtocol('mb.ticking', {
    tick: tell(z.object({ n: z.number() })),
    block: tell(z.object({})),
    start: tell(z.object({})),
  });

  it.each(['drop-oldest', 'drop-newest'] as const)(
    'dead-letters a timer tick dropped under %s (every drop is a dead letter)',
    async (overflow) => {
      const clock = new SimulatedClock();
      let release = () => {};
      let n = 0;
      const ticker = behavior({
        protocols: [Ticking],
        handlers: {
          tick: () => {},
          block: () =>
            new Promise<void>((resolve) => {
              release = resolve;
            }),
          start: (_b, ctx) => ctx.timers.startPeriodic('t', 10, 'tick', { n: n++ }),
        },
        mailbox: { capacity: 1, overflow },
      });
      const { system, dead } = makeSystem({ clock });
      const ref = system.spawn(ticker);
      ref.tell('start', {});
      await settle(system);
      ref.tell('block', {});
      await flushMicrotasks();
      await clock.advance(20);
      release();
      await settle(system);
      expect(dead.map((d) => [d.messageType, d.reason])).toEqual([['tick', 'mailbox-overflow']]);
    },
  );

  it('does not count system signals: a watcher with a full mailbox still hears of a termination', async () => {
    const Watch = defineProtocol('mb.watch', {
      block: tell(z.object({})),
      push: tell(z.object({})),
      watch: tell(z.object({ address: z.string() })),
    });
    const heard: string[] = [];
    let release = () => {};
    const watcher = behavior({
      protocols: [Watch],
      handlers: {
        block: () =>
          new Promise<void>((resolve) => {
            release = resolve;
          }),
        push: () => {},
        watch: ({ address }, ctx) => ctx.watch(ctx.system.ref(address)),
      },
      terminated: (ref) => {
        heard.push(ref.address);
      },
      mailbox: { capacity: 1 },
    });
    const { system } = makeSystem();
    const target = system.spawn(recorder);
    const w = system.spawn(watcher);
    w.tell('watch', { address: target.address });
    await settle(system);
    w.tell('block', {});
    await flushMicrotasks();
    w.tell('push', {});
    expect(thrown(() => w.tell('push', {})).code).toBe('ERR_MAILBOX_FULL');
    await system.stop(target);
    await flushMicrotasks();
    release();
    await settle(system);
    expect(heard).toEqual([target.address]);
  });
});

describe('mailbox options', () => {
  it('takes the capacity from the system, then the behaviour, then the spawn options', async () => {
    const { system } = makeSystem({ mailbox: { capacity: 3 } });
    const small = behavior({ ...recorderDefinition(), mailbox: { capacity: 2 } });
    const fill = (ref: { tell: (t: 'push', b: { v: number }) => void }) => {
      let n = 0;
      try {
        for (;;) {
          ref.tell('push', { v: n });
          n++;
        }
      } catch {
        return n;
      }
    };
    expect(fill(system.spawn(recorder))).toBe(3);
    expect(fill(system.spawn(small))).toBe(2);
    expect(fill(system.spawn(small, { mailbox: { capacity: 4 } }))).toBe(4);
    await settle(system);
  });

  it('merges the levels field by field', async () => {
    const { system, dead } = makeSystem({ mailbox: { capacity: 5, overflow: 'drop-newest' } });
    const oldest = behavior({ ...recorderDefinition(), mailbox: { overflow: 'drop-oldest' } });
    // Behaviour sets only the policy: capacity comes from the system.
    const a = system.spawn(oldest);
    for (let v = 0; v < 6; v++) a.tell('push', { v });
    // Spawn sets only the capacity: the behaviour's policy stays.
    const b = system.spawn(oldest, { mailbox: { capacity: 2 } });
    for (let v = 0; v < 3; v++) b.tell('push', { v });
    // Spawn of a plain behaviour with only a capacity: the system's policy stays.
    const c = system.spawn(recorder, { mailbox: { capacity: 1 } });
    c.tell('push', { v: 0 });
    c.tell('push', { v: 1 });
    await settle(system);
    expect(await a.ask('read', {})).toEqual([1, 2, 3, 4, 5]);
    expect(await b.ask('read', {})).toEqual([1, 2]);
    expect(await c.ask('read', {})).toEqual([0]);
    expect(dead.map((d) => [d.to, d.body])).toEqual([
      [a.address, { v: 0 }],
      [b.address, { v: 0 }],
      [c.address, { v: 1 }],
    ]);
  });

  it.each([0, -1, 1.5, Number.NaN])('rejects capacity %s with ERR_INVALID_OPTION at spawn', (capacity) => {
    const { system } = makeSystem();
    expect(thrown(() => system.spawn(recorder, { mailbox: { capacity } })).code).toBe('ERR_INVALID_OPTION');
  });

  it.each([0, -1, 1.5])('rejects capacity %s with ERR_INVALID_OPTION at createSystem', (capacity) => {
    expect(thrown(() => createSystem({ mailbox: { capacity } })).code).toBe('ERR_INVALID_OPTION');
  });

  it('rejects capacity 0 in a behaviour with ERR_INVALID_OPTION', () => {
    expect(thrown(() => behavior({ ...recorderDefinition(), mailbox: { capacity: 0 } })).code).toBe(
      'ERR_INVALID_OPTION',
    );
  });

  it('rejects an unknown overflow policy with ERR_INVALID_OPTION', () => {
    const { system } = makeSystem();
    const overflow = 'drop-all' as 'reject';
    expect(thrown(() => system.spawn(recorder, { mailbox: { overflow } })).code).toBe('ERR_INVALID_OPTION');
    expect(thrown(() => createSystem({ mailbox: { overflow } })).code).toBe('ERR_INVALID_OPTION');
  });
});

function recorderDefinition() {
  return {
    protocols: [Box],
    initialState: () => ({ seen: [] as number[] }),
    handlers: {
      push: ({ v }: { v: number }, ctx: { state: { seen: number[] } }) => {
        ctx.state.seen.push(v);
      },
      echo: ({ v }: { v: number }) => v,
      read: (_b: unknown, ctx: { state: { seen: number[] } }) => [...ctx.state.seen],
    },
  };
}
