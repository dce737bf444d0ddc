/**
 * The parent's side of one host: the host is a node of the parent's system, reached through a
 * router over a message-port transport (the same envelopes and checks as between cluster nodes).
 * The link spawns actors in the host, keeps its tree, forwards its events and dead letters to the
 * parent's stream, and watches it: heartbeats that stop past the CPU budget, a heap past its limit,
 * or an exit end the host, and what was in flight to it fails with a typed error.
 */
import { type AnyProtocol, TroupeError } from '../../protocols/index.js';
import type { ActorRef, SpawnOptions, TreeNode } from '../kernel/api.js';
import type { DeadLetterReason, SystemEvent } from '../kernel/events.js';
import { SystemLifecycle } from '../kernel/lifecycle.js';
import type { ActorSystemImpl } from '../kernel/system.js';
import { Router } from '../remoting/router.js';
import { realClock, type TimerHandle } from '../time/clock.js';
import { type HostExit, type LaunchedHost, type LaunchOptions, launchHost } from './launcher.js';
import { type MessagePortTransport, messagePortTransport, WIRE } from './port-transport.js';
import { RunningReader, runningMemory } from './running.js';
import { type FromHost, fromWireError, fromWireEvent, type ToHost } from './wire.js';

/** What a link needs to know of the host it runs. */
export interface LinkSettings {
  readonly cpuBudgetMs: number;
  readonly memoryLimitMb: number | undefined;
  readonly startTimeoutMs: number;
}

/** A host launched ahead, waiting (booted, its modules loaded) to be given an identity. */
interface Spare {
  readonly host: LaunchedHost;
  readonly booted: Promise<void>;
  /** Resolves once its modules are loaded too (it never rejects). */
  readonly loaded: Promise<void>;
  readonly stopListening: () => void;
}

/** Spares per system and launch signature: at most one each. */
const spares = new WeakMap<ActorSystemImpl, Map<string, Spare>>();

function signature(options: LaunchOptions): string {
  // A restricted host reads (and, from sources, has built) only the modules it was launched for.
  return JSON.stringify([
    options.kind,
    options.memoryLimitMb ?? null,
    options.permissions ?? null,
    options.permissions === undefined ? null : [...options.modules].sort(),
  ]);
}

/** Launches a host and waits for its runtime to load; it listens for `booted` only. */
function launchSpare(options: LaunchOptions): Spare {
  const host = launchHost(options);
  let stopListening: () => void = () => {};
  let preloaded!: () => void;
  const loaded = new Promise<void>((resolve) => {
    preloaded = resolve;
  });
  const booted = new Promise<void>((resolve, reject) => {
    stopListening = host.port.listen((message) => {
      if (!Array.isArray(message) || message[0] !== WIRE.control) return;
      const control = message[1] as FromHost;
      if (control.t === 'booted') resolve();
      else if (control.t === 'preloaded' && control.id === 0) preloaded();
    });
    host.exited.then((exit) =>
      reject(
        new TroupeError(
          'ERR_HOST_CRASHED',
          `the ${options.kind} host exited while starting${exitText(exit)}`,
          {
            details: exitDetails(exit),
          },
        ),
      ),
    );
  });
  booted.catch(() => preloaded());
  // A spare loads the modules it will be asked for, so a restart does not wait for their import.
  booted.then(
    () => host.port.post([WIRE.control, { t: 'preload', id: 0, modules: options.modules } satisfies ToHost]),
    () => {},
  );
  return { host, booted, loaded, stopListening };
}

/**
 * Resolves once the spare hosts of `system` have started and loaded their modules (for benchmarks
 * and tests that measure a restart onto a spare).
 */
export async function sparesReady(system: ActorSystemImpl): Promise<void> {
  await Promise.all([...(spares.get(system)?.values() ?? [])].map((spare) => spare.loaded));
}

/**
 * Takes the spare host of `system` for these options (or launches one), and launches the next spare
 * when `standby`.
 */
