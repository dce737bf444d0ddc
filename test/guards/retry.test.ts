/** Retries: backoff, Retry-After, no second try of a call that may have acted, aborts, bad options. */
import { describe, expect, it } from 'vitest';
import { type Clock, exponential, notSent, parseRetryAfter, retry, TroupeError } from '../../index.js';

/** A clock that records each requested delay and fires at once. */
function recordingClock(): Clock & { delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    now: () => 0,
    wallNow: () => 0,
    setTimeout(callback, delayMs) {
      delays.push(delayMs);
      const timer = setTimeout(callback, 0);
      return { cancel: () => clearTimeout(timer) };
    },
  };
}

const backoff = exponential({ baseMs: 10, maxMs: 25, jitter: false });

describe('retry', () => {
  it('tries an idempotent call again with exponential backoff until it succeeds', async () => {
    const clock = recordingClock();
    let calls = 0;
    const result = await retry(
      (attempt) => {
        calls++;
        if (attempt < 4) throw new Error(`fail ${attempt}`);
        return 'ok';
      },
      { attempts: 5, backoff, idempotent: true, clock },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(4);
    expect(clock.delays).toEqual([10, 20, 25]);
  });

  it('throws the last error after the last attempt', async () => {
    const clock = recordingClock();
    let calls = 0;
    const error = await retry(
      (attempt) => {
        calls++;
        throw new Error(`fail ${attempt}`);
      },
      { attempts: 3, backoff, idempotent: true, clock },
    ).catch((e) => e);
    expect(error.message).toBe('fail 3');
    expect(calls).toBe(3);
  });

  it('never tries a call that may have acted again unless it is idempotent; a call never sent is safe', async () => {
    const clock = recordingClock();
    let calls = 0;
    await expect(
      retry(
        () => {
          calls++;
          throw new Error('500 after the tool ran');
        },
        { attempts: 3, backoff, clock },
      ),
    ).rejects.toThrow('500 after the tool ran');
    expect(calls).toBe(1);
    calls = 0;
    const result = await retry(
      () => {
        calls++;
        if (calls === 1) throw Object.assign(new Error('connection refused'), { notSent: true });
        if (calls === 2) throw new TroupeError('ERR_BULKHEAD_FULL', 'full');
        return 'done';
      },
      { attempts: 3, backoff, clock },
    );
    expect(result).toBe('done');
    expect(calls).toBe(3);
    expect(notSent(new Error('x'))).toBe(false);
  });

  it('waits at least what Retry-After asks, and asks retryable which failures to try again', async () => {
    const clock = recordingClock();
    let calls = 0;
    await retry(
      () => {
        calls++;
        if (calls === 1) throw Object.assign(new Error('429'), { retryAfterMs: 2000 });
        if (calls === 2)
          throw new TroupeError('ERR_JOURNAL_UNAVAILABLE', '503', { details: { retryAfterMs: 700 } });
        return 1;
      },
      { attempts: 5, backoff, idempotent: true, clock },
    );
    expect(clock.delays).toEqual([2000, 700]);
    const fatal = await retry(
      () => {
        throw new Error('400 bad request');
      },
      { attempts: 5, backoff, idempotent: true, clock, retryable: (e) => !String(e).includes('400') },
    ).catch((e) => e);
    expect(fatal.message).toBe('400 bad request');
    expect(clock.delays).toHaveLength(2);
  });

  it('ends the wait when the signal aborts, and refuses bad options', async () => {
    const abort = new AbortController();
    // A clock whose timers never fire: only the abort can end the wait.
    const slow: Clock = { now: () => 0, wallNow: () => 0, setTimeout: () => ({ cancel: () => {} }) };
    const pending = retry(
      () => {
        throw new Error('again');
      },
      { attempts: 3, idempotent: true, clock: slow, signal: abort.signal },
    );
    abort.abort(new Error('stopped'));
    await expect(pending).rejects.toThrow('stopped');
    await expect(retry(() => 1, { attempts: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });

  it('parses Retry-After as seconds or as an HTTP date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(' 0 ')).toBe(0);
    const now = Date.parse('Mon, 23 Nov 2026 12:00:00 GMT');
    expect(parseRetryAfter('Mon, 23 Nov 2026 12:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Mon, 23 Nov 2026 11:59:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});
