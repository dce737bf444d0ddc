import { invalidOption, TroupeError } from '../protocols/index.js';
import { type Clock, type Random, type RetryingOptions, retrying } from '../runtime/index.js';
import { type Breaker, type BreakerOptions, breaker, refusedBeforeCall } from './breaker.js';
import { type Bulkhead, type BulkheadOptions, bulkhead } from './bulkhead.js';
import { withDeadline } from './deadline.js';
import type { EventSink } from './events.js';
import { type RetryOptions, retryPolicy } from './retry.js';

/** Options of {@link guard}. */
export interface GuardOptions {
  /** Names the guard; its breaker and bulkhead take the name unless given their own. */
  readonly name: string;
  /** A circuit breaker (its options, or one to share), or false for none. Defaults to one with default options. */
  readonly breaker?: Omit<BreakerOptions, 'name' | 'system'> | Breaker | false;
  /** A bulkhead (its options, or one to share), or false for none. Defaults to none. */
  readonly bulkhead?: Omit<BulkheadOptions, 'name' | 'system'> | Bulkhead | false;
  /**
   * Retries (see `retry`), or false for none. Defaults to 3 attempts with exponential backoff and
   * jitter. Refusals (`ERR_CIRCUIT_OPEN`, `ERR_BULKHEAD_FULL`, `ERR_BUDGET_EXCEEDED`) and the
   * caller's abort are never retried; a call that is not idempotent is retried only when nothing
   * was sent.
   */
  readonly retry?: Omit<RetryOptions, 'signal' | 'idempotent'> | false;
  /** The deadline of each attempt, in ms: its AbortSignal aborts with `ERR_CALL_TIMEOUT`. Defaults to none. */
  readonly timeoutMs?: number;
  /**
   * Where the breaker publishes its transitions (an actor system). The guard also takes its clock and
   * random source from it, unless given its own.
   */
  readonly system?: GuardSystem;
  /**
   * Time for the breaker's window, the deadlines and the waits between retries. Defaults to the
   * system's clock, else the real one.
   */
  readonly clock?: Clock;
  /** Jitter of the retries' backoff. Defaults to the system's random source, else `Math.random`. */
  readonly random?: Random;
}

/** What a guard needs of an actor system: where to publish, and (optionally) its clock and random source. */
export type GuardSystem = EventSink;

/** Options of one guarded call. */
export interface GuardCallOptions {
  /** The caller's signal: aborting it aborts the attempt in flight and ends the retries. */
  readonly signal?: AbortSignal;
  /** Whether the call may run twice without harm. Defaults to false. */
  readonly idempotent?: boolean;
}

/**
 * Retries around a bulkhead around a circuit breaker around a deadline: the guard of one model
 * provider or one tool.
 */
export interface Guard {
  readonly name: string;
  readonly breaker: Breaker | undefined;
  readonly bulkhead: Bulkhead | undefined;
  /**
   * Runs `call` under the guard. `call` gets the attempt's signal: pass it to the HTTP request so a
   * deadline or the caller's abort stops the work, not only the wait.
   * @throws TroupeError `ERR_CIRCUIT_OPEN`, `ERR_BULKHEAD_FULL` (at once, not retried),
   * `ERR_CALL_TIMEOUT` for an attempt past its deadline, the caller's abort reason, or the call's
   * last error after the retries.
   */
  call<T>(call: (signal: AbortSignal) => PromiseLike<T>, options?: GuardCallOptions): Promise<T>;
}

/** A signal that never aborts, for calls without a deadline or a caller's signal. */
const NEVER = new AbortController().signal;

/**
 * Builds a guard.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad option.
 * @example
 * ```ts
 * const openai = guard({ name: 'openai', system, timeoutMs: 30_000, bulkhead: { maxConcurrent: 8, maxQueue: 32 } });
 * const answer = await openai.call((signal) => model.complete(request, { signal }), { idempotent: true });
 * ```
 */
