/**
 * The dispatcher: the ready queue of actors with work and the turns that run them. It runs on
 * microtasks for latency and yields to Node's event loop once per time slice so I/O is never starved;
 * while handlers are slow it gives each actor one message per turn, so a slice is bounded by about one
 * handler's run.
 *
 * By default it reads real time (`performance.now`, `setImmediate`), not the injected clock: the slice
 * bounds how long this process keeps Node's event loop from its I/O, which only real time measures.
 * But real time then decides how turns interleave (slow turns get one message each, a long burst
 * goes on in a macrotask), so a deterministic simulation passes `now` (the system's clock, option
 * `timeSlices: 'clock'`): a simulated clock stands still during a turn, so every turn is fast and
 * the queue runs on microtasks, the same way on every machine.
 */

/** What the dispatcher runs: an actor with queued work. */
export interface Runnable {
  readonly address: string;
  /** Handles system messages, then up to `budget` user messages. */
  run(budget: number): void;
}

const resolved = Promise.resolve();

/** The stops promised during one turn (see `Dispatcher.stopBatch`). */
class StopBatch {
  resolve!: () => void;
  readonly promise = new Promise<void>((resolve) => {
    this.resolve = resolve;
  });
  /** Promised stops that went async after all; the batch resolves once they are done too. */
  readonly later: Promise<unknown>[] = [];
}

const realNow = (): number => performance.now();

export class Dispatcher {
  // The ready queue: a ring of actors that keeps its capacity between turns (a power of two).
  private ring: (Runnable | undefined)[] = new Array(1024);
  private ringHead = 0;
  private ringSize = 0;
  /** True while a run of the queue is scheduled or running. */
  pending = false;
  private burstStart = 0;
  /** Whether a burst (turns since the last macrotask) is under way; `burstStart` may be 0 on a simulated clock. */
  private inBurst = false;
  private burstSchedules = 0;
  private overSlice = false;
  /** Set when a turn used its whole budget: a heavy turn, after which the clock is read. */
  private fullTurn = false;
  /** When the dispatcher last read the clock. */
  private lastCheck = 0;
  /**
   * Slow turns: handlers have been taking long (over 50 µs a turn), so the dispatcher gives each
   * actor one message per turn and reads the clock after every turn; fast turns read it every 32.
   */
  private slowTurns = false;
  private fastStreak = 0;
  /** True while a turn runs (`runQueue` is on the stack). */
  private inTurn = false;
  private batch: StopBatch | undefined;

  constructor(
    private readonly throughput: number,
    private readonly timeSliceMs: number,
    /** Told when the queue has run empty. */
    private readonly drained: () => void,
    /** Told of a throw that escaped an actor's run: a kernel defect. */
    private readonly defect: (address: string, error: unknown) => void,
    /** What times slices and turns; real time by default. */
    now?: () => number,
  ) {
    if (now !== undefined) this.now = now;
  }

  private readonly now: () => number = realNow;

  /** Queues an actor that has work; the queue runs in a microtask (or, past a slice, a macrotask). */
  schedule(cell: Runnable): void {
    let ring = this.ring;
    if (this.ringSize === ring.length) ring = this.growRing();
    ring[(this.ringHead + this.ringSize++) & (ring.length - 1)] = cell;
    if (this.pending) return;
    this.pending = true;
    // Microtasks give the lowest latency, but a long chain of them starves I/O: past one time slice
    // without a macrotask turn, the queue runs from setImmediate instead. Time is read on the first
    // schedule of a burst and then every 32nd, which is enough to notice a slice has passed.
    if (!this.inBurst) {
      this.inBurst = true;
      this.burstStart = this.now();
      this.burstSchedules = 0;
      setImmediate(this.endBurst);
    } else if ((++this.burstSchedules & 31) === 0 && this.now() - this.burstStart > this.timeSliceMs) {
      this.overSlice = true;
    }
    // A resolved promise's then() is V8's own microtask; Node's queueMicrotask adds async-context work.
    if (this.overSlice) setImmediate(this.turn);
    else resolved.then(this.turn);
  }

