import { filter, type Observable, Subject } from 'rxjs';
import {
  type Address,
  type AnyProtocol,
  asError,
  type Envelope,
  formatAddress,
  type Infer,
  invalidOption,
  parseAddress,
  type Schema,
  TroupeError,
} from '../../protocols/index.js';
import { Directory } from '../groups/directory.js';
import { GroupsImpl } from '../groups/groups.js';
import { Cluster, type ClusterHost } from '../remoting/cluster.js';
import { inProcessNetwork } from '../remoting/in-process.js';
import { Router } from '../remoting/router.js';
import type { Clock, TimerHandle } from '../time/clock.js';
import { Topics } from '../topics/topic.js';
import type {
  ActorRef,
  ActorSystem,
  AskOptions,
  Behavior,
  DrainOptions,
  Groups,
  MemberInfo,
  MessageInfo,
  Middleware,
  RouteTask,
  SpawnOptions,
  SystemStatus,
  TellOptions,
  Topic,
  TreeNode,
} from './api.js';
import { PendingAsk, TimeoutQueue } from './ask.js';
import { type CompiledBehavior, compiled, supervisingBehavior } from './behavior.js';
import { capabilityScore } from './capabilities.js';
import {
  Cell,
  type CellSettings,
  type HandlerProbe,
  type Host,
  resolveCellSettings,
  runningCell,
} from './cell.js';
import { Dispatcher } from './dispatcher.js';
import type { DeadLetterEvent, DeadLetterReason, PublishedEvent, SystemEvent } from './events.js';
import { SystemLifecycle } from './lifecycle.js';
import { type ResolvedSystemOptions, resolveSystemOptions, type SystemOptions } from './options.js';
import type { KernelTracer } from './tracer.js';

const resolved = Promise.resolve();

const { Running: RUNNING, Draining: DRAINING, Stopping: STOPPING, Stopped: STOPPED } = SystemLifecycle;

/**
 * Starts an in-process actor system.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad option.
 * @example
 * ```ts
 * await using system = createSystem({ name: 'shop' });
 * const counter = system.spawn(counterBehavior, { name: 'counter' });
 * counter.tell('add', { by: 2 });
 * console.log(await counter.ask('get', {}));
 * ```
 */
export function createSystem(options?: SystemOptions): ActorSystem {
  return new ActorSystemImpl(resolveSystemOptions(options));
}

const guardianBehavior = (policy: ResolvedSystemOptions['supervision']) =>
  compiled(supervisingBehavior({ protocols: [], handlers: {} }, policy, false));

/** What a readiness probe (`/readyz`) judges of a system, as the kernel sees it now. */
export interface SystemReadiness {
  /** Running: not draining, stopping or stopped. */
  readonly running: boolean;
  /** Whether its transport has opened (always `open` without one). */
  readonly opened: 'opening' | 'open' | 'failed';
  /** Its transport (undefined for a single-node system): connected now? */
  readonly transport: { readonly kind: string; readonly connected: boolean } | undefined;
  /**
   * Its cluster membership (undefined for a system without named actors): has it joined, and can it
   * reach the membership store.
   */
  readonly cluster: { readonly joined: boolean; readonly storeReachable: boolean } | undefined;
}

/** The actor system; `createSystem` and `createNode` (remoting/node.ts) make one. */
export class ActorSystemImpl implements Host, ClusterHost {
  readonly name: string;
  readonly node: string;
  readonly clock: Clock;
  readonly random: () => number;
  readonly devChecks: boolean;
  readonly askTimeoutMs: number;
  readonly timeouts: TimeoutQueue;
  readonly middleware: Middleware[] = [];
  readonly events$: Observable<SystemEvent>;
  readonly deadLetters$: Observable<DeadLetterEvent>;
  busy = 0;
  /** User messages taken from mailboxes to be handled (see `systemStats`). */
  handled = 0;
  /** The tracer `installTracing` installed, if any. */
  tracer: KernelTracer | undefined = undefined;
  /** What an isolated host records of the handlers it runs (see {@link HandlerProbe}). */
  handlerProbe: HandlerProbe | undefined = undefined;
  slowSend: boolean;
  slowReceive = false;
  private lifecycle: SystemLifecycle = RUNNING;

