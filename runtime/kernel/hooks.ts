import { type Address, type AnyProtocol, asError, parseAddress, TroupeError } from '../../protocols/index.js';
import { deliverEnvelope, type IngressHost, type IngressResult } from '../remoting/ingress.js';
import type { ActorContext, ActorRef, ActorStatus, ActorSystem, Behavior, SpawnOptions } from './api.js';
import { compiled } from './behavior.js';
import { Cell, cellOf, resolveCellSettings } from './cell.js';
import { systemDefaults } from './options.js';

/**
 * Runs `fn` with the actor's context in its system lane, serialized with its supervision work.
 * For building supervisors and other local tooling; the ref must be a local actor.
 *
 * @throws TroupeError `ERR_ILLEGAL_STATE` for a ref that is not a local actor; `ERR_ACTOR_STOPPED` once it stopped.
 */
export function withContext<T>(
  ref: ActorRef<any>,
  fn: (ctx: ActorContext<any, any>) => T | Promise<T>,
): Promise<T> {
  if (!(ref instanceof Cell)) {
    return Promise.reject(new TroupeError('ERR_ILLEGAL_STATE', `${ref.address} is not a local actor`));
  }
  return ref.runTask(() => fn(ref.context()));
}

/**
 * Spawns a child of the actor behind `ctx` and resolves when its `preStart` has completed (OTP's
 * synchronous start). A start failure rejects with `ERR_START_FAILED` and the child is removed.
 */
export function spawnAndStart<P extends AnyProtocol, S>(
  ctx: ActorContext<any, any>,
  behavior: Behavior<P, S>,
  options?: SpawnOptions,
): Promise<ActorRef<P>> {
  const parent = cellOf(ctx);
  return new Promise((resolve, reject) => {
    let child: Cell | undefined;
    const waiter = {
      resolve: (started: Cell) => resolve(started as unknown as ActorRef<P>),
      reject: (error: Error) => {
        if (child !== undefined) parent.stopChild(child, false).then(() => reject(error), reject);
        else reject(error);
      },
    };
    try {
      child = parent.spawnChild(behavior, options, waiter);
    } catch (error) {
      reject(error);
    }
  });
}

/**
 * Stops a child of the actor behind `ctx` without a restart. With `keepSlot` the child stays listed
 * as stopped so `restartChild` can start it again (OTP `terminate_child`).
 */
export function stopChildSlot(
  ctx: ActorContext<any, any>,
  child: ActorRef<any>,
  keepSlot: boolean,
): Promise<void> {
  const parent = cellOf(ctx);
  if (!(child instanceof Cell) || child.parentCell !== parent) {
    return Promise.reject(
      new TroupeError('ERR_ILLEGAL_STATE', `${child.address} is not a child of ${parent.address}`),
    );
  }
  return parent.stopChild(child, keepSlot);
}

/** Starts again a stopped child whose slot was kept (OTP `restart_child`). */
export function restartChildSlot(ctx: ActorContext<any, any>, child: ActorRef<any>): Promise<void> {
  const parent = cellOf(ctx);
  if (!(child instanceof Cell))
    return Promise.reject(new TroupeError('ERR_ILLEGAL_STATE', 'not a local actor'));
  return parent.restartStopped(child);
}

/** Removes a stopped child's slot (OTP `delete_child`). */
export function deleteChildSlot(ctx: ActorContext<any, any>, child: ActorRef<any>): void {
  const parent = cellOf(ctx);
  if (
    !(child instanceof Cell) ||
    child.parentCell !== parent ||
    child.alive ||
    child.statusName !== 'stopped'
  ) {
    throw new TroupeError(
      'ERR_ILLEGAL_STATE',
      `${child.address} is not a stopped child of ${parent.address}`,
    );
  }
  parent.removeChild(child);
}

/** The child named `name` of the actor behind `ctx`, alive or kept as stopped. */
export function childNamed(ctx: ActorContext<any, any>, name: string): ActorRef<any> | undefined {
  return cellOf(ctx).child(name);
}

/** Status and restart count of a local actor. */
export function describe(ref: ActorRef<any>): { status: ActorStatus; restarts: number } | undefined {
  return ref instanceof Cell ? { status: ref.statusName, restarts: ref.restarts } : undefined;
}

/** Every child slot of the actor behind `ctx`, in start order, including stopped ones a supervisor keeps. */
export function childSlots(ctx: ActorContext<any, any>): { name: string; ref: ActorRef<any> }[] {
  return cellOf(ctx)
    .slots()
    .map((c) => ({ name: c.name, ref: c as unknown as ActorRef<any> }));
}

/** The behaviour the actor behind `ctx` was spawned with. */
export function ownBehavior(ctx: ActorContext<any, any>): Behavior<any, any> {
  return cellOf(ctx).behavior as unknown as Behavior<any, any>;
}