  /**
   * One promise for the stops asked during this turn by handlers whose stop runs right after they
   * return, in this turn, with nothing to wait for: it resolves when the turn has ended and every one
   * of them has stopped (one promise a turn instead of one an actor). Undefined outside a turn.
   */
  stopBatch(): Promise<void> | undefined {
    if (!this.inTurn) return undefined;
    this.batch ??= new StopBatch();
    return this.batch.promise;
  }

  /** A stop promised through `stopBatch` that had to wait after all: the batch waits for it. */
  waitForStop(stopping: Promise<unknown>): void {
    this.batch?.later.push(stopping);
  }

  private endTurn(): void {
    this.inTurn = false;
    const batch = this.batch;
    if (batch === undefined) return;
    this.batch = undefined;
    if (batch.later.length === 0) batch.resolve();
    else Promise.allSettled(batch.later).then(batch.resolve);
  }

  /** Queues an actor that used its whole turn; the dispatcher then reads the clock. */
  requeue(cell: Runnable): void {
    this.fullTurn = true;
    this.schedule(cell);
  }

  private readonly endBurst = (): void => {
    this.inBurst = false;
    this.overSlice = false;
  };

  /** What runs a turn: the queue itself, or a tracer's wrapper around it (see `wrapTurns`). */
  private turn: () => void = () => this.runQueue();

  /** Runs each turn through `wrap` (a tracer runs turns outside the context that scheduled them). */
  wrapTurns(wrap: ((run: () => void) => void) | undefined): void {
    this.turn = wrap === undefined ? () => this.runQueue() : () => wrap(this.runQueue);
  }

  private readonly runQueue = (): void => {
    this.inTurn = true;
    try {
      this.runTurn();
    } finally {
      this.endTurn();
    }
  };

  private runTurn(): void {
    // The slice is measured from the start of the burst (the first turn since a macrotask), so a
    // turn itself does not read the clock until it has run 32 actors (one when turns are slow).
    if (!this.inBurst) {
      this.inBurst = true;
      this.burstStart = this.now();
      this.lastCheck = this.burstStart;
      this.burstSchedules = 0;
      setImmediate(this.endBurst);
    }
    // Turns between clock reads: 32 while turns are fast, 1 while they are slow.
    let checkEvery = this.slowTurns ? 1 : 32;
    let budget = this.slowTurns ? 1 : this.throughput;
    let turns = 0;
    while (this.ringSize > 0) {
      const ring = this.ring;
      const cell = ring[this.ringHead]!;
      ring[this.ringHead] = undefined;
      this.ringHead = (this.ringHead + 1) & (ring.length - 1);
      this.ringSize--;
      try {
        cell.run(budget);
      } catch (error) {
        // Handlers' throws are caught in the cell; reaching here is a kernel defect. Keep dispatching.
        this.defect(cell.address, error);
      }
      if (++turns >= checkEvery || this.fullTurn) {
        this.fullTurn = false;
        const now = this.now();
        const perTurn = (now - this.lastCheck) / turns;
        this.lastCheck = now;
        turns = 0;
        if (perTurn > 0.05) {
          this.slowTurns = true;
          this.fastStreak = 0;
        } else if (perTurn >= 0.005) {
          this.fastStreak = 0;
        } else if (this.slowTurns && ++this.fastStreak >= 32) {
          // Back to fast turns after 32 quick ones in a row, not after one.
          this.slowTurns = false;
        }
        checkEvery = this.slowTurns ? 1 : 32;
        budget = this.slowTurns ? 1 : this.throughput;
        if (now - this.burstStart > this.timeSliceMs) {
          this.overSlice = true;
          setImmediate(this.turn);
          return;
        }
      }
    }
    this.pending = false;
    this.drained();
  }

  private growRing(): (Runnable | undefined)[] {
    const old = this.ring;
    const next: (Runnable | undefined)[] = new Array(old.length * 2);
    for (let i = 0; i < this.ringSize; i++) next[i] = old[(this.ringHead + i) & (old.length - 1)];
    this.ring = next;
    this.ringHead = 0;
    return next;
  }
}
