import type { NewEvent, PersistentStream } from '../../memory/index.js';
import { asError, type Schema, TroupeError } from '../../protocols/index.js';
import { type ActorSystem, type RetryingOptions, retrying, type TimerHandle } from '../../runtime/index.js';
import { withDeadline } from '../../supervisors/index.js';
import type { ResolvedStep, ResolvedWorkflow, StepContext } from './definition.js';
import { workflowDefaults } from './definition.js';

/** A failure as it is stored and reported: plain data. */
export interface WorkflowError {
  readonly code: string;
  readonly message: string;
  /** The step that failed (or whose compensation failed). */
  readonly step?: string | undefined;
  /** What the step threw. */
  readonly cause?: { readonly code?: string | undefined; readonly message: string } | undefined;
  /** For `ERR_COMPENSATION_FAILED`: the completed steps left without their compensation. */
  readonly undone?: readonly string[] | undefined;
}

/** Where a workflow instance is. */
export type WorkflowPhase = 'new' | 'running' | 'compensating' | 'completed' | 'failed';

/** A workflow instance's state, folded from its events. */
export interface RunState {
  definition: string | undefined;
  input: unknown;
  phase: WorkflowPhase;
  /** Results of the steps done (completed or skipped). */
  results: Record<string, unknown>;
  done: Set<string>;
  /** Completed steps (not skipped), in the order the journal has them. */
  completedOrder: string[];
  /** Steps recorded as started and not yet done. */
  started: Set<string>;
  items: Map<string, { items: readonly unknown[]; results: Map<number, unknown> }>;
  signals: Map<string, unknown>;
  deadlines: Map<string, number>;
  failure: WorkflowError | undefined;
  compensated: string[];
  output: unknown;
}

export function newRunState(): RunState {
  return {
    definition: undefined,
    input: undefined,
    phase: 'new',
    results: {},
    done: new Set(),
    completedOrder: [],
    started: new Set(),
    items: new Map(),
    signals: new Map(),
    deadlines: new Map(),
    failure: undefined,
    compensated: [],
    output: undefined,
  };
}

type Data = Record<string, any>;

/**
 * How each event folds into the state. The fold mutates the one state object of an incarnation (a
 * fresh one at each recovery), which is cheaper for a 10,000-step workflow than copying it.
 */
export const applyRunEvent: Record<string, (state: RunState, data: Data) => RunState> = {
  'workflow-started': (s, d) => {
    s.definition = d.definition;
    s.input = d.input;
    s.phase = 'running';
    return s;
  },
  'step-started': (s, d) => {
    s.started.add(d.step);
    return s;
  },
  'step-completed': (s, d) => {
    s.done.add(d.step);
    s.started.delete(d.step);
    s.results[d.step] = d.result;
    s.completedOrder.push(d.step);
    return s;
  },
  'step-skipped': (s, d) => {
    s.done.add(d.step);
    s.started.delete(d.step);
    s.results[d.step] = undefined;
    return s;
  },
  'step-failed': (s, d) => {
    s.started.delete(d.step);
    s.failure ??= d.error;
    return s;
  },
  'map-started': (s, d) => {
    s.items.set(d.step, { items: d.items, results: new Map() });
    return s;
  },
  'item-completed': (s, d) => {
    s.items.get(d.step)?.results.set(d.index, d.result);
    return s;
  },
  'signal-waiting': (s, d) => {
    s.deadlines.set(d.step, d.deadline);
    return s;
  },
  'signal-received': (s, d) => {
    s.signals.set(d.step, d.value);
    return s;
  },
  'compensation-started': (s) => {
    s.phase = 'compensating';
    return s;
  },
  'step-compensated': (s, d) => {
    s.compensated.push(d.step);
    return s;
  },
  'workflow-completed': (s, d) => {
    s.phase = 'completed';
    s.output = d.output;
    return s;
  },
  'workflow-failed': (s, d) => {
    s.phase = 'failed';
    s.failure = d.error;
    return s;
  },
};

