import { invalidOption, TroupeError } from '../protocols/index.js';
import { checkSink, type EventSink, publishGuardEvent } from './events.js';

/** Options of {@link bulkhead}. */
export interface BulkheadOptions {
  /** Names the bulkhead in its errors (a provider, a tool, an agent pool). Defaults to `bulkhead`. */
  readonly name?: string;
  /** Most calls running at once. */
  readonly maxConcurrent: number;
  /** Most calls waiting for a slot, first come first served. Defaults to 0: no waiting. */
  readonly maxQueue?: number;
  /** Where refusals are published (an actor system), as `bulkhead-rejected` events. */
  readonly system?: EventSink;
}

/** Options of one call through a bulkhead. */
export interface BulkheadCallOptions {
  /** Aborting it takes a waiting call out of the queue (it rejects with the signal's reason). */
  readonly signal?: AbortSignal;
}

/**
 * A limit on concurrent calls with a bounded queue: one slow provider or tool can hold at most
 * `maxConcurrent` calls and `maxQueue` waiters, and a call beyond both is refused at once.
 */
export interface Bulkhead {
  readonly name: string;
  /** Calls running now. */
  readonly active: number;
  /** Calls waiting for a slot now. */
  readonly queued: number;
  /**
   * Runs `call` when a slot is free: at once, or after the calls queued before it.
   * @throws TroupeError `ERR_BULKHEAD_FULL` (rejected at once) when every slot is taken and the queue
   * is full; the signal's reason when the signal aborts while the call waits.
   */
  run<T>(call: () => PromiseLike<T> | T, options?: BulkheadCallOptions): Promise<T>;
}

interface Waiter {
  readonly start: () => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/**
 * Builds a bulkhead. With `system`, each refusal is also a `bulkhead-rejected` event there.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad option.
 * @example
 * ```ts
 * const models = bulkhead({ name: 'openai', maxConcurrent: 8, maxQueue: 32 });
 * const answer = await models.run(() => callModel(request));
 * ```
 */
export function bulkhead(options: BulkheadOptions): Bulkhead {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const { name = 'bulkhead', maxConcurrent, maxQueue = 0, system } = options;
  if (typeof name !== 'string' || name === '')
    throw invalidOption('name', 'must be a non-empty string', name);
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1)
    throw invalidOption('maxConcurrent', 'must be a positive integer', maxConcurrent);
  if (!Number.isInteger(maxQueue) || maxQueue < 0)
    throw invalidOption('maxQueue', 'must be a non-negative integer', maxQueue);
  checkSink(system);
  return new BulkheadImpl(name, maxConcurrent, maxQueue, system);
}

class BulkheadImpl implements Bulkhead {
  active = 0;
  private readonly waiting: Waiter[] = [];

  constructor(
    readonly name: string,
    private readonly maxConcurrent: number,
    private readonly maxQueue: number,
    private readonly system: EventSink | undefined,
  ) {}

  get queued(): number {
    return this.waiting.length;
  }

  run<T>(call: () => PromiseLike<T> | T, options?: BulkheadCallOptions): Promise<T> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.active < this.maxConcurrent) return this.start(call);
    if (this.waiting.length >= this.maxQueue) {
      publishGuardEvent(this.system, {
        type: 'bulkhead-rejected',
        bulkhead: this.name,
        active: this.active,
        queued: this.waiting.length,
        maxConcurrent: this.maxConcurrent,
        maxQueue: this.maxQueue,
      });
      return Promise.reject(
        new TroupeError(
          'ERR_BULKHEAD_FULL',
          `bulkhead "${this.name}" is full: ${this.active} calls running, ${this.waiting.length} waiting`,
          { details: { bulkhead: this.name, maxConcurrent: this.maxConcurrent, maxQueue: this.maxQueue } },
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        start: () => {
          signal?.removeEventListener('abort', waiter.onAbort);
          this.start(call).then(resolve, reject);
        },
        signal,
        onAbort: () => {
          const at = this.waiting.indexOf(waiter);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(signal!.reason);
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private start<T>(call: () => PromiseLike<T> | T): Promise<T> {
    this.active++;
    let running: Promise<T>;
    try {
      running = Promise.resolve(call());
    } catch (error) {
      running = Promise.reject(error);
    }
    return running.then(
      (value) => {
        this.release();
        return value;
      },
      (error: unknown) => {
        this.release();
        throw error;
      },
    );
  }

  private release(): void {
    this.active--;
    this.waiting.shift()?.start();
  }
}
