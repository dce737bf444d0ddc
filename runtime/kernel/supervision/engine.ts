import { TroupeError } from '../../../protocols/index.js';
import type { Clock } from '../../time/clock.js';
import type { ActorContext, ActorRef, AskOptions, ExitReason, TellOptions } from '../api.js';
import { PendingAsk } from '../ask.js';
import type { CompiledBehavior, HandlerTable } from '../behavior.js';
import type { SystemEvent } from '../events.js';
import { ActorLifecycle, SystemLifecycle } from '../lifecycle.js';
import { Mailbox } from '../mailbox.js';
import type { ResolvedMailbox } from '../options.js';
import { decideExit } from './decide.js';
import type { RestartPolicy, RestartType } from './policy.js';

const { Suspended: SUSPENDED, Starting: STARTING } = ActorLifecycle;
const { Restarting: RESTARTING, Stopping: STOPPING, Stopped: STOPPED } = ActorLifecycle;

/** The exit reason of every normal exit (exit reasons are read-only data, so one object serves all). */
export const NORMAL_EXIT: ExitReason = Object.freeze({ kind: 'normal' });

/** What `stopNow` returns for a stop that is already done. */
const DONE: Promise<void> = Promise.resolve();

/** The cell's flag for a handler in flight (the message path owns the other flags). */
export const BUSY = 2;
/** The cell's flag for a stop asked from inside its own handler. */
export const STOP_REQUESTED = 8;
/** With STOP_REQUESTED: the stop was promised through the dispatcher's batch of the turn. */
export const STOP_BATCHED = 16;

/** What a lifecycle hook that threw returns (see `Cell.callHook`). */
export const START_FAILED = Symbol('start-failed');

/** Resolved per-spawn settings; shared by every actor spawned without options. */
export interface CellSettings {
  readonly restart: RestartType;
  readonly shutdownMs: number;
  readonly mailbox: ResolvedMailbox;
  readonly supervision: RestartPolicy;
  readonly validateAll: boolean;
}

/** A child's report to its supervisor, in the supervisor's system lane. */
export interface ChildExit {
  readonly kind: 'child-exit';
  readonly child: SupervisingCell;
  readonly error: Error | undefined;
  readonly incarnation: number;
}

/** What supervising and stopping need from the system (the cell's `Host` extends it). */
export interface SupervisionHost {
  readonly clock: Clock;
  /** Stops promised through the turn's batch (see `Dispatcher.stopBatch`) that have to wait. */
  readonly dispatcher: { waitForStop(stopping: Promise<unknown>): void };
  readonly random: () => number;
  readonly state: SystemLifecycle;
  readonly observed: boolean;
  busy: number;
  emit(event: SystemEvent): void;
  register(cell: SupervisingCell): void;
  unregister(cell: SupervisingCell): void;
  rootFailed(error: Error): void;
  reportDefect(address: string, error: unknown): void;
  logFailure(what: string, error: Error, kind?: 'crashes' | 'escalations'): void;
  within(promise: Promise<unknown>, ms: number, endedByClose?: boolean): Promise<void>;
  checkIdle(): void;
}

/**
 * An actor as a supervisor and as it stops: the restart engine (it carries out what
 * `decideExit` decides: restart a child or a group, with backoff, or give up in OTP's order) and the
 * stop of an actor and its subtree. The actor cell (`Cell`, in `../cell.ts`) extends it with the
 * message path; the members declared abstract here are the cell's state that this code reads and
 * writes.
 */
