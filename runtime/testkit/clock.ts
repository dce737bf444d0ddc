import type { Clock, TimerHandle } from '../time/clock.js';

interface Pending {
  at: number;
  seq: number;
  callback: () => void;
  cancelled: boolean;
}

/** Where a {@link SimulatedClock} starts. */
export interface SimulatedClockOptions {
  /** Its monotonic reading (`now()`) at the start. Defaults to 0. */
  readonly start?: number;
  /** Its wall-clock time (`wallNow()`, ms since the Unix epoch) at the start. Defaults to 0. */
  readonly epochMs?: number;
}

/**
 * A clock that moves only when told. Timers, ask timeouts, envelope deadlines, restart windows,
 * backoff, heartbeats and retries all read it, so tests of time are exact and instant. Wall time
 * moves with it, from `epochMs`.
 *
 * @example
 * ```ts
 * const clock = new SimulatedClock({ epochMs: Date.UTC(2025, 0, 1) });
 * const system = createSystem({ clock });
 * await clock.advance(1000); // fires every timer due within the next second, in order
 * ```
 */
export class SimulatedClock implements Clock {
  private time: number;
  /** `wallNow() - now()`: fixed, since simulated wall time never jumps. */
  private readonly wallOffset: number;
  private seq = 0;
  private timers: Pending[] = [];

  /** @param start the monotonic reading at the start (a number, as before), or {@link SimulatedClockOptions}. */
  constructor(start: number | SimulatedClockOptions = 0) {
    const options = typeof start === 'number' ? { start } : start;
    this.time = options.start ?? 0;
    this.wallOffset = (options.epochMs ?? 0) - this.time;
  }

  now(): number {
    return this.time;
  }

  wallNow(): number {
    return this.time + this.wallOffset;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const timer: Pending = {
      at: this.time + Math.max(0, delayMs),
      seq: this.seq++,
      callback,
      cancelled: false,
    };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Timers not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /**
   * Moves time forward by `ms`, firing due timers in time order. Between timers it lets promise
   * callbacks run, so work a timer starts (a restart, a delivery) happens before the next timer.
   */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (;;) {
      await flushMicrotasks();
      const next = this.nextDue(target);
      if (next === undefined) break;
      this.time = Math.max(this.time, next.at);
      next.cancelled = true;
      next.callback();
    }
    this.time = target;
    await flushMicrotasks();
  }

  private nextDue(limit: number): Pending | undefined {
    this.timers = this.timers.filter((t) => !t.cancelled);
    let best: Pending | undefined;
    for (const t of this.timers) {
      if (t.at > limit) continue;
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/** Lets queued promise callbacks and one macrotask turn run. */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
