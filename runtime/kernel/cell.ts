import {
  type Address,
  asError,
  assertPlainData,
  formatAddress,
  invalidOption,
  settleValidated,
  type TraceContext,
  TroupeError,
  type Validated,
  validate,
} from '../../protocols/index.js';
import type { Clock, TimerHandle } from '../time/clock.js';
import type {
  ActorContext,
  ActorRef,
  ActorStatus,
  ActorSystem,
  AskOptions,
  Behavior,
  ExitReason,
  Handlers,
  Middleware,
  SpawnOptions,
  TellOptions,
  Timers,
  TreeNode,
} from './api.js';
import { PendingAsk, type TimeoutQueue } from './ask.js';
import { type CompiledBehavior, compiled, type HandlerTable, handlerTable } from './behavior.js';
import type { Dispatcher } from './dispatcher.js';
import type { DeadLetterReason, SystemEvent } from './events.js';
import { ActorLifecycle, SystemLifecycle } from './lifecycle.js';
import { nonNegative, resolveMailbox } from './options.js';
import {
  BUSY,
  type CellSettings,
  type ChildExit,
  NORMAL_EXIT,
  START_FAILED,
  STOP_BATCHED,
  STOP_REQUESTED,
  SupervisingCell,
  type SupervisionHost,
} from './supervision/engine.js';
import { resolveRestartPolicy, resolveRestartType } from './supervision/policy.js';
import type { HandlerSpan, KernelTracer } from './tracer.js';

// Status is a small integer rather than a tagged union: it is read on every message.
// `statusName` maps it to the public ActorStatus.
const { Starting: STARTING, Running: RUNNING, Suspended: SUSPENDED } = ActorLifecycle;
const { Stopping: STOPPING, Stopped: STOPPED } = ActorLifecycle;
const STATUS_NAMES: readonly ActorStatus[] = [
  'starting',
  'running',
  'suspended',
  'restarting',
  'stopping',
  'stopped',
];

const SCHEDULED = 1;
const SYS_BUSY = 4;

/** A timer's message carries this as its meta so a cancelled timer's message is never handled. */
class TimerTick {
  constructor(
    readonly key: string,
    readonly generation: number,
  ) {}
}

type SystemMessage =
  | { kind: 'start'; waiter: StartWaiter | undefined }
  | ChildExit
  | { kind: 'task'; run: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void };

interface StartWaiter {
  resolve(cell: Cell): void;
  reject(error: Error): void;
}

export type { CellSettings };

/**
 * Told before each user message an actor handles (`type`), and with `undefined` once its turn is
 * over with none of its handlers still running: the host of isolated actors records there what it
 * runs, in memory its parent reads, so that its watchdog can name the handler that blocked it.
 */
export type HandlerProbe = (cell: Cell, type: string | undefined) => void;

/** What a cell needs from its system. The system implements it; cells never import the system. */
export interface Host extends ActorSystem, SupervisionHost {
  readonly clock: Clock;
  readonly random: () => number;
  readonly devChecks: boolean;
  readonly askTimeoutMs: number;
  readonly state: SystemLifecycle;
  readonly middleware: readonly Middleware[];
  readonly timeouts: TimeoutQueue;
  /** True when a send needs more than an enqueue: dev checks, a system not running, send middleware. */
  readonly slowSend: boolean;
  /** True when receive middleware is installed. */
  readonly slowReceive: boolean;
  /** True when someone subscribes to the event stream; events are built only then. */
  readonly observed: boolean;
  /** Async handlers, system actions and stops in progress. */
  busy: number;
  /** True during close(): stopping actors do not wait for handlers in flight. */
  readonly hard: boolean;
  emit(event: SystemEvent): void;
  /** Runs the cells that have work. */
  readonly dispatcher: Dispatcher;
  /** The installed tracer (kernel/tracing.ts), if any. */
  readonly tracer: KernelTracer | undefined;
  /** Told what each actor handles (see {@link HandlerProbe}); undefined but in isolated hosts. */
  readonly handlerProbe: HandlerProbe | undefined;
  /** User messages taken from mailboxes to be handled, since the system started (for metrics). */
  handled: number;
  refuseExternal(
    to: Cell,
    type: string,
    body: unknown,
    from: ActorRef<any> | undefined,
    ask: PendingAsk | undefined,
  ): boolean;
  runSendMiddleware(
    to: Cell,
    type: string,
    body: unknown,
    from: ActorRef<any> | undefined,
    ask: boolean,
  ): TroupeError | undefined;
  runReceiveMiddleware(to: Cell, type: string, body: unknown, meta: unknown, next: () => unknown): unknown;
  deadLetter(
    to: Address,
    from: Address | undefined,
    type: string,
    body: unknown,
    reason: DeadLetterReason,
    error: TroupeError | undefined,
  ): void;
  register(cell: Cell): void;
  unregister(cell: Cell): void;
  settingsFor(behavior: CompiledBehavior, options: SpawnOptions | undefined): CellSettings;
  assertAccepting(): void;
  rootFailed(error: Error): void;
  reportDefect(address: Address, error: unknown): void;
  /** Writes a crash or an escalation, with its stack, while nobody subscribes to the event stream. */
  logFailure(what: string, error: Error, kind?: 'crashes' | 'escalations'): void;
  /** Waits for `promise` at most `ms`; with `endedByClose`, close() ends the wait at once. */
  within(promise: Promise<unknown>, ms: number, endedByClose?: boolean): Promise<void>;
  checkIdle(): void;
  nextTimerGeneration(): number;
  /** The fencing token of a named actor's activation on this node; undefined for other actors. */
  fenceOf(cell: Cell): number | undefined;
}

/** The cold part of a cell. */
class CellExtras {
  /** Aborted when the incarnation ends; made when a handler first reads `ctx.signal`. */
  abortController: AbortController | undefined = undefined;
  /** Resolves `stopping` for a stop asked in a handler that has to be waited for (see stopSelf). */
  stopResolve: (() => void) | undefined = undefined;
  restarts = 0;
  watchers: Set<Cell> | undefined = undefined;
  watching: Set<ActorRef<any>> | undefined = undefined;
  stashed: unknown[] | undefined = undefined;
  timerMap: Map<string, { handle: TimerHandle; generation: number; repeat: boolean }> | undefined = undefined;
  timerApi: Timers<any> | undefined = undefined;
  restartLog: number[] | undefined = undefined;
  restartToken: object | undefined = undefined;
  deferred: SystemMessage[] | undefined = undefined;
  hookError: unknown = undefined;
  lastFailure: Error | undefined = undefined;
  /**
   * Told once this actor has stopped for good: the cluster follows its activations this way, groups
   * and topics their members and subscribers.
   */
  exitListeners: ((cell: Cell) => void)[] | undefined = undefined;
  /** The reason this actor terminated, once stopped. */
  exitReason: ExitReason | undefined = undefined;
  /** Set while this supervisor gives up (stops its children before it reports its failure). */
  givingUp: Promise<void> | undefined = undefined;
  /** Nodes shown under this actor in `tree()` that are not its cells (an isolated actor's host tree). */
  treeExtension: (() => readonly TreeNode[]) | undefined = undefined;
}

/** A queued message taken out of an actor by {@link Cell.surrender}. */
export interface SurrenderedMessage {
  readonly type: string;
  readonly body: unknown;
  /** The ask waiting for the reply, for a request. */
  readonly ask: PendingAsk | undefined;
  readonly from: ActorRef<any> | undefined;
  readonly trace: TraceContext | undefined;
}

let currentCell: Cell | undefined;
/** The span of the message `currentCell`'s handler is running on, when it is traced. */
let currentSpan: HandlerSpan | undefined;
/**
 * Where, in `currentCell`'s mailbox buffer, the message its handler is running on still lies: the run
 * loop's fast path clears the slot only once the handler returns, and stash() reads it from there.
 * (Copying the message into the cell instead costs two stores and a GC write barrier per message.)
 * -1 outside the fast path, and after rescueCurrent() moved the message into the cell.
 */
let currentIndex = -1;

/** The actor whose handler is running synchronously right now, if any. */
export function runningCell(): Cell | undefined {
  return currentCell;
}

let anonymous = 0;

