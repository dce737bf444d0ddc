import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { ask, behavior, defineProtocol, realClock, tell } from '../../index.js';
import { flushMicrotasks, SimulatedClock, settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, type Gate, gate, makeSystem, thrown } from './helpers.js';

closeSystemsAfterEach();

const Clocked = defineProtocol('tm.clocked', {
  single: tell(z.object({ key: z.string(), ms: z.number(), n: z.number() })),
  periodic: tell(z.object({ key: z.string(), ms: z.number(), n: z.number() })),
  cancel: tell(z.object({ key: z.string() })),
  cancelAll: tell(z.object({})),
  tick: tell(z.object({ n: z.number() })),
  ticks: ask(z.object({}), z.array(z.string())),
  active: ask(z.object({ key: z.string() }), z.boolean()),
  /** Waits for the test's gate, then cancels `key` (or restarts it with `restartMs`). */
  blockThenCancel: tell(z.object({ key: z.string(), restartMs: z.number().optional() })),
  boom: tell(z.object({})),
});

/** Records every tick as `n@time` and whether its sender was itself. */
function clocked(clock: SimulatedClock, blocker: { gate?: Gate } = {}) {
  return behavior({
    protocols: [Clocked],
    initialState: () => ({ ticks: [] as string[] }),
    handlers: {
      single: ({ key, ms, n }, ctx) => ctx.timers.startSingle(key, ms, 'tick', { n }),
      periodic: ({ key, ms, n }, ctx) => ctx.timers.startPeriodic(key, ms, 'tick', { n }),
      cancel: ({ key }, ctx) => ctx.timers.cancel(key),
      cancelAll: (_b, ctx) => ctx.timers.cancelAll(),
      tick: ({ n }, ctx) => {
        ctx.state.ticks.push(`${n}@${clock.now()}${ctx.sender === ctx.self ? '' : '(foreign)'}`);
      },
      ticks: (_b, ctx) => [...ctx.state.ticks],
      active: ({ key }, ctx) => ctx.timers.isActive(key),
      blockThenCancel: async ({ key, restartMs }, ctx) => {
        await blocker.gate!.promise;
        if (restartMs === undefined) ctx.timers.cancel(key);
        else ctx.timers.startSingle(key, restartMs, 'tick', { n: 99 });
      },
      boom: () => {
        throw new Error('boom');
      },
    },
  });
}

function setup(blocker?: { gate?: Gate }) {
  const clock = new SimulatedClock();
  const harness = makeSystem({ clock });
  const ref = harness.system.spawn(clocked(clock, blocker));
  return { clock, ref, ...harness };
}

describe('single timers', () => {
  it('fire once, after their delay, with the actor itself as sender', async () => {
    const { clock, ref, system } = setup();
    ref.tell('single', { key: 'k', ms: 100, n: 1 });
    await settle(system);
    expect(await ref.ask('active', { key: 'k' })).toBe(true);
    await clock.advance(99);
    expect(await ref.ask('ticks', {})).toEqual([]);
    await clock.advance(1);
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual(['1@100']);
    await clock.advance(1000);
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual(['1@100']);
    expect(await ref.ask('active', { key: 'k' })).toBe(false);
  });

  it('are replaced by a timer started with the same key', async () => {
    const { clock, ref, system } = setup();
    ref.tell('single', { key: 'k', ms: 100, n: 1 });
    ref.tell('single', { key: 'k', ms: 200, n: 2 });
    await settle(system);
    await clock.advance(150);
    expect(await ref.ask('ticks', {})).toEqual([]);
    await clock.advance(500);
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual(['2@200']);
  });

  it('with different keys run independently', async () => {
    const { clock, ref, system } = setup();
    ref.tell('single', { key: 'a', ms: 30, n: 1 });
    ref.tell('single', { key: 'b', ms: 10, n: 2 });
    await settle(system);
    await clock.advance(100);
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual(['2@10', '1@30']);
  });

  it('are not delivered once cancelled before they are due', async () => {
    const { clock, ref, system } = setup();
    ref.tell('single', { key: 'k', ms: 100, n: 1 });
    ref.tell('cancel', { key: 'k' });
    await settle(system);
    expect(await ref.ask('active', { key: 'k' })).toBe(false);
    await clock.advance(1000);
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual([]);
  });
});