  private readonly subject = new Subject<SystemEvent>();
  private readonly guardian: Cell;
  private readonly defaults: CellSettings;
  private readonly byProtocol = new Map<string, Set<Cell>>();
  /** Live cells whose behaviour declares capabilities, for `route`. */
  private readonly capable = new Set<Cell>();
  private readonly protocols = new Map<string, AnyProtocol>();
  /** Runs the cells that have work, in turns; see {@link Dispatcher}. */
  readonly dispatcher: Dispatcher;
  private idleWaiters: (() => void)[] = [];
  private timerGeneration = 0;
  private deadLettersLogged = 0;
  private readonly failuresLogged = { crashes: 0, escalations: 0, defects: 0 };
  private failure: Error | undefined;
  private readonly closedPromise: Promise<Error | undefined>;
  private resolveClosed!: (error: Error | undefined) => void;
  private stopPromise: Promise<void> | undefined;
  /** How this node reaches the others; undefined for a single-node system. */
  private readonly router: Router | undefined;
  /**
   * Nodes reached through their own router rather than the system's transport: hosts of isolated
   * actors (worker threads, child processes), each a node of this system.
   */
  private links: Map<string, Router> | undefined;
  /** Membership and named actors; undefined without `kinds`. */
  private cluster: Cluster | undefined;
  /** The parent of this node's activations of named actors. */
  private activationParent: Cell | undefined;
  /** Resolves once the transport receives. */
  readonly opened: Promise<void>;
  /** How `opened` settled, for readiness probes. */
  private openState: 'opening' | 'open' | 'failed' = 'opening';

  constructor(private readonly options: ResolvedSystemOptions) {
    this.name = options.name;
    this.node = options.node;
    this.clock = options.clock;
    this.random = options.random;
    this.devChecks = options.devChecks;
    this.askTimeoutMs = options.askTimeoutMs;
    this.dispatcher = new Dispatcher(
      options.throughput,
      options.timeSliceMs,
      () => this.checkIdle(),
      (address, error) => this.reportDefect(address, error),
      options.timeSlices === 'clock' ? () => options.clock.now() : undefined,
    );
    this.timeouts = new TimeoutQueue(options.clock);
    this.slowSend = this.devChecks;
    this.events$ = this.subject.asObservable();
    this.deadLetters$ = this.events$.pipe(filter((e): e is DeadLetterEvent => e.type === 'dead-letter'));
    this.defaults = {
      restart: 'transient',
      shutdownMs: options.shutdownMs,
      mailbox: options.mailbox,
      supervision: options.supervision,
      validateAll: options.validate === 'always',
    };
    this.guardian = new Cell(this, undefined, '', guardianBehavior(options.supervision), this.defaults);
    this.guardian.markRunning();
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    // Named actors need a router even on a single node: a private loopback network.
    const transport =
      options.transport ?? (options.kinds.size > 0 ? inProcessNetwork().transport() : undefined);
    if (transport === undefined) {
      this.router = undefined;
      this.cluster = undefined;
      this.opened = resolved;
      this.openState = 'open';
    } else {
      const store = transport.store;
      if (options.kinds.size > 0 && store === undefined) {
        throw invalidOption(
          'transport',
          'named actors (`kinds`) need a transport with a cluster store',
          transport,
        );
      }
      const router = new Router(this, transport, options);
      this.router = router;
      this.cluster = undefined;
      let opening = router.open();
      if ((options.kinds.size > 0 || options.joinCluster) && store !== undefined) {
        // Named actors' messages wait in the router until the cluster has started.
        router.expectsCluster = true;
        opening = opening.then(async () => {
          const cluster = new Cluster(this, await store.call(transport, this.name), options);
          this.cluster = cluster;
          await cluster.start();
          router.attach(cluster);
        });
      }
      this.opened = opening;
      opening.then(
        () => {
          this.openState = 'open';
        },
        () => {
          this.openState = 'failed';
        },
      );
      // Reported through createNode; a system made with createSystem logs it instead.
      this.opened.catch((error: unknown) =>
        this.reportDefect(formatAddress({ system: this.name, node: this.node, path: '' }), error),
      );
    }
  }

  // ---- Topics and groups ----

  private directoryInstance: Directory | undefined;
  private topicsInstance: Topics | undefined;
  private groupsInstance: Groups | undefined;