export abstract class SupervisingCell extends Mailbox implements ActorRef<any> {
  abstract readonly system: SupervisionHost;
  abstract readonly address: string;
  abstract tell(type: string, body: unknown, options?: TellOptions): void;
  abstract ask(type: string, body: unknown, options?: AskOptions): Promise<any>;
  abstract readonly behavior: CompiledBehavior;
  abstract readonly settings: CellSettings;
  abstract readonly parentCell: SupervisingCell | undefined;
  abstract readonly key: string | number;
  protected abstract status: ActorLifecycle;
  protected abstract flags: number;
  abstract incarnation: number;
  protected abstract table: HandlerTable;
  protected abstract actorState: unknown;
  abstract restarts: number;
  protected abstract abortController: AbortController | undefined;
  protected abstract stopping: Promise<void> | undefined;
  protected abstract inflight: Promise<unknown> | undefined;
  protected abstract curType: string | undefined;
  protected abstract curBody: unknown;
  protected abstract curMeta: unknown;
  protected abstract childMap: Map<string | number, SupervisingCell> | undefined;
  // Cold state (kept in the cell's extras).
  protected abstract restartLog: number[] | undefined;
  protected abstract restartToken: object | undefined;
  protected abstract lastFailure: Error | undefined;
  protected abstract givingUp: Promise<void> | undefined;
  protected abstract hookError: unknown;
  protected abstract stopResolve: (() => void) | undefined;
  protected abstract watchers: Set<SupervisingCell> | undefined;
  protected abstract watching: Set<ActorRef<any>> | undefined;
  protected abstract stashed: unknown[] | undefined;
  abstract exitReason: ExitReason | undefined;

  // The message path's part.
  protected abstract context(): ActorContext<any, any>;
  protected abstract initialState(): unknown;
  protected abstract callHook(hook: () => unknown): unknown;
  protected abstract startFailed(thrown: unknown, waiter: undefined, incarnation: number): void;
  protected abstract becameRunning(): void;
  protected abstract scheduleIfRunnable(): void;
  protected abstract settleBusy(): void;
  protected abstract releaseBusy(): void;
  protected abstract cancelTimers(): void;
  protected abstract unstashMessages(): void;
  protected abstract flushUndelivered(): void;
  protected abstract undeliverable(type: string, body: unknown, meta: unknown, reason: 'actor-stopped'): void;
  protected abstract takeExitListeners(): ((cell: any) => void)[] | undefined;
  protected abstract notifyTerminated(ref: SupervisingCell, reason: ExitReason): void;
  abstract pushSystem(message: ChildExit): void;
  abstract runTask<T>(run: () => T | Promise<T>): Promise<T>;

  // ---- Supervision of this actor's children ----

  protected get policy(): RestartPolicy {
    return this.behavior.supervision ?? this.settings.supervision;
  }

  /** The supervision decision for a child that crashed (`error`) or stopped itself (no error). */
  protected superviseExit(child: SupervisingCell, error: Error | undefined): Promise<void> | undefined {
    if (this.status >= STOPPING || child.parentCell !== this || this.childMap?.get(child.key) !== child)
      return;
    if (this.parentCell === undefined && child.behavior.kind === 'supervisor' && error !== undefined) {
      // A root supervisor's failure is the one failure that stops the system (OTP: the application stops).
      this.system.rootFailed(
        new TroupeError(
          'ERR_ESCALATION',
          `root supervisor ${child.address} failed, so the system stops: ${error.message}`,
          {
            cause: error,
            details: { supervisor: child.address },
          },
        ),
      );
      return;
    }
    const decide = this.behavior.decide;
    if (decide !== undefined) {
      let directive: ReturnType<typeof decide>;
      try {
        directive = decide(child, error);
      } catch (thrown) {
        // A decider that throws is a defect; the child must not stay suspended for ever.
        this.system.reportDefect(this.address, thrown);
        directive = 'stop';
      }
      if (directive === 'stop') return this.retire(child, 'temporary');
      if (directive !== undefined) {
        return this.restartGroupAfter([child], child, error, directive.restartAfterMs);
      }
    }
    const type = child.settings.restart;
    // A supervisor that gave up exits as OTP's does, with reason `shutdown`: only a permanent
    // slot restarts it, and a transient one keeps it stopped.
    const normal = error === undefined || (child.behavior.kind === 'supervisor' && gaveUp(error));
    // Not restarted, whatever the policy (decideExit's first rule, without building its facts).
    if (type === 'temporary' || (type === 'transient' && normal)) return this.retire(child, type);
    const policy = this.policy;
    // Only the exited child matters to one_for_one: no copy of the children on its (common) path.
    const children = policy.strategy === 'one_for_one' ? [child] : [...this.childMap!.values()];
    this.restartLog ??= [];
    const decision = decideExit(
      {
        restart: type,
        normal,
        index: children.indexOf(child),
        count: children.length,
      },
      policy,
      this.restartLog,
      this.system.clock.now(),
      this.system.random,
    );
    if (decision.action === 'retire') return this.retire(child, type);
    if (decision.action === 'give-up') return this.giveUp(child, error, policy);
    // A group of every child (always so for one_for_one, where `children` is the child alone) needs no copy.
    const group = decision.group;
    return this.restartGroupAfter(
      group.length === children.length ? children : group.map((i) => children[i]!),
      child,
      error,
      decision.delayMs,
    );
  }