/**
 * One actor: its mailbox, state, lifecycle and children. The cell is the actor's ref (an idle actor is
 * one object); its handlers get a separate {@link CellContext}, made on first use, so a ref handed to
 * another actor cannot be turned into this actor's context.
 */
export class Cell extends SupervisingCell {
  // Fields are declared hot first: the message path reads the first dozen, which then share cache lines.
  readonly system: Host;
  protected status: ActorLifecycle = STARTING;
  protected flags = 0;
  protected table: HandlerTable;
  /** The actor's state (handlers reach it as `ctx.state`). */
  actorState: unknown;
  /** What handlers and hooks get as `ctx`; made when first needed. */
  protected ctx: CellContext | undefined;
  protected curType: string | undefined;
  protected curBody: unknown;
  protected curMeta: unknown;
  readonly settings: CellSettings;
  protected sysQueue: SystemMessage[] | undefined;
  readonly behavior: CompiledBehavior;
  readonly parentCell: Cell | undefined;
  /** The name in the parent's map: a number for anonymous actors, so spawning one allocates no string. */
  readonly key: string | number;
  incarnation = 0;
  private cachedAddress: string | undefined;
  protected childMap: Map<string | number, Cell> | undefined;
  protected inflight: Promise<unknown> | undefined;
  protected stopping: Promise<void> | undefined;
  /** What few actors need (watches, stash, timers, restart bookkeeping), made on first use. */
  protected extras: CellExtras | undefined;

  constructor(
    system: Host,
    parentCell: Cell | undefined,
    name: string | number,
    behavior: CompiledBehavior,
    settings: CellSettings,
  ) {
    super();
    this.system = system;
    this.parentCell = parentCell;
    this.key = name;
    this.behavior = behavior;
    this.settings = settings;
    this.table = behavior.table;
  }

  // ---- Cold fields, kept in `extras` so that an idle actor stays small ----

  private cold(): CellExtras {
    this.extras ??= new CellExtras();
    return this.extras;
  }

  protected get watchers(): Set<Cell> | undefined {
    return this.extras?.watchers;
  }
  protected set watchers(value: Set<Cell> | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().watchers = value;
  }

  protected get watching(): Set<ActorRef<any>> | undefined {
    return this.extras?.watching;
  }
  protected set watching(value: Set<ActorRef<any>> | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().watching = value;
  }

  protected get stashed(): unknown[] | undefined {
    return this.extras?.stashed;
  }
  protected set stashed(value: unknown[] | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().stashed = value;
  }

  private get timerMap():
    | Map<string, { handle: TimerHandle; generation: number; repeat: boolean }>
    | undefined {
    return this.extras?.timerMap;
  }
  private set timerMap(value:
    | Map<string, { handle: TimerHandle; generation: number; repeat: boolean }>
    | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().timerMap = value;
  }

  private get timerApi(): Timers<any> | undefined {
    return this.extras?.timerApi;
  }
  private set timerApi(value: Timers<any> | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().timerApi = value;
  }

  protected get abortController(): AbortController | undefined {
    return this.extras?.abortController;
  }
  protected set abortController(value: AbortController | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().abortController = value;
  }

  protected get stopResolve(): (() => void) | undefined {
    return this.extras?.stopResolve;
  }
  protected set stopResolve(value: (() => void) | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().stopResolve = value;
  }

  /** Restarts of this actor since it was spawned. */
  get restarts(): number {
    return this.extras?.restarts ?? 0;
  }
  set restarts(value: number) {
    if (value !== 0 || this.extras !== undefined) this.cold().restarts = value;
  }

  protected get restartLog(): number[] | undefined {
    return this.extras?.restartLog;
  }
  protected set restartLog(value: number[] | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().restartLog = value;
  }

  protected get restartToken(): object | undefined {
    return this.extras?.restartToken;
  }
  protected set restartToken(value: object | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().restartToken = value;
  }

  private get deferred(): SystemMessage[] | undefined {
    return this.extras?.deferred;
  }
  private set deferred(value: SystemMessage[] | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().deferred = value;
  }

  protected get hookError(): unknown {
    return this.extras?.hookError;
  }
  protected set hookError(value: unknown) {
    if (value !== undefined || this.extras !== undefined) this.cold().hookError = value;
  }

  /** The reason this actor terminated, once stopped. */
  get exitReason(): ExitReason | undefined {
    const reason = this.extras?.exitReason;
    if (reason !== undefined) return reason;
    // A normal exit is not stored unless the extras exist already (see the setter).
    return this.status === STOPPED ? NORMAL_EXIT : undefined;
  }
  set exitReason(value: ExitReason | undefined) {
    if (value === undefined) {
      if (this.extras !== undefined) this.extras.exitReason = undefined;
    } else if (value.kind !== 'normal' || this.extras !== undefined) {
      this.cold().exitReason = value;
    }
  }

  protected get lastFailure(): Error | undefined {
    return this.extras?.lastFailure;
  }
  protected set lastFailure(value: Error | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().lastFailure = value;
  }

  protected get givingUp(): Promise<void> | undefined {
    return this.extras?.givingUp;
  }
  protected set givingUp(value: Promise<void> | undefined) {
    if (value !== undefined || this.extras !== undefined) this.cold().givingUp = value;
  }

  // ---- ActorRef ----

  get address(): Address {
    if (this.cachedAddress === undefined) {
      this.cachedAddress = formatAddress({
        system: this.system.name,
        node: this.system.node,
        path: this.path,
      });
    }
    return this.cachedAddress;
  }

  /** The actor's name; anonymous actors are `$<n>` in base 36. */
  get name(): string {
    const key = this.key;
    return typeof key === 'number' ? `$${key.toString(36)}` : key;
  }

  /** Slash-separated names from the top of the tree. */
  get path(): string {
    const parent = this.parentCell;
    return parent === undefined || parent.parentCell === undefined
      ? this.name
      : `${parent.path}/${this.name}`;
  }

  tell(type: string, body: unknown, options?: TellOptions): void {
    const from = options === undefined ? currentCell : (options.from ?? currentCell);
    if (this.system.slowSend && !this.admit(type, body, from, undefined)) return;
    let trace = options === undefined ? undefined : (options.trace ?? currentCell?.trace);
    if (trace === undefined) {
      // Without a tracer a local tell carries a context only when given one; with one, it carries
      // its handler's, or the caller's from outside any handler.
      const tracer = this.system.tracer;
      if (tracer !== undefined) trace = currentCell === undefined ? tracer.outside() : currentCell.trace;
    }
    this.enqueue(type, body, trace === undefined ? from : new Traced(from, trace));
  }

  get trace(): TraceContext | undefined {
    if (currentSpan !== undefined && currentCell === this) return currentSpan.trace;
    const meta = this.curMeta;
    if (meta instanceof Traced) return meta.trace;
    if (meta instanceof PendingAsk) return meta.trace;
    return undefined;
  }

  /** Development checks, a stopped or draining system, send middleware: false when refused. */
  private admit(
    type: string,
    body: unknown,
    from: ActorRef<any> | undefined,
    ask: PendingAsk | undefined,
  ): boolean {
    const system = this.system;
    if (system.devChecks) assertPlainData(body);
    if (system.state !== SystemLifecycle.Running && system.refuseExternal(this, type, body, from, ask))
      return false;
    if (system.middleware.length > 0) {
      const dropped = system.runSendMiddleware(this, type, body, from, ask !== undefined);
      if (dropped !== undefined) {
        ask?.reject(dropped);
        return false;
      }
    }
    return true;
  }

  ask(type: string, body: unknown, options?: AskOptions): Promise<any> {
    const tracer = this.system.tracer;
    if (tracer !== undefined) {
      const from = currentCell;
      const parent = options?.trace ?? (from === undefined ? tracer.outside() : from.trace);
      return tracer.ask(this.address, type, parent, (trace) =>
        this.request(
          type,
          body,
          options?.timeoutMs ?? this.system.askTimeoutMs,
          options?.signal,
          from,
          trace,
        ),
      );
    }
    return this.request(
      type,
      body,
      options?.timeoutMs ?? this.system.askTimeoutMs,
      options?.signal,
      currentCell,
      options?.trace ?? currentCell?.trace,
    );
  }