function takeHost(system: ActorSystemImpl, options: LaunchOptions, standby: boolean): Spare {
  let bySignature = spares.get(system);
  if (bySignature === undefined) {
    bySignature = new Map();
    spares.set(system, bySignature);
    // The spares go with the system.
    system.closed().then(() => {
      for (const spare of bySignature!.values()) spare.host.terminate();
      bySignature!.clear();
    });
  }
  const key = signature(options);
  const spare = bySignature.get(key);
  bySignature.delete(key);
  const taken = spare ?? launchSpare(options);
  if (standby && system.state < SystemLifecycle.Stopping) {
    const next = launchSpare(options);
    bySignature.set(key, next);
    next.host.exited.then(() => {
      if (bySignature!.get(key) === next) bySignature!.delete(key);
    });
  }
  return taken;
}

/** Why a host ended, as the error its actors' supervisor sees. */
export function exitError(exit: HostExit, node: string, settings: LinkSettings): TroupeError {
  if (exit.outOfMemory) {
    return new TroupeError(
      'ERR_MEMORY_LIMIT',
      `host ${node} ran past its memory limit of ${settings.memoryLimitMb ?? 'the default'} MB`,
      { details: { node, memoryLimitMb: settings.memoryLimitMb, ...exitDetails(exit) } },
    );
  }
  return new TroupeError('ERR_HOST_CRASHED', `host ${node} exited${exitText(exit)}`, {
    ...(exit.error === undefined ? {} : { cause: exit.error }),
    details: { node, ...exitDetails(exit) },
  });
}

function exitText(exit: HostExit): string {
  const how =
    exit.signal !== null ? ` on ${exit.signal}` : exit.code !== null ? ` with code ${exit.code}` : '';
  const why = exit.error !== undefined ? `: ${exit.error.message}` : '';
  // A process's last words (an uncaught error's message) say more than its exit code.
  const said = exit.stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('at ') && !line.startsWith('(Use `node'));
  const last = said.length === 0 ? '' : ` (stderr: ${said.slice(-3).join(' | ').slice(0, 300)})`;
  return how + why + last;
}

function exitDetails(exit: HostExit): Record<string, unknown> {
  return {
    code: exit.code,
    signal: exit.signal,
    ...(exit.stderr === '' ? {} : { stderr: exit.stderr.slice(-1024) }),
  };
}