  /**
   * A child that will not be restarted: stop it if it crashed, then drop (or keep) its slot.
   * Undefined when it had stopped already (a normal exit) and nothing is left to wait for.
   */
  protected retire(child: SupervisingCell, type: RestartType): Promise<void> | undefined {
    if (child.status !== STOPPED) {
      const stopping = child.beginStop({ kind: 'crashed', error: child.lastError() });
      if (stopping !== undefined) return stopping.then(() => this.release(child, type));
    }
    this.release(child, type);
    return undefined;
  }

  private release(child: SupervisingCell, type: RestartType): void {
    if (this.behavior.retainChildren && type !== 'temporary') return;
    this.removeChild(child);
  }

  protected lastError(): Error {
    return this.lastFailure ?? new Error(`${this.address} crashed`);
  }

  /**
   * Restarts `group` because `failed` exited: takes the members down, then brings them up, after
   * `delayMs` if any. Synchronous (undefined) in the common case of one child restarted at once whose
   * steps have nothing to wait for (no children to stop, no hook that returns a promise): the
   * supervisor's system lane then goes on in the same turn instead of waiting for a promise chain.
   */
  protected restartGroupAfter(
    group: SupervisingCell[],
    failed: SupervisingCell,
    error: Error | undefined,
    delayMs: number,
  ): Promise<void> | undefined {
    // Every member of the group is restarted because of the failed child: that is each one's reason.
    const reason = error ?? new Error(`${failed.address} exited and is permanent`);
    if (group.length === 1 && delayMs <= 0) {
      const down = failed.takeDown(reason);
      if (down !== undefined) return down.then(() => this.bringUpInOrder(group, reason));
      const up = failed.bringUp(reason);
      return typeof up === 'boolean' ? undefined : up.then(ignore);
    }
    return this.restartGroupLater(group, failed, reason, delayMs);
  }

  private async restartGroupLater(
    group: SupervisingCell[],
    failed: SupervisingCell,
    reason: Error,
    delayMs: number,
  ): Promise<void> {
    // The failed child first (in OTP it has already terminated), then the others, last started first.
    await failed.takeDown(reason);
    for (let i = group.length - 1; i >= 0; i--) {
      const sibling = group[i]!;
      if (sibling === failed) continue;
      if (sibling.settings.restart === 'temporary') {
        await this.stopChild(sibling, false);
        continue;
      }
      await sibling.takeDown(reason);
    }
    const members = group.filter((c) => c === failed || c.settings.restart !== 'temporary');
    const system = this.system;
    if (delayMs <= 0) {
      await this.bringUpInOrder(members, reason);
      return;
    }
    const token = {};
    for (const member of members) member.restartToken = token;
    if (system.observed) {
      system.emit({
        type: 'restart-scheduled',
        at: system.clock.now(),
        supervisor: this.address,
        children: members.map((m) => m.address),
        delayMs,
      });
    }
    system.clock.setTimeout(() => {
      this.runTask(() => this.bringUpInOrder(members, reason, token)).catch(() => {});
    }, delayMs);
  }

  /**
   * Starts the members of a group again in start order (after a backoff, those still waiting for
   * `token`). A start that fails ends the round, as in OTP: the members after it stay down until this
   * supervisor handles that failure, by restarting the group or by giving up.
   */
  protected async bringUpInOrder(
    members: readonly SupervisingCell[],
    reason: Error,
    token?: object,
  ): Promise<void> {
    for (const member of members) {
      if (token !== undefined) {
        const waiting = member.restartToken === token && member.parentCell === this;
        if (!waiting || member.status !== RESTARTING) continue;
        member.restartToken = undefined;
      }
      if (!(await member.bringUp(reason))) return;
    }
  }