/**
 * The fencing token of the actor behind `ctx` when it is a named actor's activation (its lease
 * revision), else undefined. A journal refuses writes that carry an older fence than it has seen.
 */
export function activationFence(ctx: ActorContext<any, any>): number | undefined {
  const cell = cellOf(ctx);
  return cell.system.fenceOf(cell);
}

/**
 * Crashes a local actor from outside its handlers, as if a handler had thrown `error`: its
 * supervisor decides (restart, stop, escalate) under its policy. For an actor whose work runs
 * elsewhere (an isolated actor whose host died). Does nothing for an actor that is not running.
 *
 * @throws TroupeError `ERR_ILLEGAL_STATE` for a ref that is not a local actor.
 */
export function crashActor(ref: ActorRef<any>, error: unknown): void {
  if (!(ref instanceof Cell)) {
    throw new TroupeError('ERR_ILLEGAL_STATE', `${ref.address} is not a local actor`);
  }
  ref.fail(asError(error), undefined);
}

/**
 * Stops a local actor as its parent would, with no restart, freeing its slot (what the parent's
 * `ctx.stop(child)` does; `system.stop` for a top-level actor): for tooling that stops actors from
 * outside (`troupe stop`), whatever their depth. Resolves once it has stopped.
 */
export function stopActor(ref: ActorRef<any>): Promise<void> {
  if (!(ref instanceof Cell)) {
    return Promise.reject(new TroupeError('ERR_ILLEGAL_STATE', `${ref.address} is not a local actor`));
  }
  return ref.stopFromParent();
}

/**
 * The live local actor at `address` in `system` (a path of this node, or a named actor activated
 * here), or undefined: for tooling that acts on actors from outside (a chaos harness crashing them
 * with {@link crashActor}).
 */
export function localActor(system: ActorSystem, address: Address): ActorRef<any> | undefined {
  const lookup = (system as unknown as { lookup?: (s: string, n: string, p: string) => unknown }).lookup;
  if (typeof lookup !== 'function') return undefined;
  const parts = parseAddress(address);
  const cell = lookup.call(system, parts.system, parts.node, parts.path);
  return cell instanceof Cell && cell.alive ? (cell as unknown as ActorRef<any>) : undefined;
}

/**
 * Delivers an envelope that crossed a process boundary into `system` (for transports). Untrusted data
 * is checked end to end and every refusal is a dead letter; see {@link IngressResult}.
 */
export function deliverFromBoundary(
  system: ActorSystem,
  data: unknown,
  now?: number,
): Promise<IngressResult> {
  return deliverEnvelope(system as unknown as IngressHost, data, now);
}

/**
 * Checks spawn options the way `spawn` would, without spawning: for specs that are spawned later
 * (a supervisor's children), so a bad option fails where it is written.
 * @throws TroupeError `ERR_INVALID_OPTION` naming the first bad option.
 */
export function checkSpawnOptions(b: Behavior<any, any>, options: SpawnOptions): void {
  resolveCellSettings(
    {
      restart: 'transient',
      shutdownMs: systemDefaults.shutdownMs,
      mailbox: systemDefaults.mailbox,
      supervision: systemDefaults.supervision,
      validateAll: false,
    },
    compiled(b),
    options,
  );
}

/** The reply of an ask that its handler detached ({@link detachReply}): settle it once, from anywhere. */
export interface DetachedReply {
  /**
   * Answers the ask, as a handler's return value would (checked against the reply schema when the
   * actor validates every message). A reply after the ask stopped waiting is a dead letter (`expired`).
   */
  resolve(value: unknown): void;
  /** Fails the ask with `error` (a `TroupeError`'s code reaches a remote asker); no-op once settled. */
  reject(error: Error): void;
  /** True once the ask has settled: answered, failed, timed out or aborted. */
  readonly settled: boolean;
  /** When the ask times out, on the system's clock (`clock.now()`): what is left for work done elsewhere. */
  readonly deadline: number;
}

/**
 * Takes the reply of the ask being handled away from the kernel, so that it can be answered later,
 * from outside the handler, while the actor goes on with its next messages (a gateway that forwards a
 * request to another framework and must not hold its mailbox until the answer comes). From then on the
 * handler's return value is not the reply and a crash of the actor does not fail the ask: only the
 * returned handle settles it, and the ask's own timeout still applies.
 *
 * @throws TroupeError `ERR_ILLEGAL_STATE` outside the handler of an ask, or when it was detached already.
 */
export function detachReply(ctx: ActorContext<any, any>): DetachedReply {
  const cell = cellOf(ctx);
  const ask = cell.detachCurrentReply();
  return {
    resolve: (value) => cell.replyDetached(ask, value),
    reject: (error) => ask.reject(error),
    get settled() {
      return ask.settled;
    },
    deadline: ask.deadline,
  };
}
