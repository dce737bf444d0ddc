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

/** The real clock: `performance.now()` plus Node timers (unref'd so they never keep a process alive). */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout(callback, delayMs) {
    const timer = setTimeout(callback, delayMs);
    timer.unref?.();
    return { cancel: () => clearTimeout(timer) };
  },
};