  /**
   * Gives up after more restarts than the policy allows, in OTP's order: this supervisor is marked
   * failing first (a start or message sent to it from then on is refused as during any stop); the
   * child that exited has already stopped (its `postStop` runs first); the other children stop, last
   * started first; only then is the failure (`ERR_RESTART_INTENSITY`) reported to the parent.
   */
  protected async giveUp(
    child: SupervisingCell,
    error: Error | undefined,
    policy: RestartPolicy,
  ): Promise<void> {
    const system = this.system;
    const failure = new TroupeError(
      'ERR_RESTART_INTENSITY',
      `${this.address} exceeded its restart intensity (${policy.intensity} in ${policy.periodMs} ms) after ${child.address} ${error === undefined ? 'exited' : `crashed: ${error.message}`}`,
      { cause: error, details: { supervisor: this.address, child: child.address, ...policy } },
    );
    if (system.observed) {
      system.emit({
        type: 'supervisor-escalated',
        at: system.clock.now(),
        address: this.address,
        error: failure,
      });
    } else if (this.parentCell === undefined) {
      // A supervisor that escalates crashes (and is written) below; the guardian stops the child instead.
      system.logFailure(`${child.address} is stopped for good`, failure, 'escalations');
    }
    const parent = this.parentCell;
    if (parent === undefined) {
      // The guardian does not fail: a plain top-level actor that keeps crashing is stopped for good.
      return this.retire(child, 'temporary');
    }
    this.status = STOPPING;
    this.lastFailure = failure;
    const incarnation = ++this.incarnation;
    this.abortController?.abort(failure);
    this.abortController = undefined;
    if ((this.flags & BUSY) !== 0) this.releaseBusy();
    let done!: () => void;
    this.givingUp = new Promise<void>((resolve) => {
      done = resolve;
    });
    const exited: ExitReason = error === undefined ? { kind: 'normal' } : { kind: 'crashed', error };
    try {
      await this.stopChild(child, false, exited);
      await this.stopChildren();
    } finally {
      this.givingUp = undefined;
      done();
    }
    // Taken down or stopped by its own parent meanwhile: that parent has decided already.
    if (this.incarnation !== incarnation) return;
    if (system.observed) {
      system.emit({
        type: 'actor-crashed',
        at: system.clock.now(),
        address: this.address,
        error: failure,
        message: undefined,
      });
    } else {
      system.logFailure(`${this.address} crashed`, failure);
    }
    parent.pushSystem({ kind: 'child-exit', child: this, error: failure, incarnation });
  }

  /**
   * Takes a child down for a restart: its children stop, hooks run; its slot and mailbox stay.
   * Undefined when it is down at once (nothing to wait for); otherwise a promise of its being down.
   */
  protected takeDown(reason: Error): Promise<void> | undefined {
    // Already down: a stopped slot (kept by a supervisor) or a sibling taken down by an earlier action.
    if (this.status === STOPPED || this.status === RESTARTING) return undefined;
    this.status = RESTARTING;
    this.incarnation++;
    this.abortController?.abort(reason);
    this.abortController = undefined;
    if ((this.flags & BUSY) !== 0) this.releaseBusy();
    const children = this.childMap;
    if (this.givingUp !== undefined || (children !== undefined && children.size > 0)) {
      return this.takeDownSubtree(reason);
    }
    return this.cleanUpForRestart(reason);
  }

  private async takeDownSubtree(reason: Error): Promise<void> {
    if (this.givingUp !== undefined) await this.givingUp;
    await this.stopChildren();
    await this.cleanUpForRestart(reason);
  }

  /** What a restart undoes once the children are down: timers, `become`, the stash; then the hook. */
  private cleanUpForRestart(reason: Error): Promise<void> | undefined {
    this.cancelTimers();
    this.table = this.behavior.table;
    if (this.stashed !== undefined) this.unstashMessages();
    const def = this.behavior.definition;
    if (def.preRestart !== undefined) return this.boundedHook(() => def.preRestart!(this.context(), reason));
    if (def.postStop !== undefined) return this.boundedHook(() => def.postStop!(this.context()));
    return undefined;
  }