  /** An ask with an explicit sender (a boundary passes the remote one). */
  request(
    type: string,
    body: unknown,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    from: ActorRef<any> | undefined,
    trace?: TraceContext,
  ): Promise<any> {
    return new Promise((resolve, reject) => {
      if (!(timeoutMs > 0)) throw invalidOption('ask.timeoutMs', 'must be a number > 0', timeoutMs);
      this.requestWith(type, body, timeoutMs, signal, from, trace, resolve, reject);
    });
  }

  /**
   * An ask whose outcome goes to `resolve`/`reject` directly, without a promise: for a boundary that
   * only forwards the reply (the router sends it back to the asking node).
   */
  requestWith(
    type: string,
    body: unknown,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    from: ActorRef<any> | undefined,
    trace: TraceContext | undefined,
    resolve: (value: unknown) => void,
    reject: (error: unknown) => void,
  ): void {
    const system = this.system;
    const ask = new PendingAsk(resolve, reject, from, signal, this.address, type);
    if (trace !== undefined) ask.trace = trace;
    if (signal !== undefined && !ask.listen(signal)) return;
    try {
      if (system.slowSend && !this.admit(type, body, from, ask)) return;
      system.timeouts.add(ask, timeoutMs);
      this.enqueue(type, body, ask);
    } catch (error) {
      ask.reject(error);
    }
  }

  // ---- What the context does (CellContext delegates here) ----

  /** This actor's context: what its handlers and hooks get as `ctx`. */
  context(): CellContext {
    let ctx = this.ctx;
    if (ctx === undefined) {
      ctx = new CellContext(this);
      this.ctx = ctx;
    }
    return ctx;
  }

  /** The sender of the message being handled, when known. */
  currentSender(): ActorRef<any> | undefined {
    const meta = this.curMeta;
    if (meta instanceof Cell) return meta;
    if (meta instanceof PendingAsk) return meta.from as Cell | undefined;
    if (meta instanceof Traced) return meta.from;
    if (meta instanceof TimerTick) return this;
    return meta as ActorRef<any> | undefined;
  }

  /** Aborted when this incarnation ends. */
  incarnationSignal(): AbortSignal {
    if (this.status >= STOPPING) {
      return AbortSignal.abort(new TroupeError('ERR_ACTOR_STOPPED', `${this.address} has stopped`));
    }
    this.abortController ??= new AbortController();
    return this.abortController.signal;
  }

  /** The parent's ref, or undefined for a top-level actor. */
  parentRef(): ActorRef<any> | undefined {
    const parent = this.parentCell;
    return parent === undefined || parent.parentCell === undefined ? undefined : parent;
  }

  timerControls(): Timers<any> {
    this.timerApi ??= this.makeTimers();
    return this.timerApi;
  }

  /** `ctx.stop`: this actor (a normal exit) or one of its children. */
  stopSelfOrChild(child?: ActorRef<any>): Promise<void> {
    if (child === undefined || (child as unknown) === this) return this.stopSelf();
    if (!(child instanceof Cell) || child.parentCell !== this) {
      return Promise.reject(
        new TroupeError('ERR_ILLEGAL_STATE', `${this.address} can stop only itself and its children`, {
          details: { target: child.address },
        }),
      );
    }
    return this.stopChild(child, false);
  }

  liveChildren(): ActorRef<any>[] {
    const out: ActorRef<any>[] = [];
    if (this.childMap !== undefined) {
      for (const child of this.childMap.values()) if (child.status < STOPPING) out.push(child);
    }
    return out;
  }

  watchRef(ref: ActorRef<any>): void {
    if ((ref as unknown) === this) return;
    if (this.behavior.definition.terminated === undefined) {
      throw new TroupeError(
        'ERR_ILLEGAL_STATE',
        `${this.address} watches ${ref.address} but its behaviour has no \`terminated\` hook to hear of it`,
        { details: { watcher: this.address, target: ref.address } },
      );
    }
    const target = ref instanceof Cell ? ref : this.system.ref(ref.address);
    this.watching ??= new Set();
    if (!(target instanceof Cell)) {
      // No live actor has that address: it is as good as terminated (Akka: existence not confirmed).
      this.watching.add(ref);
      this.notifyTerminated(ref, { kind: 'unknown' });
      return;
    }
    this.watching.add(target);
    if (target.status === STOPPED) {
      this.notifyTerminated(target, target.exitReason ?? { kind: 'normal' });
      return;
    }
    target.watchers ??= new Set();
    target.watchers.add(this);
  }

  /**
   * Queues a Terminated notice in the user mailbox, behind the messages that arrived before it (so
   * a watcher hears of the end after what the watched actor sent it, as in Erlang and Akka). It
   * ignores the mailbox's capacity: a notice is never dropped.
   */
  protected notifyTerminated(ref: ActorRef<any>, reason: ExitReason): void {
    if (this.status >= STOPPING) return;
    this.pushMessage('$terminated', { ref, reason }, TERMINATED);
    if (this.flags === 0 && this.status === RUNNING) {
      this.flags = SCHEDULED;
      this.system.dispatcher.schedule(this);
    }
  }

  unwatchRef(ref: ActorRef<any>): void {
    const target = ref instanceof Cell ? ref : this.system.ref(ref.address);
    this.watching?.delete(ref);
    this.watching?.delete(target);
    if (target instanceof Cell) target.watchers?.delete(this);
  }

  becomeHandlers(handlers: Handlers<any, any>): void {
    this.table = handlerTable(handlers, this.behavior.specs, `become() of ${this.address}`);
  }

  restoreHandlers(): void {
    this.table = this.behavior.table;
  }

  stashCurrent(): void {
    this.rescueCurrent();
    if (this.curType === undefined)
      throw new TroupeError('ERR_ILLEGAL_STATE', 'stash() is only allowed in a handler');
    this.stashed ??= [];
    this.stashed.push(this.curType, this.curBody, this.curMeta);
    // The stashed ask stays pending: its reply comes when the message is handled again.
    this.curMeta = STASHED;
  }

  /**
   * Takes the reply of the ask being handled away from the kernel: the handler's return value is no
   * longer the reply, a crash no longer rejects it; the caller settles it (see `detachReply`).
   */
  detachCurrentReply(): PendingAsk {
    const meta = this.curMeta;
    if (!(meta instanceof PendingAsk) || meta.detached) {
      throw new TroupeError(
        'ERR_ILLEGAL_STATE',
        'detachReply() is only allowed in the handler of an ask, once per ask',
      );
    }
    meta.detached = true;
    return meta;
  }

  /** Answers a detached ask as the kernel would have (checked, or a dead letter when it came too late). */
  replyDetached(ask: PendingAsk, value: unknown): void {
    this.reply(ask, value);
  }

  /** Adds nodes to this actor's `tree()` (undefined removes them). */
  setTreeExtension(extension: (() => readonly TreeNode[]) | undefined): void {
    if (extension === undefined && this.extras === undefined) return;
    this.cold().treeExtension = extension;
  }

  unstashMessages(): void {
    const stashed = this.stashed;
    if (stashed === undefined || stashed.length === 0) return;
    // The messages go in front of the mailbox, into the slot the current message may still hold.
    this.rescueCurrent();
    this.stashed = undefined;
    for (let i = stashed.length - 3; i >= 0; i -= 3)
      this.unshiftMessage(stashed[i] as string, stashed[i + 1], stashed[i + 2]);
    this.scheduleIfRunnable();
  }

  // ---- Kernel ----

  get statusName(): ActorStatus {
    return STATUS_NAMES[this.status]!;
  }

  get alive(): boolean {
    return this.status < STOPPING;
  }

  /** Running, with nothing queued and nothing in flight. */
  get idle(): boolean {
    return (
      this.status === RUNNING &&
      this.mbSize === 0 &&
      (this.flags & ~SCHEDULED) === 0 &&
      (this.sysQueue === undefined || this.sysQueue.length === 0)
    );
  }

  /** Stops this actor as its parent would (a shutdown, no restart), freeing its slot. */
  stopFromParent(): Promise<void> {
    return this.parentCell === undefined ? Promise.resolve() : this.parentCell.stopChild(this, false);
  }

  get mailboxSize(): number {
    return this.mbSize;
  }

  /** Messages waiting, plus one for a handler still running (an async one holds the actor). */
  get load(): number {
    return this.mbSize + ((this.flags & BUSY) !== 0 ? 1 : 0);
  }

