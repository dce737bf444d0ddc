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
 * The real clock: `performance.now()` plus Node timers, which keep the process alive only when
 * asked to ({@link TimerHandle.keepAlive}). Delays past Node's limit (about 24.8 days) wait in
 * steps, so they fire when due, not at once.
 */
export const realClock: Clock = {
  now: () => performance.now(),
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