  /** This node's part of the directory of groups and topic interest, started on first use. */
  directory(): Directory {
    if (this.directoryInstance === undefined) {
      const address = formatAddress({ system: this.name, node: this.node, path: '' });
      this.directoryInstance = new Directory(
        {
          name: this.name,
          node: this.node,
          clock: this.clock,
          heartbeatMs: this.options.heartbeatMs,
          downAfterMissed: this.options.downAfterMissed,
          transport: this.state < STOPPING ? this.router?.transport : undefined,
          opened: this.opened,
          remoteRef: (a, protocol) => (protocol === undefined ? this.ref(a) : this.ref(a, protocol)),
          publish: (event) => this.publish(event),
          maxMessageBytes: this.options.maxMessageBytes,
          reportDefect: (error) => this.reportDefect(address, error),
          refuse: (error, body) =>
            this.deadLetter(`${address}$directory`, undefined, '(directory)', body, 'malformed', error),
        },
        `${this.clock.wallNow().toString(36)}.${Math.floor(this.random() * 36 ** 4).toString(36)}`,
      );
    }
    return this.directoryInstance;
  }

  /** The live actor of this node a ref names, if any. */
  localCell(ref: ActorRef<any>): Cell | undefined {
    if (ref instanceof Cell) return ref.system === this ? ref : undefined;
    if (ref instanceof PathRef) return ref.target();
    return undefined;
  }

  topic<S extends Schema>(name: string, schema: S): Topic<Infer<S>> {
    this.topicsInstance ??= new Topics({
      name: this.name,
      node: this.node,
      maxMessageBytes: this.options.maxMessageBytes,
      transport: this.router?.transport,
      directory: () => this.directory(),
      localCell: (ref) => this.localCell(ref),
      deadLetter: (...args) => this.deadLetter(...args),
    });
    return this.topicsInstance.topic(name, schema);
  }

  get groups(): Groups {
    this.groupsInstance ??= new GroupsImpl(
      () => this.directory(),
      (ref) => this.localCell(ref),
    );
    return this.groupsInstance;
  }

  // ---- ClusterHost ----

  memberDown(node: string): void {
    this.directoryInstance?.nodeDown(node);
    this.router?.nodeDown(node);
  }

  memberUp(node: string): void {
    this.router?.nodeUp(node);
  }

  spawnActivation(behavior: Behavior<any, any>, address: Address, onExit: (cell: Cell) => void): Cell {
    // The activations' supervisor decides per key (Cluster.decide): it never gives up itself, so
    // no named actor can stop its node.
    this.activationParent ??= this.guardian.spawnChild(
      supervisingBehavior(
        { protocols: [], handlers: {} },
        this.options.supervision,
        false,
        (child, error) => this.cluster?.decide(child, error) ?? 'stop',
      ),
      undefined,
      undefined,
    );
    const cell = this.activationParent.spawnChild(behavior, { restart: 'transient' }, undefined, address);
    cell.onExit(onExit);
    return cell;
  }

  namedRef(kind: string, key: string): ActorRef<any> {
    return this.router!.namedRefFor(kind, key, undefined);
  }

  members(): MemberInfo[] {
    return this.cluster?.view() ?? [];
  }

  /** Installs or removes the tracer (see kernel/tracing.ts). */
  setTracer(tracer: KernelTracer | undefined): void {
    this.tracer = tracer;
    this.dispatcher.wrapTurns(tracer === undefined ? undefined : (run) => tracer.turn(run));
  }

  /** What a readiness probe judges; see `systemReadiness` (kernel/readiness.ts). */
  readiness(): SystemReadiness {
    const transport = this.router?.transport;
    const cluster = this.cluster?.health();
    return {
      running: this.lifecycle === RUNNING,
      opened: this.openState,
      transport:
        transport === undefined
          ? undefined
          : { kind: transport.kind, connected: this.openState === 'open' && (transport.connected ?? true) },
      cluster:
        this.options.kinds.size === 0
          ? undefined
          : { joined: cluster?.joined ?? false, storeReachable: cluster?.storeReachable ?? false },
    };
  }

  fenceOf(cell: Cell): number | undefined {
    return this.cluster?.fences.get(cell);
  }

  deliverLocal(item: unknown): void {
    this.router?.deliverLocal(item);
  }