  /**
   * Starts a taken-down (or stopped) child again with fresh state; false when its start failed. A
   * boolean at once unless its start hook returns a promise.
   */
  protected bringUp(reason: Error | undefined): boolean | Promise<boolean> {
    const wasStopped = this.status === STOPPED;
    if (this.status !== RESTARTING && !wasStopped) return true;
    if (wasStopped) {
      this.stopping = undefined;
      this.exitReason = undefined;
      this.system.register(this);
    }
    this.status = STARTING;
    this.lastFailure = undefined;
    this.incarnation++;
    this.actorState = this.initialState();
    // A restarted supervisor is a fresh one (OTP: a new process), so its restart window starts empty.
    this.restartLog = undefined;
    this.restarts++;
    const def = this.behavior.definition;
    const incarnation = this.incarnation;
    let result: unknown;
    if (def.postRestart !== undefined && reason !== undefined) {
      result = this.callHook(() => def.postRestart!(this.context(), reason));
    } else if (def.preStart !== undefined) {
      result = this.callHook(() => def.preStart!(this.context()));
    }
    if (result instanceof Promise) {
      return result.then(
        () => this.broughtUp(undefined, incarnation, reason),
        (thrown: unknown) => {
          this.hookError = thrown;
          return this.broughtUp(START_FAILED, incarnation, reason);
        },
      );
    }
    return this.broughtUp(result, incarnation, reason);
  }

  /** The end of `bringUp`, once its hook has run (`START_FAILED` when it threw or rejected). */
  private broughtUp(result: unknown, incarnation: number, reason: Error | undefined): boolean {
    if (this.incarnation !== incarnation || this.status !== STARTING) return true;
    if (result === START_FAILED) {
      this.startFailed(this.hookError, undefined, incarnation);
      return false;
    }
    this.becameRunning();
    const system = this.system;
    if (system.observed) {
      system.emit({
        type: 'actor-restarted',
        at: system.clock.now(),
        address: this.address,
        restarts: this.restarts,
        error: reason,
      });
    }
    this.scheduleIfRunnable();
    return true;
  }

  /**
   * Runs a hook bounded by this actor's shutdown time; its errors are reported, not thrown. Undefined
   * when the hook returned no promise.
   */
  protected boundedHook(hook: () => unknown): Promise<void> | undefined {
    const result = this.callHook(hook);
    if (result === START_FAILED) {
      this.system.reportDefect(this.address, this.hookError);
      return undefined;
    }
    return result instanceof Promise ? this.system.within(result, this.settings.shutdownMs) : undefined;
  }

  // ---- Stopping ----

  protected beginRequestedStop(): void {
    const resolve = this.stopResolve;
    this.stopResolve = undefined;
    this.stopping = undefined;
    this.flags &= ~STOP_REQUESTED;
    const exiting = this.selfExit();
    if (exiting === undefined) resolve?.();
    else exiting.then(resolve);
  }

  /**
   * A normal exit: stop, then let the supervisor decide (a permanent child is restarted). Undefined
   * when the actor stopped at once (see `beginStop`).
   */
  protected selfExit(): Promise<void> | undefined {
    const stopping = this.beginStop(NORMAL_EXIT);
    if (stopping === undefined) {
      this.reportExit();
      return undefined;
    }
    return this.selfExitAfter(stopping);
  }

  private async selfExitAfter(stopping: Promise<void>): Promise<void> {
    this.system.busy++;
    try {
      await stopping;
      this.reportExit();
    } finally {
      this.system.busy--;
      this.system.checkIdle();
    }
  }

  private reportExit(): void {
    this.parentCell?.pushSystem({
      kind: 'child-exit',
      child: this,
      error: undefined,
      incarnation: this.incarnation,
    });
  }

