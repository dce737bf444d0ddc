/**
 * Circuit breakers (on opossum): transitions are always legal whatever the order of successes,
 * failures, refusals and waits; an open breaker refuses at once without calling; half-open lets one
 * trial through; transitions reach the system's event stream. Replay a failure with FC_SEED=<seed>.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type BreakerState, breaker, createSystem, type SystemEvent, TroupeError } from '../../index.js';
import { SimulatedClock } from '../../runtime/testkit/index.js';
import { propertySeed, seeded } from '../harness/fast-check.js';

const SEED = propertySeed(Date.now() % 2 ** 31);

const LEGAL = new Set(['closed>open', 'open>half-open', 'half-open>closed', 'half-open>open']);

type Op =
  | { kind: 'ok' }
  | { kind: 'fail' }
  | { kind: 'refused' }
  | { kind: 'wait'; ms: number }
  | { kind: 'pair' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.constant({ kind: 'ok' as const }),
  fc.constant({ kind: 'fail' as const }),
  fc.constant({ kind: 'refused' as const }),
  fc.constant({ kind: 'pair' as const }),
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 1, max: 150 }) }),
);

describe('breaker', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('only ever moves closed → open → half-open → closed or open, and reports every move', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 100 }),
        fc.array(opArb, { maxLength: 60 }),
        async (volumeThreshold, errorThresholdPercentage, ops) => {
          const moves: [BreakerState, BreakerState][] = [];
          const b = breaker({
            name: 'p',
            volumeThreshold,
            errorThresholdPercentage,
            resetTimeoutMs: 100,
            windowMs: 1000,
            onTransition: (from, to) => moves.push([from, to]),
          });
          let seen: BreakerState = 'closed';
          const check = () => {
            // Every change of state was reported, and the reports chain from the last known state.
            for (const [from, to] of moves.splice(0)) {
              expect(LEGAL.has(`${from}>${to}`), `${from} -> ${to}`).toBe(true);
              expect(from).toBe(seen);
              seen = to;
            }
            expect(b.state).toBe(seen);
          };
          const fire = async (outcome: 'ok' | 'fail' | 'refused') => {
            let called = false;
            const stateBefore = b.state;
            try {
              await b.fire(async () => {
                called = true;
                if (outcome === 'fail') throw new Error('boom');
                if (outcome === 'refused') throw new TroupeError('ERR_BULKHEAD_FULL', 'full');
                return 1;
              });
            } catch (error) {
              if (!called) {
                // Refused by the breaker: only when it was not closed, and without calling.
                expect(TroupeError.is(error, 'ERR_CIRCUIT_OPEN')).toBe(true);
                expect(stateBefore).not.toBe('closed');
              }
            }
            check();
          };
          for (const op of ops) {
            if (op.kind === 'wait') {
              await vi.advanceTimersByTimeAsync(op.ms);
              check();
            } else if (op.kind === 'pair') {
              // Two calls at once: in half-open only the first is the trial.
              let release!: () => void;
              const gate = new Promise<void>((r) => {
                release = r;
              });
              const wasHalfOpen = b.state === 'half-open';
              let calls = 0;
              const first = b.fire(async () => {
                calls++;
                await gate;
              });
              const second = b.fire(async () => {
                calls++;
              });
              const results = await Promise.allSettled([second]);
              if (wasHalfOpen) {
                expect(results[0]!.status).toBe('rejected');
                expect(calls).toBe(1);
              }
              release();
              await first.catch(() => {});
              check();
            } else {
              await fire(op.kind);
            }
          }
          b.close();
        },
      ),
      seeded('breaker transitions', SEED, 150),
    );
  });

  it('opens after failures, refuses without calling, then lets one trial close it', async () => {
    const b = breaker({
      name: 'model',
      volumeThreshold: 2,
      errorThresholdPercentage: 50,
      resetTimeoutMs: 1000,
    });
    for (let i = 0; i < 2; i++)
      await expect(b.fire(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(b.state).toBe('open');
    let called = false;
    const refused = await b
      .fire(async () => {
        called = true;
      })
      .catch((e: unknown) => e);
    expect(TroupeError.is(refused, 'ERR_CIRCUIT_OPEN')).toBe(true);
    expect((refused as TroupeError).details).toEqual({ breaker: 'model', state: 'open' });
    expect(called).toBe(false);
    await vi.advanceTimersByTimeAsync(1001);
    expect(b.state).toBe('half-open');
    await expect(b.fire(async () => 'ok')).resolves.toBe('ok');
    expect(b.state).toBe('closed');
    b.close();
  });

  it("does not count refusals by other guards or the caller's abort as failures", async () => {
    const b = breaker({ name: 'tool', volumeThreshold: 1, errorThresholdPercentage: 0 });
    const abort = Object.assign(new Error('aborted'), { name: 'AbortError' });
    await expect(b.fire(() => Promise.reject(new TroupeError('ERR_BULKHEAD_FULL', 'full')))).rejects.toThrow(
      'full',
    );
    await expect(
      b.fire(() => Promise.reject(new TroupeError('ERR_BUDGET_EXCEEDED', 'spent'))),
    ).rejects.toThrow();
    await expect(b.fire(() => Promise.reject(abort))).rejects.toBe(abort);
    expect(b.state).toBe('closed');
    await expect(b.fire(() => Promise.reject(new Error('real')))).rejects.toThrow('real');
    expect(b.state).toBe('open');
    b.close();
  });

  it('counts only what isFailure says', async () => {
    const b = breaker({
      name: 'http',
      volumeThreshold: 1,
      errorThresholdPercentage: 0,
      isFailure: (e) => (e as { status?: number }).status !== 400,
    });
    await expect(
      b.fire(() => Promise.reject(Object.assign(new Error('bad request'), { status: 400 }))),
    ).rejects.toThrow();
    expect(b.state).toBe('closed');
    await expect(
      b.fire(() => Promise.reject(Object.assign(new Error('down'), { status: 503 }))),
    ).rejects.toThrow();
    expect(b.state).toBe('open');
    b.close();
  });

  it('keeps working when a transition listener throws', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    const b = breaker({
      name: 'noisy',
      volumeThreshold: 1,
      errorThresholdPercentage: 0,
      resetTimeoutMs: 10,
      onTransition: () => {
        throw new Error('listener bug');
      },
      system: {
        publish: () => {
          throw new Error('publisher bug');
        },
      },
    });
    await expect(b.fire(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(b.state).toBe('open');
    await vi.advanceTimersByTimeAsync(11);
    expect(b.state).toBe('half-open');
    await expect(b.fire(async () => 'up')).resolves.toBe('up');
    expect(b.state).toBe('closed');
    expect(errors).toHaveBeenCalled();
    errors.mockRestore();
    b.close();
  });

  it('opens again when the caller abandons the half-open trial, instead of closing on no evidence', async () => {
    const b = breaker({ name: 'trial', volumeThreshold: 1, errorThresholdPercentage: 0, resetTimeoutMs: 10 });
    await b.fire(() => Promise.reject(new Error('down'))).catch(() => {});
    await vi.advanceTimersByTimeAsync(11);
    expect(b.state).toBe('half-open');
    const controller = new AbortController();
    const trial = b.fire(
      () =>
        new Promise((_, reject) =>
          controller.signal.addEventListener('abort', () => reject(controller.signal.reason)),
        ),
      controller.signal,
    );
    controller.abort(new TroupeError('ERR_ACTOR_STOPPED', 'stopped'));
    await expect(trial).rejects.toMatchObject({ code: 'ERR_ACTOR_STOPPED' });
    expect(b.state).toBe('open');
    b.close();
    await expect(b.fire(async () => 1)).rejects.toMatchObject({
      code: 'ERR_CIRCUIT_OPEN',
      details: { state: 'shut down' },
    });
  });

  it('refuses bad options with ERR_INVALID_OPTION', () => {
    expect(() => breaker({ name: '' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => breaker({ name: 'x', errorThresholdPercentage: 120 })).toThrow(/errorThresholdPercentage/);
    expect(() => breaker({ name: 'x', resetTimeoutMs: 0 })).toThrow(/resetTimeoutMs/);
    expect(() => breaker({ name: 'x', system: {} as never })).toThrow(/system/);
  });
});

describe('breaker window', () => {
  it('forgets failures older than its window, on its clock, with no timer of its own', async () => {
    const intervals = vi.spyOn(globalThis, 'setInterval');
    const clock = new SimulatedClock();
    const b = breaker({
      name: 'windowed',
      volumeThreshold: 2,
      errorThresholdPercentage: 50,
      windowMs: 1000,
      clock,
    });
    expect(intervals).not.toHaveBeenCalled();
    intervals.mockRestore();
    await b.fire(() => Promise.reject(new Error('old failure'))).catch(() => {});
    await clock.advance(1500);
    expect(clock.pendingTimers).toBe(0);
    await b.fire(async () => 'ok');
    // In the window: one success and this failure, 50%, not above the threshold. Had the old
    // failure stayed, 2 of 3 would have opened it.
    await b.fire(() => Promise.reject(new Error('new failure'))).catch(() => {});
    expect(b.state).toBe('closed');
    b.close();
  });
});

describe('breaker reset on its clock', () => {
  it('moves to half-open after resetTimeoutMs of its clock (simulated time), not of real time', async () => {
    const clock = new SimulatedClock();
    const b = breaker({
      name: 'sim',
      volumeThreshold: 1,
      errorThresholdPercentage: 0,
      resetTimeoutMs: 5000,
      clock,
    });
    await b.fire(() => Promise.reject(new Error('down'))).catch(() => {});
    expect(b.state).toBe('open');
    await clock.advance(4999);
    expect(b.state).toBe('open');
    await clock.advance(1);
    expect(b.state).toBe('half-open');
    // The trial fails: open again, for another resetTimeoutMs of the clock.
    await b.fire(() => Promise.reject(new Error('still down'))).catch(() => {});
    expect(b.state).toBe('open');
    await clock.advance(5000);
    expect(b.state).toBe('half-open');
    await expect(b.fire(async () => 'up')).resolves.toBe('up');
    expect(b.state).toBe('closed');
    b.close();
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('breaker events', () => {
  it('publishes its transitions on the system event stream', async () => {
    const system = createSystem({ name: 'breaker-events' });
    const events: SystemEvent[] = [];
    const sub = system.events$.subscribe((e) => {
      if (e.type === 'breaker-transition') events.push(e);
    });
    const b = breaker({
      name: 'anthropic',
      system,
      volumeThreshold: 1,
      errorThresholdPercentage: 0,
      resetTimeoutMs: 20,
    });
    await b.fire(() => Promise.reject(new Error('down'))).catch(() => {});
    // The reset wait runs on the real clock here (no clock given): wait for the half-open move.
    await vi.waitFor(() => expect(b.state).toBe('half-open'));
    await b.fire(async () => 'up');
    expect(events.map((e) => e.type === 'breaker-transition' && `${e.breaker}:${e.from}>${e.to}`)).toEqual([
      'anthropic:closed>open',
      'anthropic:open>half-open',
      'anthropic:half-open>closed',
    ]);
    expect(events.every((e) => typeof e.at === 'number')).toBe(true);
    sub.unsubscribe();
    b.close();
    await system.close();
  });
});