  forward(node: string, item: Envelope): void {
    this.router?.forward(node, item);
  }

  undeliverable(envelope: Envelope, error: TroupeError, reason?: DeadLetterReason): void {
    this.router?.undeliverable(envelope, error, reason);
  }

  get state(): SystemLifecycle {
    return this.lifecycle;
  }

  private set state(value: SystemLifecycle) {
    this.lifecycle = value;
    this.refreshFlags();
  }

  private refreshFlags(): void {
    this.slowSend =
      this.devChecks || this.lifecycle !== RUNNING || this.middleware.some((m) => m.send !== undefined);
    this.slowReceive = this.middleware.some((m) => m.receive !== undefined);
  }

  get observed(): boolean {
    return this.subject.observed;
  }

  get status(): SystemStatus {
    if (this.failure !== undefined) return { tag: 'failed', error: this.failure };
    if (this.state === RUNNING) return { tag: 'running' };
    if (this.state === DRAINING) return { tag: 'draining' };
    if (this.state === STOPPING) return { tag: 'stopping' };
    return { tag: 'stopped' };
  }

  // ---- Public API ----

  spawn<P extends AnyProtocol, S>(behavior: Behavior<P, S>, options?: SpawnOptions): ActorRef<P> {
    return this.guardian.spawnChild(behavior, options, undefined) as unknown as ActorRef<P>;
  }

  stop(ref: ActorRef<any>): Promise<void> {
    if (ref instanceof PathRef) {
      // A ref made from an address: the actor it names now, if any (none left: nothing to stop).
      const cell = ref.target();
      return cell === undefined ? Promise.resolve() : this.stop(cell);
    }
    if (!(ref instanceof Cell) || ref.system !== this) {
      return Promise.reject(
        new TroupeError(
          'ERR_ILLEGAL_STATE',
          `system.stop() stops actors of this system; ${ref.address} is not one (stop it on its own node)`,
          { details: { target: ref.address } },
        ),
      );
    }
    if (ref.parentCell !== this.guardian) {
      return Promise.reject(
        new TroupeError(
          'ERR_ILLEGAL_STATE',
          `system.stop() stops top-level actors; ${ref.address} has a parent`,
        ),
      );
    }
    return this.guardian.stopChild(ref, false);
  }

  actorOf<P extends AnyProtocol>(kind: string, key: string, protocol?: P): ActorRef<P> {
    if (this.router === undefined || !this.options.kinds.has(kind)) {
      throw new TroupeError(
        'ERR_NO_ROUTE',
        `this node has no kind "${kind}" of named actors (option \`kinds\`)`,
        {
          details: { kind, kinds: [...this.options.kinds.keys()] },
        },
      );
    }
    if (typeof key !== 'string' || key.length === 0) {
      throw new TroupeError('ERR_INVALID_NAME', "a named actor's key must be a non-empty string", {
        details: { key },
      });
    }
    const badKey = this.cluster?.checkKey(kind, key);
    if (badKey !== undefined) throw badKey;
    return this.router.namedRefFor(kind, key, protocol) as ActorRef<P>;
  }

  /** The limits of what this node sends and accepts, for routers of its own. */
  get wireLimits(): { maxMessageBytes: number; maxBatchCount: number; maxBatchBytes: number } {
    return this.options;
  }

  /** Routes the addresses of `node` through `router` (undefined: no longer). */
  link(node: string, router: Router | undefined): void {
    if (router === undefined) {
      this.links?.delete(node);
      return;
    }
    this.links ??= new Map();
    this.links.set(node, router);
  }

  ref<P extends AnyProtocol>(address: Address, protocol?: P): ActorRef<P> {
    const parts = parseAddress(address);
    const link = this.links?.get(parts.node);
    if (link !== undefined && parts.system === this.name) {
      return link.refFor(address, parts.node, protocol) as ActorRef<P>;
    }
    if (this.router !== undefined && parts.system === this.name && parts.node.startsWith('@')) {
      return this.router.namedRefFor(parts.node.slice(1), parts.path, protocol) as ActorRef<P>;
    }
    if (this.router !== undefined && parts.system === this.name && parts.node !== this.node) {
      return this.router.refFor(address, parts.node, protocol) as ActorRef<P>;
    }
    const cell = this.lookup(parts.system, parts.node, parts.path);
    return (cell ??
      new PathRef(this, address, parts.system, parts.node, parts.path)) as unknown as ActorRef<P>;
  }