  /** Creates a child and starts it. `waiter` hears about the first start instead of the supervisor. */
  spawnChild(
    b: Behavior<any, any>,
    options: SpawnOptions | undefined,
    waiter: StartWaiter | undefined,
    address?: Address,
  ): Cell {
    const system = this.system;
    system.assertAccepting();
    if (this.status >= STOPPING) {
      throw new TroupeError('ERR_ACTOR_STOPPED', `${this.address} is stopping and cannot spawn children`);
    }
    const behavior = compiled(b);
    const settings = system.settingsFor(behavior, options);
    const name = options?.name === undefined ? anonymous++ : checkName(options.name);
    this.childMap ??= new Map();
    const existing = this.childMap.get(name);
    if (existing !== undefined) {
      if (existing.status !== STOPPED) {
        throw new TroupeError('ERR_NAME_TAKEN', `${existing.address} already exists`, { details: { name } });
      }
      this.childMap.delete(name);
    }
    const child =
      behavior.checkSend === undefined
        ? new Cell(system, this, name, behavior, settings)
        : new CheckedCell(system, this, name, behavior, settings);
    if (address !== undefined) child.cachedAddress = address;
    this.childMap.set(name, child);
    system.register(child);
    if (system.observed) {
      system.emit({
        type: 'actor-spawned',
        at: system.clock.now(),
        address: child.address,
        parent: this.address,
      });
    }
    child.begin(waiter);
    return child;
  }

  /** For the guardian, which has no start of its own. */
  markRunning(): void {
    this.status = RUNNING;
  }

  /** Runs the first start: synchronously when there is no preStart hook. */
  private begin(waiter: StartWaiter | undefined): void {
    this.actorState = this.initialState();
    if (this.behavior.definition.preStart === undefined) {
      this.status = RUNNING;
      this.announceStarted();
      waiter?.resolve(this);
      return;
    }
    this.pushSystem({ kind: 'start', waiter });
  }

  protected initialState(): unknown {
    const init = this.behavior.definition.initialState;
    return init === undefined ? undefined : init();
  }

  private announceStarted(): void {
    const system = this.system;
    if (system.observed)
      system.emit({ type: 'actor-started', at: system.clock.now(), address: this.address });
  }

  /** Puts a user message in the mailbox, applying the overflow policy. */
  enqueue(type: string, body: unknown, meta: unknown): void {
    if (this.status >= STOPPING) {
      this.undeliverable(type, body, meta, 'actor-stopped');
      return;
    }
    if (this.mbSize >= this.settings.mailbox.capacity && !this.overflow(type, body, meta)) return;
    this.pushMessage(type, body, meta);
    if (this.flags === 0 && this.status === RUNNING) {
      this.flags = SCHEDULED;
      this.system.dispatcher.schedule(this);
    }
  }

  /** Applies the overflow policy; returns true when the new message should still be queued. */
  private overflow(type: string, body: unknown, meta: unknown): boolean {
    const system = this.system;
    const { capacity, overflow } = this.settings.mailbox;
    if (system.observed) {
      system.emit({
        type: 'mailbox-overflow',
        at: system.clock.now(),
        address: this.address,
        policy: overflow,
        capacity,
      });
    }
    if (overflow === 'drop-oldest') {
      const [oldType, oldBody, oldMeta] = this.shiftMessage();
      this.undeliverable(oldType, oldBody, oldMeta, 'mailbox-overflow');
      return true;
    }
    const error = new TroupeError(
      'ERR_MAILBOX_FULL',
      `mailbox of ${this.address} is full (${capacity} messages)`,
      {
        details: { to: this.address, capacity },
      },
    );
    system.deadLetter(
      this.address,
      senderAddress(meta),
      type,
      body,
      overflow === 'reject' ? 'mailbox-full' : 'mailbox-overflow',
      error,
    );
    if (meta instanceof PendingAsk) meta.reject(error);
    // A timer has nobody to throw to: its tick is only a dead letter.
    else if (overflow === 'reject' && !(meta instanceof TimerTick)) throw error;
    return false;
  }

  /** A message that cannot be handled: a dead letter, and a rejection for an ask. */
  protected undeliverable(type: string, body: unknown, meta: unknown, reason: DeadLetterReason): void {
    if (meta === STASHED || meta === TERMINATED || (meta instanceof TimerTick && reason === 'actor-stopped'))
      return;
    const error =
      reason === 'actor-stopped'
        ? new TroupeError('ERR_ACTOR_STOPPED', `${this.address} has stopped`, {
            details: { to: this.address, type },
          })
        : new TroupeError(
            'ERR_MAILBOX_FULL',
            `mailbox of ${this.address} overflowed; the message was dropped`,
            {
              details: { to: this.address, type },
            },
          );
    this.system.deadLetter(this.address, senderAddress(meta), type, body, reason, error);
    if (meta instanceof PendingAsk) meta.reject(error);
  }

  pushSystem(message: SystemMessage): void {
    this.sysQueue ??= [];
    this.sysQueue.push(message);
    if ((this.flags & (SCHEDULED | SYS_BUSY)) === 0) {
      this.flags |= SCHEDULED;
      this.system.dispatcher.schedule(this);
    }
  }

  protected scheduleIfRunnable(): void {
    if ((this.flags & (SCHEDULED | BUSY | SYS_BUSY)) !== 0) return;
    const hasSystem = this.sysQueue !== undefined && this.sysQueue.length > 0;
    const hasUser = this.status === RUNNING && this.mbSize > 0;
    if (hasSystem || hasUser) {
      this.flags |= SCHEDULED;
      this.system.dispatcher.schedule(this);
    }
  }

  /**
   * Called by the dispatcher: handles system messages first, then up to `budget` user messages.
   * Stops early when a handler goes async; the settle callback reschedules.
   */
  run(budget: number): void {
    // SCHEDULED stays set while running so that sends to this actor do not schedule it twice.
    const sys = this.sysQueue;
    while (sys !== undefined && sys.length > 0 && (this.flags & SYS_BUSY) === 0) {
      this.handleSystem(sys.shift()!);
    }
    if (this.status === RUNNING && this.flags === SCHEDULED) {
      const system = this.system;
      // Read once a turn: middleware added by a handler applies from the next turn.
      const slow = system.slowReceive || this.settings.validateAll;
      const probe = system.handlerProbe;
      const tracing = system.tracer !== undefined;
      // Counted here and added to the system's count once a turn: a store per message into the
      // system object cost about 8% of a tell to many actors (callgrind).
      let handled = 0;
      while (this.mbSize > 0) {
        if (budget-- === 0) {
          system.handled += handled;
          system.dispatcher.requeue(this);
          return;
        }
        // The mailbox's shift, inlined: this loop is the kernel's hottest path.
        const buffer = this.mbBuffer!;
        const i = this.mbHead;
        const type = buffer[i] as string;
        const body = buffer[i + 1];
        const meta = buffer[i + 2];
        this.mbHead = i + 3 === buffer.length ? 0 : i + 3;
        this.mbSize--;
        handled++;
        if (probe !== undefined) probe(this, type);
        const handler = this.table[type];
        if (
          slow ||
          handler === undefined ||
          (meta !== undefined &&
            (meta instanceof PendingAsk
              ? meta.settled || (tracing && meta.trace !== undefined)
              : meta instanceof TimerTick || (tracing && meta instanceof Traced)))
        ) {
          buffer[i] = undefined;
          buffer[i + 1] = undefined;
          buffer[i + 2] = undefined;
          this.invoke(type, body, meta);
        } else {
          // The slot stays filled while the handler runs (see currentIndex); the mailbox already counts
          // it free, and room() never hands it out: it grows before a push would land there.
          // curMeta is undefined between messages, so a message without meta need not write it.
          if (meta !== undefined) this.curMeta = meta;
          currentCell = this;
          currentIndex = i;
          let result: unknown;
          try {
            result = handler(body, this.ctx ?? this.context());
          } catch (error) {
            currentCell = undefined;
            if (currentIndex === i) {
              buffer[i] = undefined;
              buffer[i + 1] = undefined;
              buffer[i + 2] = undefined;
            }
            currentIndex = -1;
            this.crash(asError(error), type, body, meta);
            break;
          }
          currentCell = undefined;
          // False when the message was moved into the cell (rescueCurrent) so the slot could be reused.
          const inSlot = currentIndex === i;
          currentIndex = -1;
          if (inSlot) {
            buffer[i] = undefined;
            buffer[i + 1] = undefined;
            buffer[i + 2] = undefined;
          }
          if (result !== undefined && isThenable(result)) {
            if (inSlot) {
              this.curType = type;
              this.curBody = body;
            }
            this.awaitHandler(result, type, body, meta);
            break;
          }
          if (meta !== undefined || this.curMeta !== undefined || !inSlot) this.finish(meta, result);
        }
        if (this.status !== RUNNING || this.flags !== SCHEDULED) break;
      }
      system.handled += handled;
    }
    this.flags &= ~SCHEDULED;
    const ended = this.system.handlerProbe;
    if (ended !== undefined && (this.flags & BUSY) === 0) ended(this, undefined);
    if (
      this.flags === 0 &&
      this.mbSize === 0 &&
      (this.sysQueue === undefined || this.sysQueue.length === 0)
    ) {
      return;
    }
    if ((this.flags & (STOP_REQUESTED | BUSY)) === STOP_REQUESTED) this.beginRequestedStop();
    else this.scheduleIfRunnable();
  }