/** The parent's side of one host. */
export class HostLink {
  readonly router: Router;
  private readonly transport: MessagePortTransport;
  private readonly host: LaunchedHost;
  /** The host's top-level actors' trees, as it last reported them. */
  children: readonly TreeNode[] = [];
  private readonly waiting = new Map<
    number,
    { resolve: (address: string) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private lastBeat = realClock.now();
  private lastCheck = realClock.now();
  private watchdog: TimerHandle | undefined;
  private ended: TroupeError | undefined;
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (error: Error) => void;
  private readonly deathListeners: ((error: TroupeError) => void)[] = [];
  private stopping = false;
  /** What the host runs (the watchdog names the handler that blocked it). */
  private readonly running: RunningReader;

  constructor(
    private readonly system: ActorSystemImpl,
    readonly node: string,
    private readonly settings: LinkSettings,
    launch: LaunchOptions,
    standby: boolean,
  ) {
    const spare = takeHost(system, launch, standby);
    this.host = spare.host;
    this.running = new RunningReader(launch.kind === 'worker' ? runningMemory() : undefined);
    this.readyPromise = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.readyPromise.catch(() => {});
    this.transport = messagePortTransport(spare.host.port, {
      retain: true,
      lost: (text, error) => this.router.lostFrame(text, error),
      control: (message) => this.control(message as FromHost),
      relay: (channel, to, bytes) => relay(system, channel, to, bytes),
    });
    this.router = new Router(system, this.transport, system.wireLimits);
    void this.router.open();
    system.link(node, this.router);
    let mine = links.get(system);
    if (mine === undefined) {
      mine = new Map();
      links.set(system, mine);
    }
    mine.set(node, this);
    spare.host.exited.then((exit) => this.died(exitError(exit, node, settings)));
    spare.booted.then(
      () => {
        spare.stopListening();
        this.post({
          t: 'init',
          system: system.name,
          node,
          parent: system.node,
          beatMs: Math.max(1, Math.min(50, Math.floor(settings.cpuBudgetMs / 4))),
          askTimeoutMs: system.askTimeoutMs,
          devChecks: system.devChecks,
          ...(this.running.memory === undefined ? {} : { running: this.running.memory }),
        });
      },
      (error: Error) =>
        this.died(
          TroupeError.is(error)
            ? error
            : exitError({ code: null, signal: null, outOfMemory: false, error, stderr: '' }, node, settings),
        ),
    );
    const start = realClock.setTimeout(() => {
      this.kill(
        new TroupeError(
          'ERR_HOST_CRASHED',
          `host ${node} did not start within ${settings.startTimeoutMs} ms`,
          {
            details: { node, startTimeoutMs: settings.startTimeoutMs },
          },
        ),
      );
    }, settings.startTimeoutMs);
    this.readyPromise.then(
      () => start.cancel(),
      () => start.cancel(),
    );
  }

  /** Resolves once the host is a node of the system. */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** Told once when the host ends for a reason other than a stop: with the error its actors crash with. */
  onDeath(listener: (error: TroupeError) => void): void {
    if (this.ended !== undefined && !this.stopping) listener(this.ended);
    else this.deathListeners.push(listener);
  }

  /** Spawns a top-level actor of the host; resolves with its address. */
  spawn(
    module: string,
    exportName: string,
    name: string,
    options: SpawnOptions | undefined,
    ifAbsent: boolean,
  ): Promise<string> {
    if (this.ended !== undefined) return Promise.reject(this.ended);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.post({ t: 'spawn', id, module, export: exportName, name, options, ifAbsent });
    });
  }

  /**
   * Loads `module` in the host and checks that `exportName` is a behaviour, so that spawns of it
   * happen at once from then on. @throws TroupeError (rejects) `ERR_MODULE_NOT_FOUND`,
   * `ERR_EXPORT_NOT_FOUND`, `ERR_NOT_A_BEHAVIOR`.
   */
  load(module: string, exportName: string): Promise<void> {
    if (this.ended !== undefined) return Promise.reject(this.ended);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: () => resolve(), reject });
      this.post({ t: 'preload', id, modules: [module], check: { module, export: exportName } });
    });
  }

  /** A ref to an actor of the host. */
  refFor(address: string, protocol: AnyProtocol | undefined): ActorRef<any> {
    return this.router.refFor(address, this.node, protocol);
  }

  /** Sends a control message; in order with the frames (the router's batch goes first). */
  private post(message: ToHost): void {
    this.router.flush();
    this.transport.control(message);
  }

  /** A frame another host sent to this one, passed on as it is. */
  relayed(channel: 'node' | 'reply', payload: string | Uint8Array): void {
    if (this.ended !== undefined) return;
    this.transport.relay(channel, this.node, payload);
  }

  /** Stops the host: its actors drain for up to `timeoutMs`, then it is terminated anyway. */
  async close(timeoutMs: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.ended === undefined) {
      this.post({ t: 'stop', timeoutMs });
      const timer = realClock.setTimeout(() => this.host.terminate(), timeoutMs + 100);
      await this.host.exited;
      timer.cancel();
    }
    this.end(
      this.ended ??
        new TroupeError('ERR_ACTOR_STOPPED', `host ${this.node} stopped`, { details: { node: this.node } }),
    );
  }

  /** Ends the host at once, as a crash with `error`. */
  kill(error: TroupeError): void {
    if (this.ended !== undefined) return;
    this.died(error);
    this.host.terminate();
  }

  private died(error: TroupeError): void {
    if (this.ended !== undefined) return;
    this.end(error);
    if (this.stopping) return;
    for (const listener of this.deathListeners.splice(0)) listener(error);
  }

  /** Fails what was in flight with `error`, and unlinks the node. */
  private end(error: TroupeError): void {
    if (this.ended === undefined) this.ended = error;
    this.watchdog?.cancel();
    this.watchdog = undefined;
    this.rejectReady(error);
    this.transport.failUnacknowledged(error);
    this.router.failPending(error);
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
    this.system.link(this.node, undefined);
    const mine = links.get(this.system);
    if (mine?.get(this.node) === this) mine.delete(this.node);
    void this.router.close(true).catch(() => {});
    this.host.terminate();
  }

  private control(message: FromHost): void {
    if (this.running.control(message)) return;
    switch (message.t) {
      case 'ready':
        this.lastBeat = realClock.now();
        this.resolveReady();
        return;
      case 'beat':
        this.lastBeat = realClock.now();
        return;
      case 'preloaded': {
        const waiter = this.waiting.get(message.id);
        this.waiting.delete(message.id);
        if (message.error === undefined) waiter?.resolve('');
        else waiter?.reject(fromWireError(message.error));
        return;
      }
      case 'spawned':
      case 'spawn-failed': {
        const waiter = this.waiting.get(message.id);
        this.waiting.delete(message.id);
        if (message.t === 'spawned') waiter?.resolve(message.address);
        else waiter?.reject(fromWireError(message.error));
        return;
      }
      case 'tree':
        this.children = message.children;
        return;
      case 'events':
        for (const wire of message.events) this.forward(fromWireEvent(wire));
        return;
      default:
        return;
    }
  }

  /** A host's event on the parent's stream: dead letters as the parent's own, the rest as they came. */
  private forward(event: Record<string, unknown>): void {
    const system = this.system;
    if (event.type === 'dead-letter') {
      system.deadLetter(
        event.to as string,
        event.from as string | undefined,
        event.messageType as string,
        event.body,
        event.reason as DeadLetterReason,
        event.error as TroupeError | undefined,
      );
      return;
    }
    if (system.observed) {
      system.emit({ ...event, at: system.clock.now() } as unknown as SystemEvent);
    } else if (event.type === 'actor-crashed' && event.error instanceof Error) {
      system.logFailure(`${String(event.address)} crashed`, event.error);
    }
  }

  /**
   * The CPU-budget watchdog, on real time (it measures a thread that does not turn, which only real
   * time shows): the host beats every quarter budget; silence past the budget ends it. A check that
   * itself ran late (this thread was blocked) judges nothing: the beats may be queued behind it.
   * Armed once the host has loaded its modules and spawned its first actor (a start is bounded by
   * `startTimeoutMs` instead: loading code blocks a thread for long without any handler running).
   */
  watch(): void {
    if (this.ended !== undefined || this.watchdog !== undefined) return;
    this.lastBeat = realClock.now();
    const every = Math.max(1, Math.min(50, Math.floor(this.settings.cpuBudgetMs / 4)));
    const check = () => {
      const now = realClock.now();
      const late = now - this.lastCheck > every * 3;
      this.lastCheck = now;
      if (late) this.lastBeat = Math.max(this.lastBeat, now - every);
      else if (now - this.lastBeat > this.settings.cpuBudgetMs) {
        this.kill(this.blocked(Math.round(now - this.lastBeat)));
        return;
      }
      this.watchdog = realClock.setTimeout(check, every);
    };
    this.lastCheck = realClock.now();
    this.watchdog = realClock.setTimeout(check, every);
  }

  /** The error of a host blocked for `silentMs`: it names the handler that was running, when known. */
  private blocked(silentMs: number): TroupeError {
    const { cpuBudgetMs } = this.settings;
    const handler = this.running.current();
    const what =
      handler === undefined
        ? `host ${this.node} was blocked`
        : `${handler.address} blocked its host ${this.node} in its handler of "${handler.messageType}"`;
    return new TroupeError(
      'ERR_CPU_BUDGET',
      `${what} for ${silentMs} ms, past its CPU budget of ${cpuBudgetMs} ms`,
      { details: { node: this.node, cpuBudgetMs, silentMs, ...handler } },
    );
  }
}

/** The live links of each system, by node: frames between hosts are relayed through them. */
const links = new WeakMap<ActorSystemImpl, Map<string, HostLink>>();

/** A frame from one host for another node: relayed to that node's host, if it is one. */
function relay(
  system: ActorSystemImpl,
  channel: 'node' | 'reply',
  node: string,
  payload: string | Uint8Array,
): boolean {
  const target = links.get(system)?.get(node);
  if (target === undefined) return false;
  target.relayed(channel, payload);
  return true;
}