  find<P extends AnyProtocol>(protocol: P): ActorRef<P>[] {
    let cells = this.byProtocol.get(protocol.name);
    if (cells === undefined) {
      // The index of a protocol is built on its first look-up and kept from then on, so spawning
      // pays nothing for protocols nobody looks up.
      cells = new Set();
      for (const cell of this.guardian.subtree()) {
        if (cell.alive && cell.behavior.protocols.some((p) => p.name === protocol.name)) cells.add(cell);
      }
      this.byProtocol.set(protocol.name, cells);
    }
    const out: ActorRef<P>[] = [];
    for (const cell of cells) if (cell.alive) out.push(cell as unknown as ActorRef<P>);
    return out;
  }

  route<P extends AnyProtocol>(task: RouteTask, protocol?: P): ActorRef<P> | undefined {
    if (
      typeof task !== 'object' ||
      task === null ||
      typeof task.capability !== 'string' ||
      task.capability === ''
    )
      throw invalidOption('task', 'must be an object with a capability name', task);
    let best: Cell | undefined;
    let bestScore = 0;
    for (const cell of this.capable) {
      if (!cell.alive) continue;
      if (protocol !== undefined && !cell.behavior.protocols.some((p) => p.name === protocol.name)) continue;
      const score = capabilityScore(cell, task);
      if (score === undefined) continue;
      if (score > bestScore || (score === bestScore && cell.load < best!.load)) {
        best = cell;
        bestScore = score;
      }
    }
    return best as unknown as ActorRef<P> | undefined;
  }

  publish(event: PublishedEvent): void {
    if (this.subject.observed) {
      this.subject.next({ ...event, at: this.clock.now() } as SystemEvent);
      return;
    }
    // A defect nobody hears of would go unseen: it takes the crashes' way to the log instead.
    const { type, error, ...fields } = event as { type: string; error?: unknown };
    if (error instanceof Error) this.logFailure(`${type} ${describeFields(fields)}`, error, 'defects');
  }

  tree(): TreeNode {
    return this.guardian.tree();
  }

  use(middleware: Middleware): () => void {
    if (typeof middleware !== 'object' || middleware === null || typeof middleware.name !== 'string') {
      throw invalidOption('middleware', 'must be an object with a name', middleware);
    }
    this.middleware.push(middleware);
    this.refreshFlags();
    return () => {
      const i = this.middleware.indexOf(middleware);
      if (i >= 0) this.middleware.splice(i, 1);
      this.refreshFlags();
    };
  }

  async drain(options?: DrainOptions): Promise<void> {
    if (this.state !== RUNNING) return this.stopPromise ?? this.closedPromise.then(() => undefined);
    const timeoutMs = options?.timeoutMs ?? 5000;
    if (!(timeoutMs >= 0)) throw invalidOption('drain.timeoutMs', 'must be a number >= 0', timeoutMs);
    // A cluster node first hands its named actors over, while everything still runs; the drain's
    // timeout bounds that too (what is not handed over by then stops with the tree).
    if (this.cluster !== undefined) await this.within(this.cluster.leave(), timeoutMs);
    if (this.state !== RUNNING) return this.stopPromise ?? this.closedPromise.then(() => undefined);
    this.state = DRAINING;
    if (this.observed) this.emit({ type: 'system-draining', at: this.clock.now() });
    this.stopPromise = (async () => {
      let timer: TimerHandle | undefined;
      const timeout = new Promise<boolean>((resolve) => {
        timer = this.clock.setTimeout(() => resolve(false), timeoutMs);
        timer.keepAlive?.(true); // a drain is awaited: its deadline holds the process
      });
      const cut = new Promise<'closed'>((resolve) => {
        this.cutDrain = () => resolve('closed');
      });
      const drained = await Promise.race([this.idle().then(() => true), timeout, cut]);
      timer?.cancel();
      this.cutDrain = undefined;
      await this.shutdown(undefined, drained === false, this.hard);
    })();
    return this.stopPromise;
  }

