import type { TroupeError } from '../protocols/index.js';
import { type Clock, realClock } from '../runtime/index.js';

/** Options of {@link withDeadline}. */
export interface DeadlineOptions {
  /** The deadline, in ms. */
  readonly timeoutMs: number;
  /** The caller's signal: aborting it ends the work with its reason. */
  readonly signal?: AbortSignal | undefined;
  /** The error the work ends with at the deadline (an `ERR_CALL_TIMEOUT` naming the call). */
  readonly timeout: () => TroupeError;
  /** The clock the deadline runs on. Defaults to the real clock. */
  readonly clock?: Clock | undefined;
}

/**
 * Runs `work` with a signal that aborts at the deadline (with `timeout()`) or when the caller's
 * `signal` aborts (with its reason), and settles as soon as either happens, even when `work` ignores
 * its signal (a later rejection of it is ignored). A `work` that throws instead of rejecting is a
 * rejection; a `work` that fails has its signal aborted too, so that its request ends. The timer
 * and the listener are always removed.
 * @example
 * ```ts
 * const body = await withDeadline((signal) => fetch(url, { signal }).then((r) => r.text()), {
 *   timeoutMs: 5_000,
 *   timeout: () => new TroupeError('ERR_CALL_TIMEOUT', 'the search did not answer in 5 s'),
 * });
 * ```
 */
export async function withDeadline<T>(
  work: (signal: AbortSignal) => PromiseLike<T>,
  options: DeadlineOptions,
): Promise<T> {
  const { timeoutMs, signal } = options;
  if (signal?.aborted) throw signal.reason;
  const controller = new AbortController();
  let stop: (reason: unknown) => void = () => {};
  const stopped = new Promise<never>((_, reject) => {
    stop = reject;
  });
  stopped.catch(() => {});
  const abort = (reason: unknown) => {
    if (controller.signal.aborted) return;
    controller.abort(reason);
    stop(reason);
  };
  const timer = (options.clock ?? realClock).setTimeout(() => abort(options.timeout()), timeoutMs);
  // The caller awaits what the deadline settles: it holds the process, as a Node timer would.
  timer.keepAlive?.(true);
  const onCallerAbort = () => abort(signal?.reason);
  signal?.addEventListener('abort', onCallerAbort, { once: true });
  try {
    const running = new Promise<T>((resolve) => resolve(work(controller.signal)));
    running.catch(() => {});
    return await Promise.race([running, stopped]);
  } catch (error) {
    if (controller.signal.aborted) throw controller.signal.reason;
    controller.abort();
    throw error;
  } finally {
    timer.cancel();
    signal?.removeEventListener('abort', onCallerAbort);
  }
}