  /**
   * Moves the fast path's current message from its slot into the cell, before anything reuses the
   * slot or replaces the buffer (unstashAll, a growing mailbox).
   */
  protected override rescueCurrent(): void {
    if (currentCell !== this || currentIndex < 0) return;
    const buffer = this.mbBuffer!;
    this.curType = buffer[currentIndex] as string;
    this.curBody = buffer[currentIndex + 1];
    buffer[currentIndex] = undefined;
    buffer[currentIndex + 1] = undefined;
    buffer[currentIndex + 2] = undefined;
    currentIndex = -1;
  }

  private invoke(type: string, body: unknown, meta: unknown): void {
    if (meta === TERMINATED) {
      const notice = body as { ref: ActorRef<any>; reason: ExitReason };
      this.deliverTerminated(notice.ref, notice.reason);
      return;
    }
    if (meta instanceof TimerTick && !this.timerCurrent(meta)) return;
    if (meta instanceof PendingAsk && meta.settled) {
      // Its asker stopped waiting (timeout, abort) before it was handled: nobody waits for this work
      // (Orleans drops expired requests too), and after an outage such asks pile up behind retries.
      this.system.deadLetter(
        this.address,
        senderAddress(meta),
        type,
        body,
        'expired',
        new TroupeError(
          'ERR_ASK_TIMEOUT',
          `"${type}" to ${this.address} was not handled: its ask had ended`,
          {
            details: { to: this.address, type },
          },
        ),
      );
      return;
    }
    const handler = this.table[type];
    if (handler === undefined) {
      this.rejectUnknown(type, body, meta);
      return;
    }
    if (this.settings.validateAll) {
      const checked = this.validateBody(type, body);
      if (checked instanceof Promise) {
        this.awaitValidation(checked, handler, type, body, meta);
        return;
      }
      if (!checked.ok) {
        this.rejectInvalid(type, body, meta, checked.error);
        return;
      }
      body = checked.value;
    }
    this.call(handler, type, body, meta);
  }

  private call(handler: HandlerTable[string], type: string, body: unknown, meta: unknown): void {
    this.curType = type;
    this.curBody = body;
    this.curMeta = meta;
    const previous = currentCell;
    const previousSpan = currentSpan;
    const span =
      this.system.tracer === undefined || meta === undefined ? undefined : this.spanFor(type, meta);
    currentCell = this;
    currentSpan = span;
    let result: unknown;
    try {
      const ctx = this.ctx ?? this.context();
      const middleware = this.system.middleware.length !== 0;
      // Untraced (the common case) without allocating a closure per message.
      if (span === undefined && !middleware) result = handler(body, ctx);
      else {
        const run = () =>
          middleware
            ? this.system.runReceiveMiddleware(this, type, body, meta, () => handler(body, ctx))
            : handler(body, ctx);
        result = span === undefined ? run() : span.run(run);
      }
    } catch (error) {
      currentCell = previous;
      currentSpan = previousSpan;
      this.crashIn(span, asError(error), type, body, meta);
      return;
    }
    currentCell = previous;
    currentSpan = previousSpan;
    if (
      result !== null &&
      typeof result === 'object' &&
      typeof (result as PromiseLike<unknown>).then === 'function'
    ) {
      this.awaitHandler(result as PromiseLike<unknown>, type, body, meta, span);
      return;
    }
    span?.end();
    this.finish(meta, result);
  }

  /** Crashes inside the handler's span, so that the crash's events carry its trace; then ends it. */
  private crashIn(
    span: HandlerSpan | undefined,
    error: Error,
    type: string,
    body: unknown,
    meta: unknown,
  ): void {
    if (span === undefined) {
      this.crash(error, type, body, meta);
      return;
    }
    try {
      span.run(() => this.crash(error, type, body, meta));
    } finally {
      span.end(error);
    }
  }

  /** The tracer's span for a message that came with a trace context, if it makes one. */
  private spanFor(type: string, meta: unknown): HandlerSpan | undefined {
    const trace = meta instanceof Traced ? meta.trace : meta instanceof PendingAsk ? meta.trace : undefined;
    if (trace === undefined) return undefined;
    try {
      return this.system.tracer!.handle(this.address, type, trace, meta instanceof PendingAsk);
    } catch (error) {
      this.system.reportDefect(this.address, error);
      return undefined;
    }
  }

  private finish(meta: unknown, result: unknown): void {
    if (meta !== undefined) {
      // A stashed ask is answered when it is handled again, not now.
      if (meta instanceof PendingAsk && this.curMeta === meta && !meta.detached) this.reply(meta, result);
    }
    // Cleared even without meta: stash() leaves its marker here.
    this.curMeta = undefined;
    this.curType = undefined;
    this.curBody = undefined;
  }

  private awaitHandler(
    result: PromiseLike<unknown>,
    type: string,
    body: unknown,
    meta: unknown,
    span?: HandlerSpan,
  ): void {
    this.flags |= BUSY;
    this.system.busy++;
    const incarnation = this.incarnation;
    const deadlineMs = this.behavior.handlerDeadlineMs;
    let deadline: TimerHandle | undefined;
    if (deadlineMs !== undefined) {
      deadline = this.system.clock.setTimeout(() => {
        if (this.incarnation !== incarnation || (this.flags & BUSY) === 0) return;
        this.settleBusy();
        this.crashIn(
          span,
          new TroupeError(
            'ERR_HANDLER_TIMEOUT',
            `handler "${type}" of ${this.address} ran past ${deadlineMs} ms`,
            {
              details: { address: this.address, type, deadlineMs },
            },
          ),
          type,
          body,
          meta,
        );
      }, deadlineMs);
    }
    const settled = Promise.resolve(result).then(
      (value) => {
        deadline?.cancel();
        span?.end();
        if (this.incarnation !== incarnation || this.inflight !== settled) {
          // Late: the actor stopped or restarted meanwhile; the work is done, so its ask hears.
          if (meta instanceof PendingAsk && !meta.detached) this.reply(meta, value);
          return;
        }
        this.settleBusy();
        this.finish(meta, value);
        this.afterAsync();
      },
      (error: unknown) => {
        deadline?.cancel();
        if (this.incarnation !== incarnation || this.inflight !== settled) {
          span?.end(asError(error));
          if (meta instanceof PendingAsk && !meta.detached)
            meta.reject(this.crashedHandling(type, asError(error)));
          return;
        }
        this.settleBusy();
        this.crashIn(span, asError(error), type, body, meta);
      },
    );
    this.inflight = settled;
    // The handler asked to stop and then went async: stop now rather than wait for a handler that
    // may itself be waiting for the stop.
    if ((this.flags & STOP_REQUESTED) !== 0) {
      this.settleBusy();
      this.beginRequestedStop();
    }
  }

  protected settleBusy(): void {
    this.flags &= ~BUSY;
    this.inflight = undefined;
    this.system.busy--;
    this.system.checkIdle();
  }

