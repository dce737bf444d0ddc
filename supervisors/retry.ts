import { invalidOption, TroupeError } from '../protocols/index.js';
import {
  type Backoff,
  type Clock,
  exponential,
  type Random,
  type RetryingOptions,
  realClock,
  realRandom,
  retrying,
} from '../runtime/index.js';
import { refusedBeforeCall } from './breaker.js';

/** Options of {@link retry}. */
export interface RetryOptions {
  /** Most attempts, the first included. Defaults to 3. */
  readonly attempts?: number;
  /** The delay before each retry. Defaults to `exponential({ baseMs: 100, maxMs: 10_000, jitter: true })`. */
  readonly backoff?: Backoff;
  /**
   * Whether the call may run twice without harm. Defaults to false: a failed call is then retried
   * only when its error says nothing was sent (see {@link notSent}), never after it may have acted.
   */
  readonly idempotent?: boolean;
  /** Which failures are worth another attempt. Defaults to all (within what `idempotent` allows). */
  readonly retryable?: (error: unknown) => boolean;
  /**
   * The longest wait an error may ask for (`Retry-After`), in ms: an error that asks for more is
   * thrown at once rather than waited out. Defaults to 60,000.
   */
  readonly maxRetryAfterMs?: number;
  /** Aborting it ends the wait for the next attempt (the call rejects with the signal's reason). */
  readonly signal?: AbortSignal;
  /** Time for the delays. Defaults to the real clock. */
  readonly clock?: Clock;
  /** Jitter of the backoff. Defaults to `Math.random`. */
  readonly random?: Random;
}

/** The defaults of {@link RetryOptions}. */
export const retryDefaults = {
  attempts: 3,
  maxRetryAfterMs: 60_000,
  backoff: exponential({ baseMs: 100, maxMs: 10_000, jitter: true }),
} as const;

/**
 * True when `error` says the call never reached the other side, so even a call that is not
 * idempotent may be tried again: an error with `notSent: true` or `details.notSent: true` (adapters
 * set it for a refused connection, say), or a refusal by a guard before the call
 * (`ERR_BULKHEAD_FULL`, `ERR_CIRCUIT_OPEN`, `ERR_BUDGET_EXCEEDED`).
 */
export function notSent(error: unknown): boolean {
  return (
    (error as { notSent?: unknown } | null)?.notSent === true ||
    (TroupeError.is(error) && error.details?.notSent === true) ||
    refusedBeforeCall(error)
  );
}

/**
 * The wait an error asks for before the next attempt, in ms: its `retryAfterMs` property or
 * `details.retryAfterMs` (adapters set it from a 429's or 503's `Retry-After`, see
 * {@link parseRetryAfter}).
 */
function retryAfterOf(error: unknown): number {
  const own = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  const detail = TroupeError.is(error) ? error.details?.retryAfterMs : undefined;
  const ms = typeof own === 'number' ? own : typeof detail === 'number' ? detail : 0;
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/**
 * Parses an HTTP `Retry-After` header (seconds, or an HTTP date) into milliseconds from `now`;
 * undefined when it is absent or unreadable. `now` is wall-clock epoch ms (defaults to the real clock's).
 * @example `parseRetryAfter('2') === 2000`
 */
export function parseRetryAfter(
  header: string | null | undefined,
  now = realClock.wallNow(),
): number | undefined {
  if (header === null || header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Calls `call` until it succeeds, up to `attempts` times, waiting between attempts by `backoff`, or
 * longer when the error asks for it (`Retry-After`). A call that is not `idempotent` is tried again
 * only after an error that says nothing was sent. The last error is thrown as it is. The loop is the
 * runtime's `retrying`.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for bad options (rejected); otherwise the call's last
 * error, or the signal's reason when it aborts during a wait.
 * @example
 * ```ts
 * const reply = await retry(() => model.complete(request), { attempts: 4, idempotent: true });
 * ```
 */
export function retry<T>(
  call: (attempt: number) => PromiseLike<T> | T,
  options: RetryOptions = {},
): Promise<T> {
  let policy: RetryingOptions;
  try {
    policy = retryPolicy(options);
  } catch (error) {
    return Promise.reject(error);
  }
  return retrying(call, policy);
}

/**
 * Checks retry options once, for callers that retry many calls with the same options, and turns
 * them into the runtime's retry policy.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad option.
 */
export function retryPolicy(options: RetryOptions): RetryingOptions {
  const {
    attempts = retryDefaults.attempts,
    backoff = retryDefaults.backoff,
    idempotent = false,
    retryable,
    maxRetryAfterMs = retryDefaults.maxRetryAfterMs,
    signal,
    clock = realClock,
    random = realRandom,
  } = options;
  if (!Number.isInteger(attempts) || attempts < 1)
    throw invalidOption('attempts', 'must be a positive integer', attempts);
  if (retryable !== undefined && typeof retryable !== 'function')
    throw invalidOption('retryable', 'must be a function', retryable);
  // Bounded by Node's longest single timer (about 24.8 days): no sane Retry-After asks for more.
  if (!(maxRetryAfterMs >= 0 && maxRetryAfterMs <= 2 ** 31 - 1))
    throw invalidOption('maxRetryAfterMs', 'must be from 0 to 2147483647', maxRetryAfterMs);
  return {
    attempts,
    backoff,
    retryable: (error) =>
      retryAfterOf(error) <= maxRetryAfterMs &&
      (idempotent || notSent(error)) &&
      (retryable === undefined || retryable(error)),
    waitAtLeastMs: retryAfterOf,
    signal,
    clock,
    random,
  };
}
