import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { asError, invalidOption, TroupeError } from '../protocols/index.js';
import { type Clock, realClock, type TimerHandle } from '../runtime/index.js';
import { closeableOnce } from '../runtime/internal.js';
import { type BreakerState, checkSink, type EventSink, publishGuardEvent } from './events.js';

/** Options of {@link breaker}. */
export interface BreakerOptions {
  /** Names the breaker in its errors and events (a provider, a tool). */
  readonly name: string;
  /** Percentage of failed calls in the window above which it opens. Defaults to 50. */
  readonly errorThresholdPercentage?: number;
  /** Calls in the window before it may open at all. Defaults to 5. */
  readonly volumeThreshold?: number;
  /** How long it stays open before it lets one trial call through (half-open). Defaults to 10,000 ms. */
  readonly resetTimeoutMs?: number;
  /** The rolling window of the statistics. Defaults to 10,000 ms. */
  readonly windowMs?: number;
  /**
   * Which errors count as failures of what the breaker protects. Defaults to all but the caller's own
   * abort and refusals made before the call (`ERR_BULKHEAD_FULL`, `ERR_BUDGET_EXCEEDED`,
   * `ERR_CIRCUIT_OPEN`); errors that do not count leave the statistics as a success would.
   */
  readonly isFailure?: (error: unknown) => boolean;
  /**
   * Where transitions are published (an actor system), besides `onTransition`, as
   * `breaker-transition` events; a listener that throws is a `breaker-listener-failed` event there.
   */
  readonly system?: EventSink;
  /**
   * Time for the statistics window and for the wait from open to half-open (`resetTimeoutMs`).
   * Defaults to the system's clock, else the real one.
   */
  readonly clock?: Clock;
  /** Called on every transition. Without `system`, a throw is written to the console. */
  readonly onTransition?: (from: BreakerState, to: BreakerState) => void;
}

/** The defaults of {@link BreakerOptions}. */
export const breakerDefaults = {
  errorThresholdPercentage: 50,
  volumeThreshold: 5,
  resetTimeoutMs: 10_000,
  windowMs: 10_000,
} as const;

/**
 * A circuit breaker (on opossum): after too many failures it opens and refuses calls at once with
 * `ERR_CIRCUIT_OPEN`; after `resetTimeoutMs` it lets one trial call through (half-open), which
 * closes it again or opens it for another round.
 */