  /**
   * Ends this incarnation's busy turn on a crash or restart. A handler in flight runs on detached (its
   * late reply still reaches its ask); a message still being validated was never handled, so it goes
   * back to the front of the mailbox for the next incarnation.
   */
  protected releaseBusy(): void {
    const validating = this.inflight === undefined;
    this.settleBusy();
    if (validating && this.curType !== undefined) {
      this.unshiftMessage(this.curType, this.curBody, this.curMeta);
    }
    this.curType = undefined;
    this.curBody = undefined;
    this.curMeta = undefined;
  }

  private afterAsync(): void {
    if ((this.flags & STOP_REQUESTED) !== 0) this.beginRequestedStop();
    else this.scheduleIfRunnable();
  }

  private validateBody(type: string, body: unknown): Validated | Promise<Validated> {
    const entry = this.behavior.specs[type]!;
    return validate(entry.spec.body, body, `"${entry.protocol}.${type}" to ${this.address}`);
  }

  private awaitValidation(
    checked: Promise<Validated>,
    handler: HandlerTable[string],
    type: string,
    body: unknown,
    meta: unknown,
  ): void {
    this.flags |= BUSY;
    this.system.busy++;
    const incarnation = this.incarnation;
    // The message waits in the current slots; a stop meanwhile turns it into a dead letter (runStop).
    this.curType = type;
    this.curBody = body;
    this.curMeta = meta;
    checked.then((result) => {
      // The actor stopped (the message became a dead letter) or restarted (it went back to the
      // mailbox) meanwhile: releaseBusy and runStop took care of it.
      if (this.incarnation !== incarnation) return;
      this.settleBusy();
      this.curType = undefined;
      this.curBody = undefined;
      this.curMeta = undefined;
      if (result.ok) this.call(handler, type, result.value, meta);
      else this.rejectInvalid(type, body, meta, result.error);
      if ((this.flags & BUSY) === 0) this.afterAsync();
    });
  }

  private reply(ask: PendingAsk, value: unknown): void {
    if (ask.settled) {
      // The asker stopped waiting (timeout, abort): the reply is not lost silently.
      const asker = (ask.from as ActorRef<any> | undefined)?.address ?? '(the asker)';
      this.system.deadLetter(
        asker,
        this.address,
        ask.type,
        value,
        'expired',
        new TroupeError('ERR_ASK_TIMEOUT', `a reply to "${ask.type}" came after the ask stopped waiting`, {
          details: { from: this.address, type: ask.type },
        }),
      );
      return;
    }
    if (this.settings.validateAll) this.replyValidated(ask, value);
    else ask.resolve(value);
  }

  private crashedHandling(type: string | undefined, error: Error): TroupeError {
    return new TroupeError(
      'ERR_ACTOR_CRASHED',
      `${this.address} crashed handling "${type}": ${error.message}`,
      { cause: error, details: { to: this.address, type } },
    );
  }

  private replyValidated(ask: PendingAsk, value: unknown): void {
    const entry = this.behavior.specs[ask.type]!;
    const spec = entry.spec;
    if (spec.kind !== 'ask') ask.resolve(value);
    else
      settleValidated(
        spec.reply,
        value,
        `reply to "${entry.protocol}.${ask.type}" from ${this.address}`,
        ask,
      );
  }

  private rejectUnknown(type: string, body: unknown, meta: unknown): void {
    const error = new TroupeError('ERR_UNKNOWN_MESSAGE', `${this.address} does not handle "${type}"`, {
      details: { to: this.address, type },
    });
    this.system.deadLetter(this.address, senderAddress(meta), type, body, 'unknown-message', error);
    if (meta instanceof PendingAsk) meta.reject(error);
  }

  private rejectInvalid(type: string, body: unknown, meta: unknown, error: TroupeError): void {
    this.system.deadLetter(this.address, senderAddress(meta), type, body, 'validation-failed', error);
    if (meta instanceof PendingAsk) meta.reject(error);
  }

  /** A handler threw, rejected or timed out: suspend and tell the parent. */
  private crash(error: Error, type: string | undefined, body: unknown, meta: unknown): void {
    // A message stashed before the crash is handled again after the restart; its ask waits for that.
    const stashed = this.curMeta === STASHED;
    this.curType = undefined;
    this.curBody = undefined;
    this.curMeta = undefined;
    if (meta instanceof PendingAsk && !stashed && !meta.detached)
      meta.reject(this.crashedHandling(type, error));
    this.fail(error, type === undefined ? undefined : { type, body });
  }

  /** Marks this actor failed and hands the decision to its supervisor. */
  fail(error: Error, message: { type: string; body: unknown } | undefined): void {
    if (this.status >= STOPPING || this.status === SUSPENDED) return;
    this.status = SUSPENDED;
    this.lastFailure = error;
    this.incarnation++;
    this.abortController?.abort(error);
    this.abortController = undefined;
    if ((this.flags & BUSY) !== 0) this.releaseBusy();
    const system = this.system;
    if (system.observed) {
      system.emit({ type: 'actor-crashed', at: system.clock.now(), address: this.address, error, message });
    } else {
      system.logFailure(
        `${this.address} crashed${message === undefined ? '' : ` handling "${message.type}"`}`,
        error,
      );
    }
    this.parentCell?.pushSystem({ kind: 'child-exit', child: this, error, incarnation: this.incarnation });
  }

  private handleSystem(message: SystemMessage): void {
    switch (message.kind) {
      case 'start':
        this.runStartHook(message.waiter);
        return;
      case 'child-exit':
        // A report about an earlier incarnation (already restarted by a group restart) is stale.
        if (message.child.incarnation !== message.incarnation) return;
        // Called directly rather than through runSystemAction: no closure per exit.
        try {
          const deciding = this.superviseExit(message.child, message.error);
          if (deciding !== undefined) this.awaitSystemAction(deciding, undefined, undefined);
        } catch (error) {
          this.system.reportDefect(this.address, error);
        }
        return;
      case 'task':
        if (this.status >= STOPPING) {
          message.reject(new TroupeError('ERR_ACTOR_STOPPED', `${this.address} has stopped`));
          return;
        }
        if (this.status !== RUNNING) {
          // Work on a failed or restarting actor waits for its next incarnation, which starts fresh.
          this.deferred ??= [];
          this.deferred.push(message);
          return;
        }
        this.runSystemAction(() => message.run(), message.resolve, message.reject);
        return;
    }
  }

  /** Runs a system action; if it goes async, the system lane waits for it. */
  private runSystemAction(
    action: () => unknown,
    resolve?: (value: unknown) => void,
    reject?: (error: unknown) => void,
  ): void {
    let result: unknown;
    try {
      result = action();
    } catch (error) {
      if (reject === undefined) this.system.reportDefect(this.address, error);
      else reject(error);
      return;
    }
    if (!(result instanceof Promise)) {
      resolve?.(result);
      return;
    }
    this.awaitSystemAction(result, resolve, reject);
  }

  /** The system lane waits for an action that went async. */
  private awaitSystemAction(
    result: Promise<unknown>,
    resolve: ((value: unknown) => void) | undefined,
    reject: ((error: unknown) => void) | undefined,
  ): void {
    this.flags |= SYS_BUSY;
    this.system.busy++;
    result.then(
      (value) => {
        this.endSystemAction();
        resolve?.(value);
      },
      (error: unknown) => {
        this.endSystemAction();
        if (reject === undefined) this.system.reportDefect(this.address, error);
        else reject(error);
      },
    );
  }

  private endSystemAction(): void {
    this.flags &= ~SYS_BUSY;
    this.system.busy--;
    this.scheduleIfRunnable();
    this.system.checkIdle();
  }

  /** Running again: tasks that waited for this incarnation go first. */
  protected becameRunning(): void {
    this.status = RUNNING;
    const deferred = this.deferred;
    if (deferred === undefined) return;
    this.deferred = undefined;
    this.sysQueue = this.sysQueue === undefined ? deferred : [...deferred, ...this.sysQueue];
    this.scheduleIfRunnable();
  }

