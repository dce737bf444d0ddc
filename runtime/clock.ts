/** A cancellable timer handle. */
export interface TimerHandle {
  cancel(): void;
}

/**
 * Time as the runtime sees it. Inject one through the system options; the test kit's
 * `SimulatedClock` makes timers, ask timeouts, restart windows and backoff exact.
 */
export interface Clock {
  /** Milliseconds, monotonic enough for windows and deadlines. */
  now(): number;
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
}

/** Node's longest timer delay; a longer one would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The real clock: `performance.now()` plus Node timers (unref'd so they never keep a process alive).
 * Delays past Node's limit (about 24.8 days) wait in steps, so they fire when due, not at once.
 */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout(callback, delayMs) {
    const due = performance.now() + delayMs;
    let timer: ReturnType<typeof setTimeout>;
    const arm = (ms: number) => {
      timer = setTimeout(ms > MAX_TIMER_MS ? step : callback, Math.min(ms, MAX_TIMER_MS));
      timer.unref?.();
    };
    const step = () => arm(due - performance.now());
    arm(delayMs);
    return { cancel: () => clearTimeout(timer) };
  },
};
