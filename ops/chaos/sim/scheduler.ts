/**
 * The simulation's one source of time: a heap of timers on virtual time. Each node sees it through
 * its own {@link NodeClock}, which can be paused (its timers wait), killed (its timers never fire)
 * and skewed (its wall clock is off). The scheduler fires the next timer and lets the work it
 * started run to quiescence before the next: time jumps straight to the next timer, never steps.
 */
import type { Clock, TimerHandle } from '../../../runtime/index.js';

interface Timer {
  at: number;
  seq: number;
  callback: () => void;
  cancelled: boolean;
  owner: NodeClock | undefined;
}

/** Epoch of the simulated wall clock: 2026-01-01T00:00:00Z. */
export const SIM_EPOCH_MS = Date.UTC(2026, 0, 1);

/** Lets queued promise callbacks and one macrotask turn of every pending immediate run. */
function macrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Virtual time for a whole cluster in one process. */
export class SimScheduler implements Clock {
  private time = 0;
  private seq = 0;
  private heap: Timer[] = [];
  /** Timers fired so far. */
  fired = 0;

  now(): number {
    return this.time;
  }

  wallNow(): number {
    return SIM_EPOCH_MS + this.time;
  }

  // The Clock interface's timer, on simulated time: it queues in this scheduler, never on Node's timers.
  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    return this.add(callback, delayMs, undefined);
  }

  /** A timer owned by a node (paused and killed with it). */
  add(callback: () => void, delayMs: number, owner: NodeClock | undefined): TimerHandle {
    const timer: Timer = {
      at: this.time + Math.max(delayMs, 0),
      seq: this.seq++,
      callback,
      cancelled: false,
      owner,
    };
    this.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** A view of this scheduler for one node. */
  nodeClock(node: string): NodeClock {
    return new NodeClock(this, node);
  }

  /**
   * Runs timers in time order until virtual time reaches `until` (or nothing is left), letting the
   * work each one starts settle (microtasks and one macrotask turn) before the next. `onTick` is
   * called before each timer with its time.
   */
  async run(until: number): Promise<void> {
    for (;;) {
      await macrotask();
      const next = this.pop(until);
      if (next === undefined) break;
      if (next.at > this.time) this.time = next.at;
      this.fired++;
      next.callback();
    }
    if (until > this.time) this.time = until;
    await macrotask();
  }

  /** Holds a paused node's timer: it fires once the node resumes. */
  private pop(until: number): Timer | undefined {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.at > until) return undefined;
      this.popTop();
      if (top.cancelled) continue;
      const owner = top.owner;
      if (owner !== undefined) {
        if (owner.state === 'dead') continue;
        if (owner.state === 'paused') {
          owner.held.push(top);
          continue;
        }
      }
      return top;
    }
  }

  /** Puts a paused node's timers back, due now or at their own time if later. */
  resume(owner: NodeClock): void {
    for (const timer of owner.held.splice(0)) {
      if (timer.cancelled) continue;
      timer.at = Math.max(timer.at, this.time);
      timer.seq = this.seq++;
      this.push(timer);
    }
  }

  private push(timer: Timer): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(timer, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = timer;
  }

  private popTop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(heap[r]!, heap[l]!) ? r : l;
      if (!before(heap[c]!, last)) break;
      heap[i] = heap[c]!;
      i = c;
    }
    heap[i] = last;
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** One node's view of the simulation's time. */
export class NodeClock implements Clock {
  state: 'running' | 'paused' | 'dead' = 'running';
  /** Added to the wall clock (a skewed node). */
  skewMs = 0;
  /** @internal Timers that came due while paused. */
  readonly held: Timer[] = [];

  constructor(
    private readonly scheduler: SimScheduler,
    readonly node: string,
  ) {}

  now(): number {
    return this.scheduler.now();
  }

  wallNow(): number {
    return this.scheduler.wallNow() + this.skewMs;
  }

  // A node's timer on the shared simulated time (with this node's skew), queued in the scheduler.
  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    return this.scheduler.add(callback, delayMs, this);
  }

  pause(): void {
    if (this.state === 'running') this.state = 'paused';
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.state = 'running';
    this.scheduler.resume(this);
  }

  kill(): void {
    this.state = 'dead';
    this.held.length = 0;
  }
}