/**
 * The events' schema: an object. The engine writes them itself; what it reads back is checked by
 * the fold's use of it. A Standard Schema without a library: a 10,000-step workflow appends 10,000
 * of them, and the journal stores JSON either way.
 */
const eventData: Schema = {
  '~standard': {
    version: 1,
    vendor: 'troupe',
    validate: (value: unknown) =>
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? { value }
        : { issues: [{ message: 'must be an object' }] },
  },
};

/** The schemas of every event of a workflow's stream. */
export const runEventSchemas: Record<string, Schema> = Object.fromEntries(
  Object.keys(applyRunEvent).map((type) => [type, eventData]),
);

/** What a run needs from the actor that hosts it. */
export interface RunHost {
  readonly id: string;
  readonly system: ActorSystem;
  /** Aborted when the hosting incarnation ends. */
  readonly signal: AbortSignal;
  readonly stream: PersistentStream<RunState>;
  /** The journal refused an append: the actor must crash (and recover from the journal). */
  fatal(error: Error): void;
  /** The workflow completed or failed, durably. */
  settled(): void;
}

/** What a failed step's error becomes, for the outcome and the journal. */
function stepError(step: string, error: unknown): WorkflowError {
  const e = asError(error);
  const code = TroupeError.is(e) ? e.code : undefined;
  if (code === 'ERR_SIGNAL_TIMEOUT') return { code, message: e.message, step };
  return {
    code: 'ERR_STEP_FAILED',
    message: `step "${step}" failed: ${e.message}`,
    step,
    cause: { code, message: e.message },
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/**
 * One incarnation's run of a workflow instance: schedules the ready steps, records each result in
 * the journal (the results of one turn in one append) and starts the steps after a step only once
 * its result is durable. A step in flight when the incarnation ended runs again in the next one,
 * with the same idempotency key; a step whose result is recorded never runs again.
 */
export class WorkflowRun {
  private readonly waiting: Int32Array;
  private readonly ready: number[] = [];
  private readyHead = 0;
  /** Steps executing (counted against the concurrency). */
  private running = 0;
  /** Steps started and not yet durably done. */
  private inFlight = 0;
  private doneCount: number;
  private readonly controllers = new Map<string, AbortController>();
  private readonly signalTimers = new Map<string, { index: number; timer: TimerHandle }>();
  /** Started steps not yet announced by a `step-started` event. */
  private unannounced: string[] = [];
  private batch: NewEvent[] = [];
  private callbacks: (() => void)[] = [];
  /** Who waits on a {@link recordNow}: told when its append fails. */
  private waiters: ((error: Error) => void)[] = [];
  private flushScheduled = false;
  private flushing = false;
  private stopped = false;
  private failing = false;
  private finishing = false;

  constructor(
    private readonly host: RunHost,
    private readonly flow: ResolvedWorkflow | undefined,
    readonly state: RunState,
  ) {
    const steps = flow?.steps ?? [];
    this.waiting = new Int32Array(steps.length);
    this.doneCount = 0;
    for (const step of steps) {
      if (state.done.has(step.name)) {
        this.doneCount++;
        continue;
      }
      let waiting = 0;
      for (const d of step.after) if (!state.done.has(steps[d]!.name)) waiting++;
      this.waiting[step.index] = waiting;
      if (waiting === 0) this.ready.push(step.index);
    }
  }

  get definition(): ResolvedWorkflow | undefined {
    return this.flow;
  }

  /** Steps waiting for a signal now. */
  waitingForSignals(): string[] {
    return [...this.signalTimers.keys()];
  }

  /** Records the start; resolves once it is durable. */
  begin(definition: string, input: unknown): Promise<void> {
    return this.recordNow([{ type: 'workflow-started', data: { definition, input } }]);
  }

  /** Goes on from where the journal left the instance. */
  resume(): void {
    const { phase } = this.state;
    if (phase === 'running') {
      if (this.state.failure !== undefined) {
        this.failing = true;
        this.maybeEndFailure();
      } else this.pump();
    } else if (phase === 'compensating') this.compensateNext();
  }

  /** The incarnation ended: nothing more is started or recorded. */
  stop(): void {
    this.stopped = true;
    if (!this.flushing) {
      for (const reject of this.waiters) reject(new TroupeError('ERR_ACTOR_STOPPED', 'the workflow stopped'));
      this.waiters = [];
    }
    for (const c of this.controllers.values())
      c.abort(new TroupeError('ERR_ACTOR_STOPPED', 'the workflow stopped'));
    for (const { timer } of this.signalTimers.values()) timer.cancel();
    this.signalTimers.clear();
  }

  /** Takes an external signal for a `signal` step; resolves once it is durable. */
  async receiveSignal(step: string, value: unknown): Promise<{ accepted: boolean; reason?: string }> {
    const target = this.flow?.byName.get(step);
    if (this.state.phase !== 'running' || this.failing)
      return { accepted: false, reason: `the workflow is ${this.state.phase}` };
    if (target === undefined || target.kind !== 'signal')
      return { accepted: false, reason: `"${step}" is not a signal step` };
    if (this.state.done.has(step) || this.state.signals.has(step))
      return { accepted: false, reason: `"${step}" has its signal already` };
    await this.recordNow([{ type: 'signal-received', data: { step, value } }]);
    const waiter = this.signalTimers.get(step);
    if (waiter !== undefined && !this.stopped) {
      waiter.timer.cancel();
      this.signalTimers.delete(step);
      this.complete(waiter.index, value, false);
    }
    return { accepted: true };
  }

  // ---- recording ----

  private record(events: readonly NewEvent[], then?: () => void): void {
    if (this.stopped) return;
    for (const e of events) this.batch.push(e);
    if (then !== undefined) this.callbacks.push(then);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled && !this.flushing) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private pendingWrites(): boolean {
    return this.batch.length > 0 || this.unannounced.length > 0;
  }

  private recordNow(events: readonly NewEvent[]): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.stopped) {
        reject(new TroupeError('ERR_ACTOR_STOPPED', 'the workflow stopped'));
        return;
      }
      this.waiters.push(reject);
      this.record(events, resolve);
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.stopped || !this.pendingWrites()) return;
    let events = this.batch;
    const callbacks = this.callbacks;
    // Steps still running at the append get a `step-started` event; those done by now need none.
    if (this.unannounced.length > 0) {
      const starts: NewEvent[] = [];
      for (const step of this.unannounced)
        if (this.controllers.has(step)) starts.push({ type: 'step-started', data: { step } });
      this.unannounced = [];
      if (starts.length > 0) events = [...starts, ...events];
    }
    if (events.length === 0) return;
    const waiters = this.waiters;
    this.batch = [];
    this.callbacks = [];
    this.waiters = [];
    this.flushing = true;
    this.host.stream.append(this.state, events).then(
      () => {
        this.flushing = false;
        if (this.stopped) return;
        for (const callback of callbacks) callback();
        if (this.pendingWrites() && !this.flushScheduled) {
          this.flushScheduled = true;
          queueMicrotask(() => this.flush());
        }
      },
      (error: unknown) => {
        this.flushing = false;
        for (const reject of [...waiters, ...this.waiters]) reject(asError(error));
        this.waiters = [];
        if (this.stopped) return;
        this.stop();
        this.host.fatal(asError(error));
      },
    );
  }

  // ---- scheduling ----

  private pump(): void {
    const flow = this.flow!;
    if (this.stopped || this.state.phase !== 'running') return;
    if (this.failing) {
      this.maybeEndFailure();
      return;
    }
    while (this.readyHead < this.ready.length && this.running < flow.concurrency) {
      const index = this.ready[this.readyHead++]!;
      this.startStep(flow.steps[index]!);
      if (this.failing || this.stopped) return;
    }
    if (this.readyHead === this.ready.length && this.readyHead > 1024) {
      this.ready.length = 0;
      this.readyHead = 0;
    }
    if (this.doneCount === flow.steps.length && this.inFlight === 0 && !this.finishing) this.finish();
  }

  private context(name: string, key: string, signal: AbortSignal, attempt = 1): StepContext<unknown> {
    return {
      workflowId: this.host.id,
      step: name,
      input: this.state.input,
      results: this.state.results,
      idempotencyKey: key,
      attempt,
      signal,
      system: this.host.system,
    };
  }

  private startStep(step: ResolvedStep): void {
    const { definition, name } = step;
    this.inFlight++;
    if (definition.when !== undefined) {
      let go: boolean;
      try {
        go = definition.when(this.context(name, `${this.host.id}/${name}`, this.host.signal));
      } catch (error) {
        this.fail(step.index, error, false);
        return;
      }
      if (!go) {
        this.record([{ type: 'step-skipped', data: { step: name } }], () => this.done(step.index, 'skipped'));
        return;
      }
    }
    if (step.kind === 'signal') {
      this.awaitSignal(step);
      return;
    }
    this.running++;
    const controller = new AbortController();
    const onAbort = () => controller.abort(this.host.signal.reason);
    if (this.host.signal.aborted) controller.abort(this.host.signal.reason);
    else this.host.signal.addEventListener('abort', onAbort, { once: true });
    this.controllers.set(name, controller);
    this.unannounced.push(name);
    const settle = () => {
      this.host.signal.removeEventListener('abort', onAbort);
      this.controllers.delete(name);
    };
    let result: unknown;
    try {
      result =
        step.kind === 'map' ? this.runMap(step, controller.signal) : this.execute(step, controller.signal);
    } catch (error) {
      settle();
      this.fail(step.index, error, true);
      return;
    }
    if (!isThenable(result)) {
      settle();
      this.complete(step.index, result, true);
      return;
    }
    // A step that takes a while is announced (`step-started`) in the next append.
    this.scheduleFlush();
    result.then(
      (value) => {
        settle();
        this.complete(step.index, value, true);
      },
      (error: unknown) => {
        settle();
        this.fail(step.index, error, true);
      },
    );
  }

  /** Runs a step's function under its guard, deadline and retries; plain calls stay synchronous. */
  private execute(step: ResolvedStep, signal: AbortSignal): unknown {
    const { definition, name } = step;
    const key = `${this.host.id}/${name}`;
    const call = (ctx: StepContext<unknown>) => definition.run!(ctx);
    return this.guarded(step, key, signal, call);
  }

  private guarded(
    step: ResolvedStep,
    key: string,
    signal: AbortSignal,
    call: (ctx: StepContext<unknown>) => unknown,
    label = step.name,
  ): unknown {
    const { definition } = step;
    const { guard, timeoutMs, retry } = definition;
    const clock = this.host.system.clock;
    if (guard === undefined && timeoutMs === undefined && (retry === undefined || retry.attempts <= 1))
      return call(this.context(label, key, signal));
    const once = (attempt: number): PromiseLike<unknown> => {
      const inner = (s: AbortSignal) =>
        Promise.resolve().then(() => call(this.context(label, key, s, attempt)));
      const timed =
        timeoutMs === undefined
          ? inner
          : (s: AbortSignal) =>
              withDeadline(inner, {
                timeoutMs,
                signal: s,
                clock,
                timeout: () =>
                  new TroupeError(
                    'ERR_CALL_TIMEOUT',
                    `step "${label}" ran past its ${timeoutMs} ms deadline`,
                    {
                      details: { step: label, timeoutMs },
                    },
                  ),
              });
      return guard === undefined ? timed(signal) : guard.call(timed, { signal, idempotent: true });
    };
    if (retry === undefined || retry.attempts <= 1) return once(1);
    const options: RetryingOptions = {
      attempts: retry.attempts,
      backoff: retry.backoff ?? workflowDefaults.backoff,
      signal,
      clock,
      random: this.host.system.random,
    };
    return retrying(once, options);
  }

  private async runMap(step: ResolvedStep, signal: AbortSignal): Promise<unknown[]> {
    const { name, definition } = step;
    const map = definition.map!;
    let entry = this.state.items.get(name);
    if (entry === undefined) {
      const items = await map.over(this.context(name, `${this.host.id}/${name}`, signal));
      if (!Array.isArray(items)) throw new TypeError(`map.over of step "${name}" gave no array`);
      await this.recordNow([{ type: 'map-started', data: { step: name, items } }]);
      entry = this.state.items.get(name)!;
    }
    const { items, results } = entry;
    const limit = Math.min(map.concurrency ?? this.flow!.concurrency, Math.max(1, items.length));
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const index = next++;
        if (results.has(index)) continue;
        const label = `${name}[${index}]`;
        const result = await this.guarded(
          step,
          `${this.host.id}/${label}`,
          signal,
          (ctx) => map.run(items[index], { ...ctx, index }),
          label,
        );
        if (signal.aborted) throw signal.reason;
        await this.recordNow([{ type: 'item-completed', data: { step: name, index, result } }]);
      }
    };
    await Promise.all(Array.from({ length: limit }, worker));
    return items.map((_, i) => results.get(i));
  }

  private awaitSignal(step: ResolvedStep): void {
    const { name } = step;
    if (this.state.signals.has(name)) {
      this.complete(step.index, this.state.signals.get(name), false);
      return;
    }
    const clock = this.host.system.clock;
    const arm = (deadline: number) => {
      if (this.stopped) return;
      const timer = clock.setTimeout(() => {
        if (!this.signalTimers.has(name)) return;
        this.signalTimers.delete(name);
        this.fail(
          step.index,
          new TroupeError('ERR_SIGNAL_TIMEOUT', `step "${name}" got no signal by its deadline`, {
            details: { step: name, timeoutMs: step.definition.signal!.timeoutMs },
          }),
          false,
        );
      }, deadline - clock.wallNow());
      this.signalTimers.set(name, { index: step.index, timer });
    };
    const known = this.state.deadlines.get(name);
    if (known !== undefined) {
      arm(known);
      return;
    }
    const deadline = clock.wallNow() + step.definition.signal!.timeoutMs;
    this.record([{ type: 'signal-waiting', data: { step: name, deadline } }], () => arm(deadline));
  }

  private complete(index: number, result: unknown, executing: boolean): void {
    if (executing) this.running--;
    if (this.stopped) return;
    const name = this.flow!.steps[index]!.name;
    this.record([{ type: 'step-completed', data: { step: name, result } }], () =>
      this.done(index, 'completed'),
    );
  }

  private done(index: number, status: 'completed' | 'skipped'): void {
    const flow = this.flow!;
    const step = flow.steps[index]!;
    this.inFlight--;
    this.doneCount++;
    for (const d of step.dependents) if (--this.waiting[d]! === 0) this.ready.push(d);
    this.host.system.publish({
      type: 'workflow-step',
      workflow: this.host.id,
      definition: flow.name,
      step: step.name,
      status,
    });
    this.pump();
  }

  private fail(index: number, error: unknown, executing: boolean): void {
    if (executing) this.running--;
    if (this.stopped) return;
    const step = this.flow!.steps[index]!;
    const failure = stepError(step.name, error);
    this.record([{ type: 'step-failed', data: { step: step.name, error: failure } }], () => {
      this.inFlight--;
      this.host.system.publish({
        type: 'workflow-step',
        workflow: this.host.id,
        definition: this.flow!.name,
        step: step.name,
        status: 'failed',
        error: { code: failure.code, message: failure.message },
      });
      this.failing = true;
      for (const c of this.controllers.values())
        c.abort(new TroupeError('ERR_ACTOR_STOPPED', 'the workflow failed'));
      for (const { timer } of this.signalTimers.values()) timer.cancel();
      this.inFlight -= this.signalTimers.size;
      this.signalTimers.clear();
      this.maybeEndFailure();
    });
  }

  private finish(): void {
    this.finishing = true;
    let output: unknown;
    try {
      output = this.flow!.output(this.state.results, this.state.input);
    } catch (error) {
      this.endFailed({
        code: 'ERR_STEP_FAILED',
        message: `the workflow's output function threw: ${asError(error).message}`,
        cause: { message: asError(error).message },
      });
      return;
    }
    this.record([{ type: 'workflow-completed', data: { output } }], () => this.ended());
  }

  private maybeEndFailure(): void {
    if (this.running > 0 || this.inFlight > 0 || this.finishing || this.stopped) return;
    this.finishing = true;
    const flow = this.flow!;
    const compensable = this.state.completedOrder.some((s) => flow.byName.get(s)?.definition.compensate);
    if (!compensable) {
      this.endFailed(this.state.failure!);
      return;
    }
    this.record([{ type: 'compensation-started', data: {} }], () => this.compensateNext());
  }

  /** Compensates the completed steps in reverse order of completion, one at a time. */
  private compensateNext(): void {
    if (this.stopped) return;
    const flow = this.flow!;
    const compensated = new Set(this.state.compensated);
    const pending = this.state.completedOrder
      .filter((s) => !compensated.has(s) && flow.byName.get(s)?.definition.compensate !== undefined)
      .reverse();
    const name = pending[0];
    if (name === undefined) {
      this.endFailed(this.state.failure!);
      return;
    }
    const step = flow.byName.get(name)!;
    const key = `${this.host.id}/${name}/compensate`;
    const { attempts, backoff } = flow.compensation;
    retrying(
      (attempt) =>
        Promise.resolve().then(() =>
          step.definition.compensate!({
            ...this.context(name, key, this.host.signal, attempt),
            result: this.state.results[name],
          }),
        ),
      {
        attempts,
        backoff,
        signal: this.host.signal,
        clock: this.host.system.clock,
        random: this.host.system.random,
      },
    ).then(
      () =>
        this.record([{ type: 'step-compensated', data: { step: name } }], () => {
          this.host.system.publish({
            type: 'workflow-step',
            workflow: this.host.id,
            definition: flow.name,
            step: name,
            status: 'compensated',
          });
          this.compensateNext();
        }),
      (error: unknown) => {
        if (this.stopped || this.host.signal.aborted) return;
        const e = asError(error);
        this.host.system.publish({
          type: 'workflow-step',
          workflow: this.host.id,
          definition: flow.name,
          step: name,
          status: 'compensation-failed',
          error: { code: TroupeError.is(e) ? e.code : 'Error', message: e.message },
        });
        this.endFailed({
          code: 'ERR_COMPENSATION_FAILED',
          message: `the compensation of step "${name}" failed after ${attempts} attempts: ${e.message}; left undone: ${pending.join(', ')}`,
          step: name,
          cause: { code: TroupeError.is(e) ? e.code : undefined, message: e.message },
          undone: pending,
        });
      },
    );
  }

  private endFailed(error: WorkflowError): void {
    this.record([{ type: 'workflow-failed', data: { error } }], () => this.ended());
  }

  private ended(): void {
    const { phase, failure } = this.state;
    this.host.system.publish({
      type: 'workflow-ended',
      workflow: this.host.id,
      definition: this.flow!.name,
      ok: phase === 'completed',
      ...(phase === 'failed' && failure !== undefined
        ? { error: { code: failure.code, message: failure.message } }
        : {}),
    });
    this.host.settled();
  }
}