  close(): Promise<void> {
    if (this.stopPromise !== undefined) {
      // A drain in progress is cut short: stop now, without waiting for handlers in flight.
      this.goHard();
      return this.stopPromise;
    }
    this.stopPromise = this.shutdown(undefined, false, true);
    return this.stopPromise;
  }

  private goHard(): void {
    this.hard = true;
    this.cutDrain?.();
    const waiters = this.hardWaiters;
    this.hardWaiters = new Set();
    for (const wake of waiters) wake();
  }

  closed(): Promise<Error | undefined> {
    return this.closedPromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.drain();
  }

  // ---- Host: what cells use ----

  emit(event: SystemEvent): void {
    this.subject.next(event);
  }

  refuseExternal(
    to: Cell,
    type: string,
    body: unknown,
    from: ActorRef<any> | undefined,
    ask: PendingAsk | undefined,
  ): boolean {
    if (this.state === RUNNING) return false;
    // While draining, actors of this system finish their work: a sender that is one of them (running
    // now, or named as `from`) may still send. A remote sender or an outside caller may not.
    if (
      (this.state === DRAINING || this.state === STOPPING) &&
      from !== undefined &&
      from instanceof Cell &&
      from.system === this
    ) {
      return false;
    }
    const draining = this.state === DRAINING;
    const error = new TroupeError(
      draining ? 'ERR_SYSTEM_DRAINING' : 'ERR_SYSTEM_STOPPED',
      draining
        ? `system "${this.name}" is draining and refuses new messages`
        : `system "${this.name}" has stopped`,
      { details: { to: to.address, type } },
    );
    this.deadLetter(
      to.address,
      from?.address,
      type,
      body,
      draining ? 'system-draining' : 'system-stopped',
      error,
    );
    ask?.reject(error);
    return true;
  }

  runSendMiddleware(
    to: Cell,
    type: string,
    body: unknown,
    from: ActorRef<any> | undefined,
    ask: boolean,
  ): TroupeError | undefined {
    const info: MessageInfo = { to: to.address, from: from?.address, type, body, ask };
    for (const m of this.middleware) {
      if (m.send?.(info) === false) {
        const error = new TroupeError(
          'ERR_MESSAGE_DROPPED',
          `middleware "${m.name}" dropped "${type}" to ${to.address}`,
          {
            details: { to: to.address, type, middleware: m.name },
          },
        );
        this.deadLetter(to.address, from?.address, type, body, 'middleware-dropped', error);
        return error;
      }
    }
    return undefined;
  }

  runReceiveMiddleware(to: Cell, type: string, body: unknown, meta: unknown, next: () => unknown): unknown {
    const from =
      meta instanceof Cell
        ? meta.address
        : meta instanceof PendingAsk
          ? (meta.from as Cell)?.address
          : undefined;
    const info: MessageInfo = { to: to.address, from, type, body, ask: meta instanceof PendingAsk };
    let call = next;
    for (let i = this.middleware.length - 1; i >= 0; i--) {
      const m = this.middleware[i]!;
      if (m.receive === undefined) continue;
      const inner = call;
      call = () => m.receive!(info, inner);
    }
    return call();
  }

  deadLetter(
    to: Address,
    from: Address | undefined,
    type: string,
    body: unknown,
    reason: DeadLetterReason,
    error: TroupeError | undefined,
  ): void {
    if (this.observed) {
      this.emit({
        type: 'dead-letter',
        at: this.clock.now(),
        to,
        from,
        messageType: type,
        body,
        reason,
        error,
      });
      return;
    }
    const limit = this.options.deadLetterLogLimit;
    if (this.deadLettersLogged < limit) {
      this.deadLettersLogged++;
      this.options.deadLetterLog(
        `troupe: dead letter "${type}" to ${to} (${reason})${error ? `: ${error.message}` : ''}`,
      );
    } else if (this.deadLettersLogged === limit) {
      // Said once, when the first one goes unlogged.
      this.deadLettersLogged++;
      this.options.deadLetterLog(
        `troupe: ${limit} dead letters logged; further ones go only to subscribers of deadLetters$`,
      );
    }
  }

  logFailure(what: string, error: Error, kind: 'crashes' | 'escalations' | 'defects' = 'crashes'): void {
    const limit = this.options.deadLetterLogLimit;
    const logged = this.failuresLogged[kind]++;
    if (logged < limit) this.options.deadLetterLog(`troupe: ${what}: ${withStack(error)}`);
    else if (logged === limit) {
      this.options.deadLetterLog(
        `troupe: ${limit} ${kind} logged; further ones go only to subscribers of events$`,
      );
    }
  }