describe('periodic timers', () => {
  it('repeat every interval until cancelled', async () => {
    const { clock, ref, system } = setup();
    ref.tell('periodic', { key: 'p', ms: 100, n: 7 });
    await settle(system);
    await clock.advance(350);
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual(['7@100', '7@200', '7@300']);
    expect(await ref.ask('active', { key: 'p' })).toBe(true);
    ref.tell('cancel', { key: 'p' });
    await settle(system);
    await clock.advance(1000);
    await settle(system);
    expect(await ref.ask('ticks', {})).toHaveLength(3);
    expect(await ref.ask('active', { key: 'p' })).toBe(false);
  });

  it('are all cancelled by cancelAll', async () => {
    const { clock, ref, system } = setup();
    ref.tell('periodic', { key: 'p', ms: 10, n: 1 });
    ref.tell('single', { key: 's', ms: 50, n: 2 });
    ref.tell('cancelAll', {});
    await settle(system);
    await clock.advance(100);
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual([]);
  });

  it('refuse an interval of 0 and a negative delay with ERR_INVALID_OPTION', async () => {
    const Bad = defineProtocol('tm.bad', {
      go: ask(z.object({ ms: z.number(), repeat: z.boolean() }), z.string()),
    });
    const bad = behavior({
      protocols: [Bad],
      handlers: {
        go: ({ ms, repeat }, ctx) => {
          const t = ctx.timers as unknown as {
            startSingle(k: string, ms: number, type: string, body: unknown): void;
            startPeriodic(k: string, ms: number, type: string, body: unknown): void;
          };
          return thrown(() =>
            repeat ? t.startPeriodic('k', ms, 'go', {}) : t.startSingle('k', ms, 'go', {}),
          ).code;
        },
      },
    });
    const { system } = makeSystem();
    const ref = system.spawn(bad);
    expect(await ref.ask('go', { ms: 0, repeat: true })).toBe('ERR_INVALID_OPTION');
    expect(await ref.ask('go', { ms: -1, repeat: false })).toBe('ERR_INVALID_OPTION');
  });
});

describe('cancelling a tick already in the mailbox', () => {
  it('drops a single timer’s tick that was enqueued before the cancel but not yet handled', async () => {
    const blocker: { gate?: Gate } = { gate: gate() };
    const { clock, ref, system } = setup(blocker);
    ref.tell('single', { key: 'k', ms: 100, n: 1 });
    ref.tell('blockThenCancel', { key: 'k' });
    await flushMicrotasks();
    await clock.advance(100);
    // The timer fired while the actor was busy: its tick waits in the mailbox.
    expect(system.tree().children[0]!.mailboxSize).toBe(1);
    blocker.gate!.open();
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual([]);
  });

  it('drops a periodic timer’s queued tick once cancelled', async () => {
    const blocker: { gate?: Gate } = { gate: gate() };
    const { clock, ref, system } = setup(blocker);
    ref.tell('periodic', { key: 'p', ms: 100, n: 1 });
    ref.tell('blockThenCancel', { key: 'p' });
    await flushMicrotasks();
    await clock.advance(250);
    blocker.gate!.open();
    await settle(system);
    await clock.advance(500);
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual([]);
  });

  it('drops the queued tick of a timer replaced with the same key, and delivers the new one', async () => {
    const blocker: { gate?: Gate } = { gate: gate() };
    const { clock, ref, system } = setup(blocker);
    ref.tell('single', { key: 'k', ms: 100, n: 1 });
    ref.tell('blockThenCancel', { key: 'k', restartMs: 50 });
    await flushMicrotasks();
    await clock.advance(100);
    blocker.gate!.open();
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual([]);
    await clock.advance(50);
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual(['99@150']);
  });
});

describe('timers and the lifecycle', () => {
  it('are cancelled when the actor stops: no tick is handled or dead-lettered', async () => {
    const { clock, ref, system, dead } = setup();
    ref.tell('periodic', { key: 'p', ms: 10, n: 1 });
    ref.tell('single', { key: 's', ms: 20, n: 2 });
    await settle(system);
    await system.stop(ref);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(100);
    await settle(system);
    expect(dead).toEqual([]);
  });

  it('are cancelled when the actor restarts', async () => {
    const { clock, ref, system } = setup();
    ref.tell('periodic', { key: 'p', ms: 10, n: 1 });
    ref.tell('single', { key: 's', ms: 20, n: 2 });
    ref.tell('boom', {});
    await settle(system);
    expect(await ref.ask('active', { key: 'p' })).toBe(false);
    expect(await ref.ask('active', { key: 's' })).toBe(false);
    await clock.advance(100);
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual([]);
  });

  it('do not deliver a tick enqueued before a restart to the fresh instance', async () => {
    const blocker: { gate?: Gate } = { gate: gate() };
    const { clock, ref, system } = setup(blocker);
    ref.tell('single', { key: 'k', ms: 100, n: 1 });
    ref.tell('blockThenCancel', { key: 'other' });
    ref.tell('boom', {});
    await flushMicrotasks();
    await clock.advance(100);
    // Queue now: boom, tick. The crash restarts the actor before the tick is taken.
    blocker.gate!.open();
    await settle(system);
    expect(await ref.ask('ticks', {})).toEqual([]);
  });
});

describe('the real clock', () => {
  it('waits out delays longer than Node timers allow instead of firing at once', () => {
    // Vitest's fake timers stand in for Node's, with Node's overflow rule (a longer delay fires after 1 ms).
    vi.useFakeTimers();
    try {
      let fired = false;
      realClock.setTimeout(
        () => {
          fired = true;
        },
        2 ** 31 + 1000,
      );
      vi.advanceTimersByTime(30);
      expect(fired).toBe(false);
      vi.advanceTimersByTime(2 ** 31 + 1000 - 31);
      expect(fired).toBe(false);
      vi.advanceTimersByTime(1);
      expect(fired).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
