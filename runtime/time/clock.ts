import { invalidOption } from '../../protocols/index.js';

/** A cancellable timer handle. */
export interface TimerHandle {
  cancel(): void;
  /**
   * Whether the timer keeps the process alive until it fires or is cancelled (Node's `ref`/`unref`).
   * Timers start without: most are housekeeping (heartbeats, actor timers, restart backoff) that must
   * not hold a process whose work is done. A timer that settles a promise someone awaits (an ask's
   * timeout, a sleep, a drain's deadline) holds it, or Node would exit with that await unsettled.
   * Optional: a clock that does not run on Node timers (the simulated one) leaves it out.
   */
  keepAlive?(hold: boolean): void;
}

/**
 * Time as the runtime sees it: every timer, timeout, deadline, window and wait of every layer reads
 * it. Inject one through the system options (or a component's `clock` option where there is no
 * system); the test kit's `SimulatedClock` makes timers, ask timeouts, restart windows, backoff,
 * heartbeats and retries exact.
 */
export interface Clock {
  /** Monotonic milliseconds, for windows, durations and timers; its origin means nothing. */
  now(): number;
  /**
   * Wall-clock time in milliseconds since the Unix epoch, for what leaves the process or outlives it:
   * envelope deadlines and stored timestamps (`createdAt`). It may jump (NTP, a host's clock).
   */
  wallNow(): number;
  /** Calls `callback` once, `delayMs` from now (at once for a delay <= 0). */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
}

/** Node's longest timer delay; a longer one would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The real clock: `performance.now()`, `Date.now()` and Node timers, which keep the process alive
 * only when asked to ({@link TimerHandle.keepAlive}). Delays past Node's limit (about 24.8 days) wait
 * in steps, so they fire when due, not at once. The one place, with the random module, where the
 * runtime reads real time.
 */
export const realClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout(callback, delayMs) {
    const due = performance.now() + delayMs;
    let timer: ReturnType<typeof setTimeout>;
    let held = false;
    const arm = (ms: number) => {
      timer = setTimeout(ms > MAX_TIMER_MS ? step : callback, Math.min(ms, MAX_TIMER_MS));
      if (!held) timer.unref();
    };
    const step = () => arm(due - performance.now());
    arm(delayMs);
    return {
      cancel: () => clearTimeout(timer),
      keepAlive: (hold) => {
        held = hold;
        if (hold) timer.ref();
        else timer.unref();
      },
    };
  },
};

/** Options of {@link sleep}. */
export interface SleepOptions {
  /** Aborting it ends the sleep at once: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal | undefined;
  /** The clock to sleep on. Defaults to {@link realClock}. */
  readonly clock?: Clock | undefined;
}

/**
 * Resolves after `ms` on the clock, or rejects with the signal's reason as soon as it aborts (at once
 * when it already has). The timer holds the process while someone awaits it. Every wait of the
 * runtime and the layers above goes through it, so a simulated clock moves them all.
 *
 * A signal as the second argument (the form of earlier versions) is still accepted.
 * @example
 * ```ts
 * await sleep(250, { signal: ctx.signal, clock: system.clock });
 * ```
 */
export function sleep(ms: number, options?: SleepOptions | AbortSignal): Promise<void> {
  const { signal, clock = realClock } =
    options instanceof AbortSignal ? { signal: options } : (options ?? {});
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      timer.cancel();
      reject(signal!.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    // Someone awaits this sleep: Node must not exit under it.
    timer.keepAlive?.(true);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Calls `callback` every `intervalMs` on `clock` until the returned function is called: a
 * housekeeping timer (a poll, a redraw, an expiry sweep), so it never holds the process. Each run is
 * timed from the end of the previous one.
 * @throws TroupeError `ERR_INVALID_OPTION` for an interval that is not above 0.
 * @example
 * ```ts
 * const stop = every(system.clock, 1000, () => console.log(renderTree(system.tree())));
 * // ... later
 * stop();
 * ```
 */
export function every(clock: Clock, intervalMs: number, callback: () => void): () => void {
  if (!(intervalMs > 0)) throw invalidOption('intervalMs', 'must be a number > 0', intervalMs);
  let timer: TimerHandle | undefined;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    callback();
    if (!stopped) timer = clock.setTimeout(tick, intervalMs);
  };
  timer = clock.setTimeout(tick, intervalMs);
  return () => {
    stopped = true;
    timer?.cancel();
  };
}
