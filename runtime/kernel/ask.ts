import { type TraceContext, TroupeError } from '../../protocols/index.js';
import type { Clock, TimerHandle } from '../time/clock.js';

/**
 * One outstanding ask. It settles once: with the reply, an error, its timeout or its signal.
 * `from` is the asking actor, when an actor asked.
 */
export class PendingAsk {
  settled = false;
  deadline = 0;
  private onAbort: (() => void) | undefined;
  /** Told when the ask settles, however it settles (a remote ask leaves its router's table). */
  release: ((ask: PendingAsk) => void) | undefined = undefined;
  /** The timeouts this ask waits in, told when it settles. */
  timeouts: TimeoutQueue | undefined = undefined;
  /** The correlation id of a remote ask. */
  key: string | undefined = undefined;
  /** The W3C trace context the request came with. */
  trace: TraceContext | undefined = undefined;
  /** Its handler took the reply away from the kernel (`detachReply`): only that handle settles it. */
  detached = false;

  constructor(
    private readonly resolveFn: (value: unknown) => void,
    private readonly rejectFn: (error: unknown) => void,
    readonly from: unknown,
    private readonly signal: AbortSignal | undefined,
    readonly to: string,
    readonly type: string,
  ) {}

  resolve(value: unknown): void {
    if (this.settled) return;
    this.settle();
    this.resolveFn(value);
  }

  reject(error: unknown): void {
    if (this.settled) return;
    this.settle();
    this.rejectFn(error);
  }

  /**
   * Rejects with `ERR_ASK_ABORTED` when `signal` aborts. False (and rejected already) when it had
   * aborted before: the ask must not be sent.
   */
  listen(signal: AbortSignal): boolean {
    this.onAbort = () =>
      this.reject(
        new TroupeError('ERR_ASK_ABORTED', `ask "${this.type}" to ${this.to} was aborted`, {
          cause: signal.reason,
          details: { to: this.to, type: this.type },
        }),
      );
    if (signal.aborted) {
      this.onAbort();
      return false;
    }
    signal.addEventListener('abort', this.onAbort, { once: true });
    return true;
  }

  private settle(): void {
    this.settled = true;
    if (this.onAbort !== undefined) this.signal?.removeEventListener('abort', this.onAbort);
    if (this.release !== undefined) this.release(this);
    if (this.timeouts !== undefined) this.timeouts.settled();
  }
}

/** A FIFO of asks in a ring that keeps its capacity (a power of two). */
class AskFifo {
  private items: (PendingAsk | undefined)[] = new Array(16);
  private head = 0;
  size = 0;

  push(ask: PendingAsk): void {
    if (this.size === this.items.length) this.grow();
    this.items[(this.head + this.size++) & (this.items.length - 1)] = ask;
  }

  peek(): PendingAsk | undefined {
    return this.size === 0 ? undefined : this.items[this.head];
  }

  shift(): void {
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & (this.items.length - 1);
    this.size--;
  }

  /** Drops settled asks from the front. */
  trim(): void {
    while (this.size > 0 && this.items[this.head]!.settled) this.shift();
  }

  *[Symbol.iterator](): Generator<PendingAsk> {
    for (let i = 0; i < this.size; i++) yield this.items[(this.head + i) & (this.items.length - 1)]!;
  }

  private grow(): void {
    const next: (PendingAsk | undefined)[] = new Array(this.items.length * 2);
    for (let i = 0; i < this.size; i++) next[i] = this.items[(this.head + i) & (this.items.length - 1)];
    this.items = next;
    this.head = 0;
  }
}

/**
 * Ask timeouts without one timer per ask: asks with the same timeout expire in the order they were
 * made, so each timeout value keeps a FIFO and one clock timer waits for the earliest deadline.
 * Settled asks are dropped from the front lazily. The timer keeps the process alive while an ask is
 * unsettled (its caller awaits it, and must get its reply or `ERR_ASK_TIMEOUT`), and only then, so a
 * program whose asks are all answered can exit before the timer is due.
 */
export class TimeoutQueue {
  private readonly queues = new Map<number, AskFifo>();
  // Most asks use one timeout: remember its queue to skip the map look-up.
  private lastTimeoutMs = -1;
  private lastQueue: AskFifo | undefined;
  private timer: TimerHandle | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private unsettled = 0;
  /** The timer holds the process: some ask was unsettled since the last release. */
  private held = false;
  private releasing = false;

  constructor(private readonly clock: Clock) {}

  add(ask: PendingAsk, timeoutMs: number): void {
    ask.deadline = this.clock.now() + timeoutMs;
    let queue = timeoutMs === this.lastTimeoutMs ? this.lastQueue : this.queues.get(timeoutMs);
    if (queue === undefined) {
      queue = new AskFifo();
      this.queues.set(timeoutMs, queue);
    }
    this.lastTimeoutMs = timeoutMs;
    this.lastQueue = queue;
    queue.trim();
    queue.push(ask);
    ask.timeouts = this;
    this.unsettled++;
    if (!this.held) {
      this.held = true;
      this.timer?.keepAlive?.(true);
    }
    if (ask.deadline < this.timerAt) this.arm(ask.deadline);
  }

  /**
   * One of the asks added here settled. When none is left, the timer lets the process go at the end
   * of this turn of the event loop, not at once: sequential asks would otherwise toggle it per ask.
   */
  settled(): void {
    if (--this.unsettled === 0 && this.held && !this.releasing) {
      this.releasing = true;
      setImmediate(this.release);
    }
  }

  private readonly release = (): void => {
    this.releasing = false;
    if (this.unsettled !== 0 || !this.held) return;
    this.held = false;
    this.timer?.keepAlive?.(false);
  };

  /** Rejects every pending ask (the system is stopping). */
  rejectAll(error: () => TroupeError): void {
    for (const queue of this.queues.values()) for (const ask of queue) ask.reject(error());
    this.queues.clear();
    this.lastQueue = undefined;
    this.lastTimeoutMs = -1;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private arm(at: number): void {
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => this.expire(), Math.max(0, at - this.clock.now()));
    if (this.held) this.timer.keepAlive?.(true);
  }

  private expire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [timeoutMs, queue] of this.queues) {
      for (let ask = queue.peek(); ask !== undefined; ask = queue.peek()) {
        if (!ask.settled && ask.deadline > now) break;
        queue.shift();
        if (!ask.settled) {
          ask.reject(
            new TroupeError(
              'ERR_ASK_TIMEOUT',
              `ask "${ask.type}" to ${ask.to} got no reply within ${timeoutMs} ms`,
              {
                details: { to: ask.to, type: ask.type, timeoutMs },
              },
            ),
          );
        }
      }
      const head = queue.peek();
      if (head === undefined) {
        this.queues.delete(timeoutMs);
        if (this.lastQueue === queue) this.lastQueue = undefined;
        this.lastTimeoutMs = -1;
      } else {
        next = Math.min(next, head.deadline);
      }
    }
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
  }
}