  register(cell: Cell): void {
    const protocols = cell.behavior.protocols;
    for (let i = 0; i < protocols.length; i++) this.byProtocol.get(protocols[i]!.name)?.add(cell);
    if (cell.behavior.definition.capabilities !== undefined) this.capable.add(cell);
  }

  unregister(cell: Cell): void {
    const protocols = cell.behavior.protocols;
    for (let i = 0; i < protocols.length; i++) this.byProtocol.get(protocols[i]!.name)?.delete(cell);
    if (cell.behavior.definition.capabilities !== undefined) this.capable.delete(cell);
  }

  settingsFor(behavior: CompiledBehavior, options: SpawnOptions | undefined): CellSettings {
    // Indexed loops here and in (un)register: a for-of allocates an iterator on every spawn and stop.
    const protocols = behavior.protocols;
    for (let i = 0; i < protocols.length; i++) {
      const protocol = protocols[i]!;
      const known = this.protocols.get(protocol.name);
      if (known === undefined) this.protocols.set(protocol.name, protocol);
      else if (known !== protocol && !sameMessages(known, protocol)) {
        throw new TroupeError(
          'ERR_PROTOCOL_CONFLICT',
          `protocol name "${protocol.name}" is already registered with other messages`,
          { details: { protocol: protocol.name } },
        );
      }
    }
    return resolveCellSettings(this.defaults, behavior, options);
  }

  /** The registered protocol of this name: what a boundary may decode messages into. */
  protocol(name: string): AnyProtocol | undefined {
    return this.protocols.get(name);
  }

  assertAccepting(): void {
    if (this.state >= STOPPING) {
      throw new TroupeError('ERR_SYSTEM_STOPPED', `system "${this.name}" has stopped and cannot spawn`);
    }
    if (this.state === DRAINING && runningCell() === undefined) {
      throw new TroupeError(
        'ERR_SYSTEM_DRAINING',
        `system "${this.name}" is draining and cannot spawn from outside`,
      );
    }
  }

  rootFailed(error: Error): void {
    if (this.failure !== undefined || this.state >= STOPPED) return;
    this.failure = error;
    if (!this.observed)
      this.options.deadLetterLog(`troupe: system "${this.name}" failed: ${withStack(error)}`);
    this.stopPromise ??= this.shutdown(error, false, true);
  }

  reportDefect(address: Address, error: unknown): void {
    if (this.observed) {
      this.emit({ type: 'hook-failed', at: this.clock.now(), address, error: asError(error) });
      return;
    }
    this.logFailure(`a hook of ${address} failed`, asError(error), 'defects');
  }