export function guard(options: GuardOptions): Guard {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const { name, timeoutMs, system } = options;
  const clock = options.clock ?? system?.clock;
  const random = options.random ?? system?.random;
  if (typeof name !== 'string' || name === '')
    throw invalidOption('name', 'must be a non-empty string', name);
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0))
    throw invalidOption('timeoutMs', 'must be a positive number', timeoutMs);
  const theBreaker =
    options.breaker === false
      ? undefined
      : isBreaker(options.breaker)
        ? options.breaker
        : breaker({
            ...(clock === undefined ? {} : { clock }),
            ...options.breaker,
            name,
            ...(system === undefined ? {} : { system }),
          });
  const theBulkhead =
    options.bulkhead === undefined || options.bulkhead === false
      ? undefined
      : isBulkhead(options.bulkhead)
        ? options.bulkhead
        : bulkhead({ ...options.bulkhead, name, ...(system === undefined ? {} : { system }) });
  const retryOptions = options.retry === false ? undefined : (options.retry ?? {});
  if (retryOptions !== undefined && (typeof retryOptions !== 'object' || retryOptions === null))
    throw invalidOption('retry', 'must be retry options or false', retryOptions);
  const timing = { ...(clock === undefined ? {} : { clock }), ...(random === undefined ? {} : { random }) };
  return new GuardImpl(
    name,
    theBreaker,
    theBulkhead,
    retryOptions === undefined ? undefined : { ...timing, ...retryOptions },
    timeoutMs,
    clock,
  );
}

function isBreaker(value: unknown): value is Breaker {
  return typeof (value as Breaker | undefined)?.fire === 'function';
}

function isBulkhead(value: unknown): value is Bulkhead {
  return typeof (value as Bulkhead | undefined)?.run === 'function';
}

class GuardImpl implements Guard {
  /** The retry policy of calls that are not idempotent, and of those that are. */
  private readonly policies: readonly [RetryingOptions, RetryingOptions] | undefined;

  constructor(
    readonly name: string,
    readonly breaker: Breaker | undefined,
    readonly bulkhead: Bulkhead | undefined,
    retryOptions: Omit<RetryOptions, 'signal' | 'idempotent'> | undefined,
    private readonly timeoutMs: number | undefined,
    private readonly clock: Clock | undefined,
  ) {
    if (retryOptions === undefined) return;
    const userRetryable = retryOptions.retryable;
    const retryable = (error: unknown) =>
      !refusedBeforeCall(error) &&
      (error as Error | undefined)?.name !== 'AbortError' &&
      (userRetryable === undefined || userRetryable(error));
    this.policies = [
      retryPolicy({ ...retryOptions, retryable, idempotent: false }),
      retryPolicy({ ...retryOptions, retryable, idempotent: true }),
    ];
  }

  call<T>(call: (signal: AbortSignal) => PromiseLike<T>, options?: GuardCallOptions): Promise<T> {
    const signal = options?.signal;
    if (this.policies === undefined) return this.attempt(call, signal);
    const policy = this.policies[options?.idempotent === true ? 1 : 0];
    // The caller's abort ends the retries: the wait for the next attempt rejects with its reason.
    return retrying(() => this.attempt(call, signal), signal === undefined ? policy : { ...policy, signal });
  }

  /** One attempt: a bulkhead slot, then the breaker, then the call under its deadline. */
  private attempt<T>(
    call: (signal: AbortSignal) => PromiseLike<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    if (this.bulkhead === undefined) return this.broken(call, signal);
    return this.bulkhead.run(() => this.broken(call, signal), signal === undefined ? undefined : { signal });
  }

  private broken<T>(
    call: (signal: AbortSignal) => PromiseLike<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    if (this.breaker === undefined) return this.withDeadline(call, signal);
    return this.breaker.fire(() => this.withDeadline(call, signal), signal);
  }

  private withDeadline<T>(
    call: (signal: AbortSignal) => PromiseLike<T>,
    outer: AbortSignal | undefined,
  ): Promise<T> {
    if (outer?.aborted) return Promise.reject(outer.reason);
    // A call that throws instead of rejecting is a rejection all the same.
    if (this.timeoutMs === undefined) return new Promise<T>((resolve) => resolve(call(outer ?? NEVER)));
    const timeoutMs = this.timeoutMs;
    return withDeadline(call, {
      timeoutMs,
      signal: outer,
      clock: this.clock,
      timeout: () =>
        new TroupeError('ERR_CALL_TIMEOUT', `"${this.name}" ran past its deadline of ${timeoutMs} ms`, {
          details: { call: this.name, timeoutMs },
        }),
    });
  }
}