  /** Runs `run` in this actor's system lane, after earlier supervision work. */
  runTask<T>(run: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.status >= STOPPING) {
        reject(new TroupeError('ERR_ACTOR_STOPPED', `${this.address} has stopped`));
        return;
      }
      this.pushSystem({ kind: 'task', run, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  private runStartHook(waiter: StartWaiter | undefined): void {
    if (this.status !== STARTING) return;
    const incarnation = this.incarnation;
    this.runSystemAction(() => {
      const result = this.callHook(() => this.behavior.definition.preStart?.(this.context()));
      const done = () => {
        if (this.incarnation !== incarnation || this.status !== STARTING) return;
        this.becameRunning();
        this.announceStarted();
        waiter?.resolve(this);
      };
      const failed = (error: unknown) => this.startFailed(error, waiter, incarnation);
      if (result instanceof Promise) return result.then(done, failed);
      if (result === START_FAILED) return failed(this.hookError);
      done();
      return undefined;
    });
  }

  /** Calls a lifecycle hook with this actor as the current one; a throw is returned as START_FAILED. */
  protected callHook(hook: () => unknown): unknown {
    const previous = currentCell;
    const previousInHook = inHook;
    currentCell = this;
    inHook = true;
    try {
      const result = hook();
      if (
        result !== null &&
        typeof result === 'object' &&
        typeof (result as PromiseLike<unknown>).then === 'function'
      ) {
        return Promise.resolve(result);
      }
      return undefined;
    } catch (error) {
      this.hookError = error;
      return START_FAILED;
    } finally {
      currentCell = previous;
      inHook = previousInHook;
    }
  }

  protected startFailed(thrown: unknown, waiter: StartWaiter | undefined, incarnation: number): void {
    if (this.incarnation !== incarnation) return;
    const error = new TroupeError(
      'ERR_START_FAILED',
      `${this.address} failed to start: ${asError(thrown).message}`,
      {
        cause: thrown,
        details: { address: this.address },
      },
    );
    if (waiter !== undefined) {
      // A supervisor starting its children in order hears the failure itself (OTP: init fails).
      this.status = SUSPENDED;
      waiter.reject(error);
      return;
    }
    this.status = STARTING;
    this.fail(error, undefined);
  }

  // ---- Stopping (the rest is in supervision/engine.ts) ----

  private stopSelf(): Promise<void> {
    if (this.status === STOPPED) return Promise.resolve();
    if (this.stopping !== undefined) return this.stopping;
    if (currentCell === this && (this.flags & BUSY) === 0) {
      // Inside our own handler: stop once it returns (at once if it returns a promise: awaitHandler).
      this.flags |= STOP_REQUESTED;
      if (!inHook && this.stopsAtOnce()) {
        // The stop will run right after this handler returns, in this same turn, with nothing to
        // wait for: the turn's one promise of such stops serves (beginStop tells it if this one
        // has to wait after all, for a child spawned after this call).
        const batch = this.system.dispatcher.stopBatch();
        if (batch !== undefined) {
          this.flags |= STOP_BATCHED;
          return batch;
        }
      }
      this.stopping = new Promise<void>(captureResolve);
      this.stopResolve = captured;
      captured = undefined;
      return this.stopping;
    }
    // From a pending handler (an async one, after its first await): stop without waiting for it.
    if ((this.flags & BUSY) !== 0 && this.inflight !== undefined) this.settleBusy();
    return this.selfExit() ?? Promise.resolve();
  }

  /** True when a stop would have nothing to wait for (see beginStop): no children, no postStop. */
  private stopsAtOnce(): boolean {
    const children = this.childMap;
    return (
      (children === undefined || children.size === 0) &&
      this.behavior.definition.postStop === undefined &&
      this.givingUp === undefined
    );
  }

  protected takeExitListeners(): ((cell: Cell) => void)[] | undefined {
    const extras = this.extras;
    const listeners = extras?.exitListeners;
    if (listeners !== undefined) extras!.exitListeners = undefined;
    return listeners;
  }

  /** Calls `listener` once this actor has stopped for good (not on a restart); returns its removal. */
  onExit(listener: (cell: Cell) => void): () => void {
    const extras = this.cold();
    if (extras.exitListeners === undefined) extras.exitListeners = [listener];
    else extras.exitListeners.push(listener);
    return () => {
      const listeners = extras.exitListeners;
      const i = listeners?.indexOf(listener) ?? -1;
      if (i >= 0) listeners!.splice(i, 1);
    };
  }

  /**
   * Takes every queued message out of this actor, stashed ones first (they came first), so they
   * can follow a named actor whose key moved, or be answered with the reason it will not run.
   * Timer ticks and Terminated notices stay behind: they mean nothing to another activation.
   */
  surrender(): SurrenderedMessage[] {
    const out: SurrenderedMessage[] = [];
    const take = (type: string, body: unknown, meta: unknown) => {
      if (meta === STASHED || meta === TERMINATED || meta instanceof TimerTick) return;
      if (meta instanceof PendingAsk) {
        out.push({ type, body, ask: meta, from: meta.from as ActorRef<any> | undefined, trace: meta.trace });
      } else if (meta instanceof Traced) {
        out.push({ type, body, ask: undefined, from: meta.from, trace: meta.trace });
      } else {
        out.push({ type, body, ask: undefined, from: meta as ActorRef<any> | undefined, trace: undefined });
      }
    };
    const stashed = this.stashed;
    this.stashed = undefined;
    if (stashed !== undefined)
      for (let i = 0; i < stashed.length; i += 3) take(stashed[i] as string, stashed[i + 1], stashed[i + 2]);
    if (this.mbSize > 0) {
      const left = this.takeAllMessages();
      for (let i = 0; i < left.length; i += 3) take(left[i] as string, left[i + 1], left[i + 2]);
    }
    return out;
  }

  protected flushUndelivered(): void {
    if (this.mbSize > 0) {
      const left = this.takeAllMessages();
      for (let i = 0; i < left.length; i += 3)
        this.undeliverable(left[i] as string, left[i + 1], left[i + 2], 'actor-stopped');
    }
    this.mbBuffer = undefined;
    const stashed = this.stashed;
    this.stashed = undefined;
    if (stashed !== undefined) {
      for (let i = 0; i < stashed.length; i += 3)
        this.undeliverable(stashed[i] as string, stashed[i + 1], stashed[i + 2], 'actor-stopped');
    }
    const sys = this.deferred === undefined ? this.sysQueue : [...this.deferred, ...(this.sysQueue ?? [])];
    this.sysQueue = undefined;
    this.deferred = undefined;
    if (sys !== undefined) {
      for (const message of sys) {
        if (message.kind === 'task')
          message.reject(new TroupeError('ERR_ACTOR_STOPPED', `${this.address} has stopped`));
        else if (message.kind === 'start')
          message.waiter?.reject(
            new TroupeError('ERR_ACTOR_STOPPED', `${this.address} stopped before it started`),
          );
      }
    }
  }

  private deliverTerminated(ref: ActorRef<any>, reason: ExitReason): void {
    if (this.status >= STOPPING || this.watching?.has(ref) !== true) return;
    this.watching.delete(ref);
    const hook = this.behavior.definition.terminated;
    if (hook === undefined) return;
    const previous = currentCell;
    currentCell = this;
    try {
      hook(ref, reason, this.context());
    } catch (error) {
      currentCell = previous;
      this.crash(asError(error), undefined, undefined, undefined);
      return;
    }
    currentCell = previous;
  }

  // ---- Timers ----

  private makeTimers(): Timers<any> {
    const start = (key: string, delayMs: number, type: string, body: unknown, repeat: boolean) => {
      nonNegative(repeat ? 'intervalMs' : 'delayMs', delayMs);
      if (repeat && delayMs === 0) throw invalidOption('intervalMs', 'must be > 0', delayMs);
      if (this.system.devChecks) assertPlainData(body);
      cancel(key);
      this.timerMap ??= new Map();
      const generation = this.system.nextTimerGeneration();
      const fire = () => {
        const entry = this.timerMap?.get(key);
        if (entry === undefined || entry.generation !== generation) return;
        if (repeat) entry.handle = this.system.clock.setTimeout(fire, delayMs);
        this.enqueue(type, body, new TimerTick(key, generation));
      };
      this.timerMap.set(key, { handle: this.system.clock.setTimeout(fire, delayMs), generation, repeat });
    };
    const cancel = (key: string) => {
      const entry = this.timerMap?.get(key);
      if (entry === undefined) return;
      entry.handle.cancel();
      this.timerMap!.delete(key);
    };
    return {
      startSingle: (key, delayMs, type, body) => start(key, delayMs, type, body, false),
      startPeriodic: (key, intervalMs, type, body) => start(key, intervalMs, type, body, true),
      cancel,
      cancelAll: () => this.cancelTimers(),
      isActive: (key) => this.timerMap?.has(key) === true,
    };
  }

  /** True when the tick's timer is still the current one; a single timer is done once its tick is taken. */
  private timerCurrent(tick: TimerTick): boolean {
    const entry = this.timerMap?.get(tick.key);
    if (entry === undefined || entry.generation !== tick.generation) return false;
    if (!entry.repeat) this.timerMap!.delete(tick.key);
    return true;
  }

  protected cancelTimers(): void {
    const map = this.timerMap;
    if (map === undefined) return;
    for (const entry of map.values()) entry.handle.cancel();
    map.clear();
  }

  // ---- Introspection ----

  tree(): TreeNode {
    const children: TreeNode[] = [];
    if (this.childMap !== undefined) for (const child of this.childMap.values()) children.push(child.tree());
    const extension = this.extras?.treeExtension;
    if (extension !== undefined) {
      try {
        for (const node of extension()) children.push(node);
      } catch (error) {
        this.system.reportDefect(this.address, error);
      }
    }
    return {
      name: this.name,
      address: this.address,
      kind: this.parentCell === undefined ? 'guardian' : this.behavior.kind,
      status: this.statusName,
      restarts: this.restarts,
      strategy: this.policy.strategy,
      mailboxSize: this.mailboxSize,
      children,
    };
  }

  /** Every child slot, in start order. */
  slots(): Cell[] {
    return this.childMap === undefined ? [] : [...this.childMap.values()];
  }

  /** The child with this name, if any. */
  child(name: string): Cell | undefined {
    const map = this.childMap;
    if (map === undefined) return undefined;
    if (name.startsWith('$')) {
      const n = Number.parseInt(name.slice(1), 36);
      return Number.isNaN(n) || `$${n.toString(36)}` !== name ? undefined : map.get(n);
    }
    return map.get(name);
  }

  /** True when no user message, system message or async work is pending here. */
  get quiet(): boolean {
    return (
      (this.flags & (BUSY | SYS_BUSY | SCHEDULED)) === 0 &&
      (this.sysQueue === undefined || this.sysQueue.length === 0) &&
      (this.status !== RUNNING || this.mbSize === 0)
    );
  }

  /** Every cell of this subtree, this one first. */
  *subtree(): Generator<Cell> {
    yield this;
    if (this.childMap !== undefined) for (const child of this.childMap.values()) yield* child.subtree();
  }
}

/**
 * What an actor's handlers and hooks get as `ctx`: a view of their own actor. It is a separate object
 * from the actor's ref, so a ref that another actor holds (its `ctx.sender`, a message's field) can
 * never be used as this actor's context. Kernel hooks reach the cell through {@link cellOf}.
 */
export class CellContext implements ActorContext<any, any> {
  constructor(readonly cell: Cell) {}

  get state(): unknown {
    return this.cell.actorState;
  }

  set state(value: unknown) {
    this.cell.actorState = value;
  }

  get self(): ActorRef<any> {
    return this.cell;
  }

  get sender(): ActorRef<any> | undefined {
    return this.cell.currentSender();
  }

  get trace(): TraceContext | undefined {
    return this.cell.trace;
  }

  get signal(): AbortSignal {
    return this.cell.incarnationSignal();
  }

  get parent(): ActorRef<any> | undefined {
    return this.cell.parentRef();
  }

  get system(): ActorSystem {
    return this.cell.system;
  }

  get timers(): Timers<any> {
    return this.cell.timerControls();
  }

  spawn(b: Behavior<any, any>, options?: SpawnOptions): ActorRef<any> {
    return this.cell.spawnChild(b, options, undefined);
  }

  stop(child?: ActorRef<any>): Promise<void> {
    return this.cell.stopSelfOrChild(child);
  }

  children(): ActorRef<any>[] {
    return this.cell.liveChildren();
  }

  watch(ref: ActorRef<any>): void {
    this.cell.watchRef(ref);
  }

  unwatch(ref: ActorRef<any>): void {
    this.cell.unwatchRef(ref);
  }

  become(handlers: Handlers<any, any>): void {
    this.cell.becomeHandlers(handlers);
  }

  unbecome(): void {
    this.cell.restoreHandlers();
  }

  stash(): void {
    this.cell.stashCurrent();
  }

  unstashAll(): void {
    this.cell.unstashMessages();
  }
}

/**
 * The cell behind an actor's context: for the kernel hooks that supervisors and persistent actors
 * use. @throws TroupeError `ERR_ILLEGAL_STATE` for anything that is not a context of this kernel.
 */
export function cellOf(ctx: ActorContext<any, any>): Cell {
  if (ctx instanceof CellContext) return ctx.cell;
  throw new TroupeError('ERR_ILLEGAL_STATE', 'not the context of an actor of this runtime');
}

/** True while a lifecycle hook runs (callHook): a stop asked there is not run at the end of the turn. */
let inHook = false;

let captured: (() => void) | undefined;
/** A promise executor that keeps its resolve function in `captured` (no closure per promise). */
function captureResolve(resolve: () => void): void {
  captured = resolve;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function'
  );
}
const STASHED = Symbol('stashed');
/** The meta of a Terminated notice in the mailbox; its body is `{ ref, reason }`. */
const TERMINATED = Symbol('terminated');

/** The meta of a message that came with a trace context: its sender and the context. */
class Traced {
  constructor(
    readonly from: ActorRef<any> | undefined,
    readonly trace: TraceContext,
  ) {}
}

function senderAddress(meta: unknown): Address | undefined {
  if (meta instanceof Cell) return meta.address;
  if (meta instanceof PendingAsk) return (meta.from as Cell | undefined)?.address;
  if (meta instanceof Traced) return meta.from?.address;
  if (typeof meta === 'object' && meta !== null && 'address' in meta) return (meta as ActorRef).address;
  return undefined;
}

function checkName(name: unknown): string {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    name.includes('/') ||
    name.startsWith('$') ||
    name.startsWith('@')
  ) {
    throw new TroupeError(
      'ERR_INVALID_NAME',
      `actor name ${JSON.stringify(name)} is empty, has "/" or starts with "$" or "@"`,
      {
        details: { name },
      },
    );
  }
  return name;
}