  within(promise: Promise<unknown>, ms: number, endedByClose = false): Promise<void> {
    if (ms <= 0 || (endedByClose && this.hard)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        timer.cancel();
        if (endedByClose) this.hardWaiters.delete(done);
        resolve();
      };
      const timer = this.clock.setTimeout(done, ms);
      timer.keepAlive?.(true);
      if (endedByClose) this.hardWaiters.add(done);
      promise.then(done, done);
    });
  }

  checkIdle(): void {
    if (this.idleWaiters.length === 0 || !this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  nextTimerGeneration(): number {
    return ++this.timerGeneration;
  }

  // ---- Internal ----

  /** Resolves once no message is queued and no async work runs (timers aside). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    if (this.dispatcher.pending || this.busy > 0) return false;
    for (const cell of this.guardian.subtree()) if (!cell.quiet) return false;
    return true;
  }

  /** The cell at an address of this node, if any (also used at send time by refs made from addresses). */
  lookup(system: string, node: string, path: string): Cell | undefined {
    if (system === this.name && node.startsWith('@')) return this.cluster?.activation(node.slice(1), path);
    if (system !== this.name || node !== this.node) return undefined;
    let cell: Cell | undefined = this.guardian;
    for (const segment of path.split('/')) {
      cell = cell.child(segment);
      if (cell === undefined) return undefined;
    }
    return cell;
  }

  private async shutdown(error: Error | undefined, drainTimedOut: boolean, hard: boolean): Promise<void> {
    this.state = STOPPING;
    if (hard) this.goHard();
    await this.guardian.stopChildren();
    this.state = STOPPED;
    this.timeouts.rejectAll(
      () => new TroupeError('ERR_SYSTEM_STOPPED', `system "${this.name}" stopped before the reply arrived`),
    );
    // Before the transport closes: the other nodes hear this node's bye.
    this.topicsInstance?.close();
    this.directoryInstance?.close();
    if (this.cluster !== undefined) {
      try {
        await this.cluster.stop();
      } catch (stopError) {
        this.reportDefect(formatAddress({ system: this.name, node: this.node, path: '' }), stopError);
      }
    }
    if (this.router !== undefined) {
      try {
        await this.router.close(hard);
      } catch (closeError) {
        this.reportDefect(formatAddress({ system: this.name, node: this.node, path: '' }), closeError);
      }
    }
    if (this.observed) this.emit({ type: 'system-stopped', at: this.clock.now(), error, drainTimedOut });
    this.subject.complete();
    this.resolveClosed(error);
  }

  /** During close() a stopping actor does not wait for a handler in flight. */
  hard = false;
  private cutDrain: (() => void) | undefined;
  /** Waits in within() that close() ends at once. */
  private hardWaiters = new Set<() => void>();
}

/** An error's code, stack (or name and message) and those of its causes, for a log line. */
function withStack(error: Error): string {
  let text = describeError(error);
  let cause = error.cause;
  for (let depth = 0; cause !== undefined && depth < 5; depth++) {
    text += `\n  caused by: ${cause instanceof Error ? describeError(cause) : String(cause)}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return text;
}

/** An event's fields as JSON for a log line (`{"stream":"account-7","version":12}`); never throws. */
function describeFields(fields: object): string {
  try {
    return JSON.stringify(fields);
  } catch {
    return '';
  }
}

function describeError(error: Error): string {
  const stack = error.stack ?? `${error.name}: ${error.message}`;
  return TroupeError.is(error) ? `[${error.code}] ${stack}` : stack;
}

function sameMessages(a: AnyProtocol, b: AnyProtocol): boolean {
  const x = Object.keys(a.messages).sort();
  const y = Object.keys(b.messages).sort();
  return x.length === y.length && x.every((k, i) => k === y[i]);
}

/** A ref made from an address that named no live actor: it looks the address up on every send. */
class PathRef implements ActorRef<any> {
  constructor(
    private readonly system: ActorSystemImpl,
    readonly address: Address,
    private readonly systemName: string,
    private readonly node: string,
    private readonly path: string,
  ) {}

  /** The live actor this address names now, if any. */
  target(): Cell | undefined {
    return this.system.lookup(this.systemName, this.node, this.path);
  }

  tell(type: string, body: unknown, options?: TellOptions): void {
    const cell = this.system.lookup(this.systemName, this.node, this.path);
    if (cell !== undefined) {
      cell.tell(type, body, options);
      return;
    }
    const from = (options?.from as Cell | undefined) ?? runningCell();
    this.system.deadLetter(this.address, from?.address, type, body, 'no-such-actor', this.noSuchActor(type));
  }

  ask(type: string, body: unknown, options?: AskOptions): Promise<any> {
    const cell = this.system.lookup(this.systemName, this.node, this.path);
    if (cell !== undefined) return cell.ask(type, body, options);
    const error = this.noSuchActor(type);
    this.system.deadLetter(this.address, runningCell()?.address, type, body, 'no-such-actor', error);
    return Promise.reject(error);
  }

  private noSuchActor(type: string): TroupeError {
    const { name, node } = this.system;
    if (this.systemName !== name || this.node !== node) {
      // Not this node's address, and no transport took it (ref() hands those to the router).
      const where =
        this.systemName !== name
          ? `cluster "${this.systemName}", not this system's "${name}"`
          : `node "${this.node}", and this node ("${node}") has no transport to it (give createSystem a transport)`;
      return new TroupeError('ERR_NO_ROUTE', `no route to ${this.address}: it names ${where}`, {
        details: { to: this.address, type },
      });
    }
    return new TroupeError('ERR_NO_SUCH_ACTOR', `no live actor at ${this.address}`, {
      details: { to: this.address, type },
    });
  }
}