  /** Stops a child on the parent's behalf (no restart) and frees or keeps its slot. */
  async stopChild(
    child: SupervisingCell,
    keepSlot: boolean,
    reason: ExitReason = { kind: 'shutdown' },
  ): Promise<void> {
    const stopping = child.stopNow(reason);
    // OTP's shutdown timeout bounds the child's whole stop (its handler in flight, its subtree and
    // its postStop together); past it the parent goes on and the child finishes stopping on its own.
    const ms = child.settings.shutdownMs;
    if (ms > 0) await this.system.within(stopping, ms);
    else await stopping;
    if (!keepSlot) this.removeChild(child);
  }

  /** Starts again a child whose slot was kept after it stopped (OTP `restart_child`). */
  restartStopped(child: SupervisingCell): Promise<void> {
    if (child.parentCell !== this || child.status !== STOPPED) {
      return Promise.reject(
        new TroupeError('ERR_ILLEGAL_STATE', `${child.address} is not a stopped child of ${this.address}`),
      );
    }
    return Promise.resolve(child.bringUp(undefined)).then(ignore);
  }

  removeChild(child: SupervisingCell): void {
    if (this.childMap?.get(child.key) === child) this.childMap.delete(child.key);
  }

  /**
   * Stops the children, last started first, each after the one before has stopped. Undefined when
   * every one of them stopped at once (see `beginStop`).
   */
  stopChildren(): Promise<void> | undefined {
    const map = this.childMap;
    if (map === undefined || map.size === 0) return undefined;
    const children = [...map.values()];
    for (let i = children.length - 1; i >= 0; i--) {
      const child = children[i]!;
      const stopping = child.beginStop({ kind: 'shutdown' });
      if (stopping !== undefined) return this.stopChildrenAfter(children, i, stopping);
      this.removeChild(child);
    }
    return undefined;
  }

  /** The rest of `stopChildren` once child `i` has to be waited for (as `stopChild` waits). */
  private async stopChildrenAfter(
    children: readonly SupervisingCell[],
    i: number,
    stopping: Promise<void>,
  ): Promise<void> {
    const child = children[i]!;
    const ms = child.settings.shutdownMs;
    if (ms > 0) await this.system.within(stopping, ms);
    else await stopping;
    this.removeChild(child);
    for (let j = i - 1; j >= 0; j--) await this.stopChild(children[j]!, false);
  }

  /** Stops this actor and its subtree: children first, then postStop; leftovers become dead letters. */
  stopNow(reason: ExitReason): Promise<void> {
    return this.beginStop(reason) ?? DONE;
  }

  /**
   * Starts stopping this actor. Undefined when it has stopped already, or now, synchronously: an actor
   * with no handler in flight, no children and no `postStop` to run has nothing to wait for, and
   * stopping it then allocates no promise (an actor that answers once and stops, as in skynet, is
   * the common case).
   */
  protected beginStop(reason: ExitReason): Promise<void> | undefined {
    if (this.status === STOPPED) return undefined;
    if (this.stopping !== undefined && this.stopResolve === undefined) return this.stopping;
    const pending = this.stopResolve;
    this.stopResolve = undefined;
    const batched = (this.flags & STOP_BATCHED) !== 0;
    this.flags &= ~STOP_BATCHED;
    const system = this.system;
    system.busy++;
    const running = this.runStop(reason);
    if (running === undefined) {
      system.busy--;
      system.checkIdle();
      pending?.();
      return undefined;
    }
    const stopping = running.finally(() => {
      system.busy--;
      system.checkIdle();
    });
    this.stopping = stopping;
    if (pending !== undefined) stopping.then(pending);
    if (batched) system.dispatcher.waitForStop(stopping);
    return stopping;
  }