/** Resolves spawn options over the system's defaults and the behaviour's own mailbox options. */
export function resolveCellSettings(
  base: CellSettings,
  behavior: CompiledBehavior,
  options: SpawnOptions | undefined,
): CellSettings {
  if (options === undefined && behavior.mailbox === undefined) return base;
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw invalidOption('options', 'spawn options must be an object', options);
  }
  const mailbox = resolveMailbox(
    options?.mailbox,
    resolveMailbox(behavior.mailbox, base.mailbox, 'behavior.mailbox'),
    'mailbox',
  );
  return {
    restart: options?.restart === undefined ? base.restart : resolveRestartType(options.restart),
    shutdownMs:
      options?.shutdownMs === undefined ? base.shutdownMs : nonNegative('shutdownMs', options.shutdownMs),
    mailbox,
    supervision:
      options?.supervision === undefined
        ? base.supervision
        : resolveRestartPolicy(options.supervision, base.supervision),
    validateAll:
      options?.validate === undefined
        ? base.validateAll
        : options.validate === 'always' ||
          (options.validate === 'boundary' ? false : badValidate(options.validate)),
  };
}

function badValidate(value: unknown): never {
  throw invalidOption('validate', "use 'always' or 'boundary'", value);
}

/**
 * A cell whose behaviour checks each message at its send (see `withSendCheck`): a class of its own,
 * so that the send path of every other actor carries no check at all.
 */
class CheckedCell extends Cell {
  override tell(type: string, body: unknown, options?: TellOptions): void {
    this.behavior.checkSend!(type, body, this);
    super.tell(type, body, options);
  }

  override requestWith(
    type: string,
    body: unknown,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    from: ActorRef<any> | undefined,
    trace: TraceContext | undefined,
    resolve: (value: unknown) => void,
    reject: (error: unknown) => void,
  ): void {
    try {
      this.behavior.checkSend!(type, body, this);
    } catch (error) {
      reject(error);
      return;
    }
    super.requestWith(type, body, timeoutMs, signal, from, trace, resolve, reject);
  }
}
