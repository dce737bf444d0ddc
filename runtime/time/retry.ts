import { invalidOption } from '../../protocols/index.js';
import { type Clock, realClock, sleep } from './clock.js';
import { type Random, realRandom } from './random.js';

/**
 * Exponential backoff: the delay before retry (or restart) `n` is `baseMs * 2^(n-1)` capped at `maxMs`,
 * ± `jitter` (a fraction). The one backoff formula of every layer: restarts, activations, retries,
 * reconnects.
 */
export interface Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
  /** 0 for none; 0.2 spreads each delay by ±20%. */
  readonly jitter: number;
}

/**
 * Builds a {@link Backoff}. `jitter: true` means ±20%; defaults to none.
 * @throws TroupeError `ERR_INVALID_OPTION` for a negative `baseMs`, `maxMs` below `baseMs`, or a
 * jitter outside 0..1.
 * @example `backoff: exponential({ baseMs: 10, maxMs: 1000, jitter: true })`
 */
export function exponential(options: { baseMs: number; maxMs: number; jitter?: boolean | number }): Backoff {
  const jitter = options.jitter === true ? 0.2 : options.jitter === false ? 0 : (options.jitter ?? 0);
  return resolveBackoff({ baseMs: options.baseMs, maxMs: options.maxMs, jitter }, 'backoff');
}

/** @throws TroupeError `ERR_INVALID_OPTION` naming `where` for a bad backoff. */
export function resolveBackoff(backoff: Backoff, where: string): Backoff {
  if (typeof backoff !== 'object' || backoff === null)
    throw invalidOption(where, 'must be an object', backoff);
  if (!Number.isFinite(backoff.baseMs) || backoff.baseMs < 0)
    throw invalidOption(`${where}.baseMs`, 'must be >= 0', backoff.baseMs);
  if (!Number.isFinite(backoff.maxMs) || backoff.maxMs < backoff.baseMs) {
    throw invalidOption(`${where}.maxMs`, 'must be >= baseMs', backoff.maxMs);
  }
  if (!Number.isFinite(backoff.jitter) || backoff.jitter < 0 || backoff.jitter > 1) {
    throw invalidOption(`${where}.jitter`, 'must be between 0 and 1', backoff.jitter);
  }
  return { baseMs: backoff.baseMs, maxMs: backoff.maxMs, jitter: backoff.jitter };
}

/**
 * The delay before retry (or restart) number `n` (1-based) under `backoff`, drawing its jitter from
 * `random`; 0 without a backoff.
 * @example `backoffDelay(exponential({ baseMs: 100, maxMs: 1000 }), 3, system.random) === 400`
 */
export function backoffDelay(backoff: Backoff | undefined, n: number, random: Random): number {
  if (backoff === undefined) return 0;
  const raw = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.max(0, n - 1));
  if (backoff.jitter === 0) return raw;
  const spread = raw * backoff.jitter;
  return Math.max(0, Math.round(raw - spread + random() * 2 * spread));
}

/** Options of {@link retrying}: a retry policy as a value. */
export interface RetryingOptions {
  /** Most attempts, the first included (an integer >= 1, or `Infinity`). */
  readonly attempts: number;
  /** The wait before each retry. */
  readonly backoff: Backoff;
  /** Which failures are worth another attempt; the others are thrown at once. Defaults to all. */
  readonly retryable?: ((error: unknown) => boolean) | undefined;
  /** The least wait a failure asks for (a `Retry-After`), in ms; the longer of it and the backoff wins. */
  readonly waitAtLeastMs?: ((error: unknown) => number) | undefined;
  /** Aborting it ends the wait for the next attempt: the call rejects with the signal's reason. */
  readonly signal?: AbortSignal | undefined;
  /** Time for the waits. Defaults to {@link realClock}. */
  readonly clock?: Clock | undefined;
  /** Jitter of the backoff. Defaults to {@link realRandom}. */
  readonly random?: Random | undefined;
}

/**
 * Calls `call` until it succeeds or a failure is not to be retried: up to `attempts` times, waiting
 * the backoff between attempts on the clock. The last error is thrown as it is. The first attempt
 * runs in the caller's turn, without any retry machinery, so a call that succeeds at once costs one
 * promise. The one retry loop of every layer.
 * @throws TroupeError `ERR_INVALID_OPTION` (rejected) for `attempts` below 1; otherwise the last
 * error, or the signal's reason when it aborts during a wait.
 * @example
 * ```ts
 * const bucket = await retrying(() => kvm.create(name), {
 *   attempts: 5,
 *   backoff: exponential({ baseMs: 50, maxMs: 200 }),
 *   retryable: (error) => /overlap/.test(String(error)),
 *   clock: system.clock,
 * });
 * ```
 */
export function retrying<T>(
  call: (attempt: number) => PromiseLike<T> | T,
  options: RetryingOptions,
): Promise<T> {
  const { attempts } = options;
  if (!(attempts === Number.POSITIVE_INFINITY || (Number.isInteger(attempts) && attempts >= 1)))
    return Promise.reject(invalidOption('attempts', 'must be a positive integer or Infinity', attempts));
  if (options.signal?.aborted) return Promise.reject(options.signal.reason);
  let first: Promise<T>;
  try {
    first = Promise.resolve(call(1));
  } catch (error) {
    first = Promise.reject(error);
  }
  return first.then(undefined, (error: unknown) => retryAfterFailure(error, 1, call, options));
}

async function retryAfterFailure<T>(
  error: unknown,
  failed: number,
  call: (attempt: number) => PromiseLike<T> | T,
  options: RetryingOptions,
): Promise<T> {
  const {
    attempts,
    backoff,
    retryable,
    waitAtLeastMs,
    signal,
    clock = realClock,
    random = realRandom,
  } = options;
  for (let attempt = failed + 1; ; attempt++) {
    if (attempt > attempts || (retryable !== undefined && !retryable(error))) throw error;
    const delayMs = Math.max(backoffDelay(backoff, attempt - 1, random), waitAtLeastMs?.(error) ?? 0);
    await sleep(delayMs, { signal, clock });
    if (signal?.aborted) throw signal.reason;
    try {
      return await call(attempt);
    } catch (next) {
      error = next;
    }
  }
}