  /** The stop itself; undefined when it was done synchronously (see `beginStop`). */
  protected runStop(reason: ExitReason): Promise<void> | undefined {
    // STOPPING before the stop begins: this supervisor gave up (giveUp), a failure like a crash.
    const crashed = this.status === SUSPENDED || this.status === STOPPING;
    // A child taken down for a restart (waiting out its backoff) already ran its cleanup hook.
    const tornDown = this.status === RESTARTING;
    this.status = STOPPING;
    this.incarnation++;
    this.restartToken = undefined;
    this.flags &= ~STOP_REQUESTED;
    if (this.abortController !== undefined) {
      this.abortController.abort(new TroupeError('ERR_ACTOR_STOPPED', `${this.address} is stopping`));
      this.abortController = undefined;
    }
    if ((this.flags & BUSY) !== 0 && this.inflight !== undefined) {
      return this.stopAfterHandler(reason, crashed, tornDown);
    }
    if ((this.flags & BUSY) !== 0) {
      // A message still being validated is not handler work: it is undelivered.
      this.settleBusy();
      const [type, body, meta] = [this.curType, this.curBody, this.curMeta];
      this.curType = undefined;
      this.curBody = undefined;
      this.curMeta = undefined;
      if (type !== undefined) this.undeliverable(type, body, meta, 'actor-stopped');
    }
    if (this.givingUp === undefined && (tornDown || this.behavior.definition.postStop === undefined)) {
      // No hook of this actor to run: the stop is synchronous when its children's are.
      const children = this.stopChildren();
      if (children === undefined) {
        this.cancelTimers();
        this.stopped(reason, crashed);
        return undefined;
      }
      return children.then(() => this.stopSubtree(reason, crashed, tornDown));
    }
    return this.stopSubtree(reason, crashed, tornDown);
  }

  /** The stop of an actor whose handler is in flight: the handler gets the shutdown time to finish. */
  private async stopAfterHandler(reason: ExitReason, crashed: boolean, tornDown: boolean): Promise<void> {
    const system = this.system;
    const inflight = this.inflight!;
    const meta = this.curMeta;
    this.settleBusy();
    await system.within(inflight, this.settings.shutdownMs, true);
    // A handler that finished in time has answered its ask; one that did not never will.
    // (When the system stops, its close rejects every outstanding ask with ERR_SYSTEM_STOPPED.)
    if (meta instanceof PendingAsk && system.state < SystemLifecycle.Stopping) {
      meta.reject(
        new TroupeError('ERR_ACTOR_STOPPED', `${this.address} stopped while handling "${meta.type}"`),
      );
    }
    this.curType = undefined;
    this.curBody = undefined;
    this.curMeta = undefined;
    await this.stopSubtree(reason, crashed, tornDown);
  }

  /** The rest of a stop that waits: for a supervisor giving up, for the children, for `postStop`. */
  private async stopSubtree(reason: ExitReason, crashed: boolean, tornDown: boolean): Promise<void> {
    if (this.givingUp !== undefined) await this.givingUp;
    await this.stopChildren();
    this.cancelTimers();
    const postStop = this.behavior.definition.postStop;
    if (postStop !== undefined && !tornDown) {
      await this.boundedHook(() => postStop(this.context()));
    }
    this.stopped(reason, crashed);
  }

  /** The end of a stop: the actor is stopped, leftovers become dead letters, watchers hear of it. */
  private stopped(reason: ExitReason, crashed: boolean): void {
    const system = this.system;
    this.status = STOPPED;
    const exitReason: ExitReason =
      crashed && reason.kind === 'shutdown' ? { kind: 'crashed', error: this.lastError() } : reason;
    this.exitReason = exitReason;
    this.flushUndelivered();
    system.unregister(this);
    const watchers = this.watchers;
    this.watchers = undefined;
    if (watchers !== undefined) {
      for (const watcher of watchers) watcher.notifyTerminated(this, exitReason);
    }
    const watching = this.watching;
    this.watching = undefined;
    if (watching !== undefined) {
      for (const target of watching) if (target instanceof SupervisingCell) target.watchers?.delete(this);
    }
    if (system.observed) {
      system.emit({
        type: 'actor-stopped',
        at: system.clock.now(),
        address: this.address,
        reason: exitReason.kind as 'normal' | 'shutdown' | 'crashed',
      });
    }
    const exitListeners = this.takeExitListeners();
    if (exitListeners !== undefined) {
      for (const exitListener of exitListeners) {
        try {
          exitListener(this);
        } catch (error) {
          system.reportDefect(this.address, error);
        }
      }
    }
    system.checkIdle();
  }
}

function ignore(): void {}

/** True for the failure a supervisor reports when it gives up. */
function gaveUp(error: Error): boolean {
  return TroupeError.is(error, 'ERR_RESTART_INTENSITY');
}
