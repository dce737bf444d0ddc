/**
 * Time and chance as values: the seeded random source, sleep, every, backoff and retrying, and the
 * simulated clock's wall time. Everything here runs on the simulated clock: exact and instant.
 */
import { describe, expect, it } from 'vitest';
import { every, exponential, realClock, retrying, seededRandom, sleep, TroupeError } from '../../index.js';
import { backoffDelay } from '../../runtime/index.js';
import { SimulatedClock } from '../../runtime/testkit/index.js';
import { watchPromise } from './helpers.js';

describe('seededRandom', () => {
  it('gives the same sequence for the same seed, in [0, 1), and another for another seed', () => {
    const draw = (seed: number) => {
      const random = seededRandom(seed);
      return Array.from({ length: 1000 }, () => random());
    };
    const a = draw(42);
    expect(draw(42)).toEqual(a);
    expect(draw(43)).not.toEqual(a);
    expect(a.every((x) => x >= 0 && x < 1)).toBe(true);
    // Mulberry32's first draw for seed 42, so the sequence is the same on every platform and version.
    expect(a[0]).toBe(0.6011037519201636);
    // Spread over the interval: each tenth gets a fair share of a thousand draws.
    for (let tenth = 0; tenth < 10; tenth++) {
      const share = a.filter((x) => Math.floor(x * 10) === tenth).length;
      expect(share).toBeGreaterThan(60);
      expect(share).toBeLessThan(140);
    }
  });

  it('refuses a seed that is not a finite number with ERR_INVALID_OPTION', () => {
    for (const seed of [Number.NaN, Number.POSITIVE_INFINITY, '1' as unknown as number]) {
      expect(() => seededRandom(seed)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    }
  });
});

describe('sleep', () => {
  it('resolves after exactly its delay on the clock', async () => {
    const clock = new SimulatedClock();
    const slept = watchPromise(sleep(100, { clock }));
    await clock.advance(99);
    expect(slept.settled).toBe(false);
    await clock.advance(1);
    expect(slept.settled).toBe(true);
  });

  it('rejects with the reason as soon as its signal aborts, or at once when it already has', async () => {
    const clock = new SimulatedClock();
    const controller = new AbortController();
    const slept = sleep(100, { clock, signal: controller.signal });
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(slept).rejects.toBe(reason);
    expect(clock.pendingTimers).toBe(0);
    await expect(sleep(1, { clock, signal: controller.signal })).rejects.toBe(reason);
    // The form of earlier versions: a signal as the second argument.
    await expect(sleep(1, controller.signal)).rejects.toBe(reason);
  });
});

describe('every', () => {
  it('calls back every interval until stopped, and leaves no timer behind', async () => {
    const clock = new SimulatedClock();
    const at: number[] = [];
    const stop = every(clock, 30, () => at.push(clock.now()));
    await clock.advance(100);
    expect(at).toEqual([30, 60, 90]);
    stop();
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(100);
    expect(at).toEqual([30, 60, 90]);
  });
});

describe('backoffDelay', () => {
  it('doubles from baseMs up to maxMs, and spreads by the jitter with the random source', () => {
    const backoff = exponential({ baseMs: 100, maxMs: 1000 });
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(backoff, n, () => 0.5))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    const jittered = exponential({ baseMs: 100, maxMs: 1000, jitter: 0.2 });
    expect(backoffDelay(jittered, 1, () => 0)).toBe(80);
    expect(backoffDelay(jittered, 1, () => 0.999_999)).toBe(120);
    expect(backoffDelay(undefined, 3, () => 0.5)).toBe(0);
  });
});

describe('retrying', () => {
  it('tries again after each backoff on the clock until the call succeeds', async () => {
    const clock = new SimulatedClock();
    const at: number[] = [];
    const result = watchPromise(
      retrying(
        (attempt) => {
          at.push(clock.now());
          if (attempt < 3) throw new Error(`fail ${attempt}`);
          return 'ok';
        },
        { attempts: 5, backoff: exponential({ baseMs: 10, maxMs: 100 }), clock },
      ),
    );
    await clock.advance(30);
    expect(at).toEqual([0, 10, 30]);
    expect(await result.result).toBe('ok');
  });

  it('throws the last error after its attempts, and at once an error that is not retryable', async () => {
    const clock = new SimulatedClock();
    let calls = 0;
    const exhausted = retrying(
      () => {
        calls++;
        throw new Error(`fail ${calls}`);
      },
      { attempts: 3, backoff: exponential({ baseMs: 1, maxMs: 1 }), clock },
    ).catch((e: unknown) => e);
    await clock.advance(2);
    expect(await exhausted).toMatchObject({ message: 'fail 3' });
    calls = 0;
    await expect(
      retrying(
        () => {
          calls++;
          throw new Error('fatal');
        },
        { attempts: 3, backoff: exponential({ baseMs: 1, maxMs: 1 }), clock, retryable: () => false },
      ),
    ).rejects.toThrow('fatal');
    expect(calls).toBe(1);
  });

  it('waits at least what a failure asks for, and draws the jitter from its random source', async () => {
    const clock = new SimulatedClock();
    const at: number[] = [];
    const done = retrying(
      (attempt) => {
        at.push(clock.now());
        if (attempt === 1) throw Object.assign(new Error('429'), { retryAfterMs: 500 });
        if (attempt === 2) throw new Error('503');
        return 'ok';
      },
      {
        attempts: 3,
        backoff: exponential({ baseMs: 100, maxMs: 100, jitter: 0.5 }),
        waitAtLeastMs: (error) => (error as { retryAfterMs?: number }).retryAfterMs ?? 0,
        clock,
        random: () => 0,
      },
    );
    await clock.advance(550);
    expect(await done).toBe('ok');
    expect(at).toEqual([0, 500, 550]);
  });

  it('ends the wait when its signal aborts, and refuses attempts below 1', async () => {
    const clock = new SimulatedClock();
    const controller = new AbortController();
    const pending = retrying(
      () => {
        throw new Error('again');
      },
      { attempts: 3, backoff: exponential({ baseMs: 1000, maxMs: 1000 }), clock, signal: controller.signal },
    );
    controller.abort(new Error('stopped'));
    await expect(pending).rejects.toThrow('stopped');
    const refused = await retrying(() => 1, {
      attempts: 0,
      backoff: exponential({ baseMs: 1, maxMs: 1 }),
    }).catch((e: unknown) => e);
    expect(TroupeError.is(refused, 'ERR_INVALID_OPTION')).toBe(true);
  });
});

describe('wall time', () => {
  it('moves with the simulated clock from the epoch it is given, whatever its monotonic start', async () => {
    const clock = new SimulatedClock({ start: 5000, epochMs: Date.UTC(2030, 0, 1) });
    expect(clock.now()).toBe(5000);
    expect(clock.wallNow()).toBe(Date.UTC(2030, 0, 1));
    await clock.advance(250);
    expect(clock.wallNow()).toBe(Date.UTC(2030, 0, 1) + 250);
    // A number is the monotonic start, as before; wall time then starts at the epoch.
    expect(new SimulatedClock(1_000_000).wallNow()).toBe(0);
  });

  it('is the host clock on the real clock', () => {
    const before = Date.now();
    const wall = realClock.wallNow();
    expect(wall).toBeGreaterThanOrEqual(before);
    expect(wall).toBeLessThanOrEqual(Date.now());
  });
});