export interface Breaker {
  readonly name: string;
  readonly state: BreakerState;
  /**
   * Runs `call` unless the breaker is open. With `signal`, a failure that is the signal's own abort
   * (the caller gave up) does not count against the callee, except for a half-open breaker's trial,
   * which then opens it again rather than closing it on no evidence.
   * @throws TroupeError `ERR_CIRCUIT_OPEN` when open, or half-open with its trial call out; else
   * whatever `call` throws.
   */
  fire<T>(call: () => PromiseLike<T>, signal?: AbortSignal): Promise<T>;
  /**
   * Stops its timers; later calls are refused. `drain()` is the same (calls in flight complete:
   * the breaker holds nothing of theirs). Idempotent.
   */
  close(): Promise<void>;
  drain(): Promise<void>;
  closed(): Promise<Error | undefined>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Errors made by guards before anything was called: they say nothing of the callee's health. */
export function refusedBeforeCall(error: unknown): boolean {
  return (
    TroupeError.is(error, 'ERR_BULKHEAD_FULL') ||
    TroupeError.is(error, 'ERR_BUDGET_EXCEEDED') ||
    TroupeError.is(error, 'ERR_CIRCUIT_OPEN')
  );
}

/**
 * Builds a circuit breaker. Transitions are published on `system.events$` as
 * `breaker-transition` events when `system` is given.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad option.
 * @example
 * ```ts
 * const openai = breaker({ name: 'openai', system, resetTimeoutMs: 30_000 });
 * const answer = await openai.fire(() => model.complete(request));
 * ```
 */
export function breaker(options: BreakerOptions): Breaker {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const {
    name,
    errorThresholdPercentage = breakerDefaults.errorThresholdPercentage,
    volumeThreshold = breakerDefaults.volumeThreshold,
    resetTimeoutMs = breakerDefaults.resetTimeoutMs,
    windowMs = breakerDefaults.windowMs,
    isFailure,
    system,
    onTransition,
    clock = system?.clock ?? realClock,
  } = options;
  if (typeof name !== 'string' || name === '')
    throw invalidOption('name', 'must be a non-empty string', name);
  if (!(errorThresholdPercentage >= 0 && errorThresholdPercentage <= 100))
    throw invalidOption('errorThresholdPercentage', 'must be from 0 to 100', errorThresholdPercentage);
  if (!Number.isInteger(volumeThreshold) || volumeThreshold < 0)
    throw invalidOption('volumeThreshold', 'must be a non-negative integer', volumeThreshold);
  if (!Number.isFinite(resetTimeoutMs) || resetTimeoutMs < 1)
    throw invalidOption('resetTimeoutMs', 'must be at least 1', resetTimeoutMs);
  if (!Number.isInteger(windowMs) || windowMs < 10)
    throw invalidOption('windowMs', 'must be an integer of at least 10', windowMs);
  if (isFailure !== undefined && typeof isFailure !== 'function')
    throw invalidOption('isFailure', 'must be a function', isFailure);
  checkSink(system);
  if (onTransition !== undefined && typeof onTransition !== 'function')
    throw invalidOption('onTransition', 'must be a function', onTransition);
  if (typeof clock?.now !== 'function') throw invalidOption('clock', 'must be a clock', clock);
  const created: Breaker = new BreakerImpl(
    name,
    {
      errorThresholdPercentage,
      volumeThreshold,
      // The wait from open to half-open, and the half-open trial, are the breaker's own, on its
      // clock (opossum's reset timer runs on real time and takes no clock): opossum's never fires.
      resetTimeout: NEVER_MS,
      rollingCountTimeout: windowMs,
      rollingCountBuckets: BUCKETS,
      // No timers of opossum's own for the statistics: the breaker turns its window as calls come
      // (see BreakerImpl.turnWindow), so a breaker nobody uses any more can be collected.
      enableSnapshots: false,
      // Deadlines are the guard's, with an AbortSignal that reaches the request; opossum's own timer
      // would only stop waiting, not stop the call.
      timeout: false,
      // opossum's errorFilter names errors that do not count; it gets fire's arguments after the error.
      errorFilter: ((error: unknown, _call: unknown, signal: AbortSignal | undefined) =>
        !counts(error, signal, isFailure, created)) as (error: unknown) => boolean,
    },
    system,
    onTransition,
    clock,
    resetTimeoutMs,
    (error, signal) => counts(error, signal, isFailure, created),
  );
  return created;
}

/** Longer than any run: opossum's own reset timer (unref'd) never fires. */
const NEVER_MS = 2 ** 31 - 1;

/** Whether a failure counts against the callee. */
function counts(
  error: unknown,
  signal: AbortSignal | undefined,
  isFailure: ((error: unknown) => boolean) | undefined,
  breaker: Breaker,
): boolean {
  if (refusedBeforeCall(error)) return false;
  const callerAborted =
    (signal?.aborted === true && error === signal.reason) ||
    (error as Error | undefined)?.name === 'AbortError';
  // A trial the caller abandoned says nothing of the callee: the breaker opens again, to try later.
  if (callerAborted) return breaker.state === 'half-open';
  if (isFailure === undefined) return true;
  try {
    return isFailure(error);
  } catch {
    return true;
  }
}

type Call = () => PromiseLike<unknown>;

/** Buckets of a breaker's rolling window. */
const BUCKETS = 10;

class BreakerImpl implements Breaker {
  private readonly circuit: CircuitBreaker<[Call, AbortSignal | undefined], unknown>;
  private current: BreakerState = 'closed';
  /** Turns opossum's statistics window on 'rotate', instead of an interval timer per breaker. */
  private readonly window = new EventEmitter();
  private readonly bucketMs: number;
  private lastTurn: number;
  /** The wait from open to half-open, on the breaker's clock. */
  private reset: TimerHandle | undefined;
  /** True while the half-open trial call is out: other calls are refused meanwhile. */
  private trialOut = false;

  constructor(
    readonly name: string,
    options: CircuitBreaker.Options,
    private readonly system: EventSink | undefined,
    private readonly onTransition: ((from: BreakerState, to: BreakerState) => void) | undefined,
    private readonly clock: Clock,
    private readonly resetTimeoutMs: number,
    private readonly counts: (error: unknown, signal: AbortSignal | undefined) => boolean,
  ) {
    this.lastTurn = clock.now();
    this.bucketMs = Math.max(1, Math.floor((options.rollingCountTimeout ?? 10_000) / BUCKETS));
    this.circuit = new CircuitBreaker(
      (call: Call, _signal: AbortSignal | undefined) => Promise.resolve(call()),
      { ...options, rotateBucketController: this.window },
    );
    this.circuit.on('open', () => this.open());
    this.circuit.on('close', () => this.moveTo('closed'));
  }

  /** Opens (again) and waits `resetTimeoutMs` on the clock before letting a trial through. */
  private open(): void {
    this.reset?.cancel();
    this.moveTo('open');
    this.reset = this.clock.setTimeout(() => {
      this.reset = undefined;
      if (this.circuit.isShutdown || this.current !== 'open') return;
      this.trialOut = false;
      this.moveTo('half-open');
    }, this.resetTimeoutMs);
  }

  /** The half-open trial: a success closes the breaker, a failure that counts opens it again. */
  private trial<T>(call: () => PromiseLike<T>, signal: AbortSignal | undefined): Promise<T> {
    this.trialOut = true;
    return new Promise<T>((resolve) => resolve(call())).then(
      (value) => {
        this.trialOut = false;
        if (this.current === 'half-open') this.circuit.close();
        return value;
      },
      (error: unknown) => {
        this.trialOut = false;
        if (this.current === 'half-open') {
          if (this.counts(error, signal)) this.open();
          else this.circuit.close();
        }
        throw error;
      },
    );
  }

  get state(): BreakerState {
    return this.current;
  }

  fire<T>(call: () => PromiseLike<T>, signal?: AbortSignal): Promise<T> {
    this.turnWindow();
    const circuit = this.circuit;
    // The refusal is decided here (open, or half-open with its trial out), so opossum's refusals
    // never need translating on the way back.
    const refuse = this.current === 'open' || (this.current === 'half-open' && this.trialOut);
    if (circuit.isShutdown || refuse) {
      circuit.emit('reject', new Error('Breaker is open'));
      return Promise.reject(
        new TroupeError(
          'ERR_CIRCUIT_OPEN',
          `the circuit breaker "${this.name}" is ${circuit.isShutdown ? 'shut down' : this.current}`,
          { details: { breaker: this.name, state: circuit.isShutdown ? 'shut down' : this.current } },
        ),
      );
    }
    if (this.current === 'half-open') return this.trial(call, signal);
    return circuit.fire(call, signal) as Promise<T>;
  }

  private readonly lifecycle = closeableOnce(() => {
    this.reset?.cancel();
    this.circuit.shutdown();
  });

  close(): Promise<void> {
    return this.lifecycle.close();
  }

  drain(): Promise<void> {
    return this.lifecycle.drain();
  }

  closed(): Promise<Error | undefined> {
    return this.lifecycle.closed();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.lifecycle.close();
  }

  /**
   * Drops the buckets older than the window when a call starts. The statistics are read only when a
   * call ends, so they are at most that call's duration stale, and no timer runs per breaker.
   */
  private turnWindow(): void {
    const turns = Math.floor((this.clock.now() - this.lastTurn) / this.bucketMs);
    if (turns === 0) return;
    this.lastTurn += turns * this.bucketMs;
    for (let i = 0; i < Math.min(turns, BUCKETS); i++) this.window.emit('rotate');
  }

  private moveTo(to: BreakerState): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    // Listeners run inside opossum's own callbacks: a throw there must not break the breaker.
    try {
      this.onTransition?.(from, to);
    } catch (thrown) {
      const error = asError(thrown);
      // Without a system there is no stream to carry the defect: the console is the fallback.
      if (this.system === undefined)
        console.error(`troupe: an onTransition listener of breaker "${this.name}" threw`, error);
      else
        publishGuardEvent(this.system, {
          type: 'breaker-listener-failed',
          breaker: this.name,
          from,
          to,
          error,
        });
    }
    publishGuardEvent(this.system, { type: 'breaker-transition', breaker: this.name, from, to });
  }
}
