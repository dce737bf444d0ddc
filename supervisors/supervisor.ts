import { z } from 'zod';
import { type AnyProtocol, ask, defineProtocol, invalidOption, TroupeError } from '../protocols/index.js';
import type {
  ActorContext,
  ActorRef,
  Backoff,
  Behavior,
  MailboxOptions,
  RestartPolicy,
  RestartType,
  SpawnOptions,
  Strategy,
} from '../runtime/index.js';
import {
  checkSpawnOptions,
  childNamed,
  childSlots,
  deleteChildSlot,
  describe,
  ownBehavior,
  restartChildSlot,
  spawnAndStart,
  stopChildSlot,
  supervisingBehavior,
  withContext,
} from '../runtime/internal.js';

/** What a supervisor starts: one child, by id. */
export interface ChildSpec {
  /** The child's name, unique within its supervisor. */
  readonly id: string;
  readonly behavior: Behavior<any, any>;
  /** Defaults to `permanent`, as in OTP. */
  readonly restart?: RestartType;
  /** How long the supervisor waits for the child to stop. Defaults to the system's `shutdownMs`. */
  readonly shutdownMs?: number;
  readonly mailbox?: MailboxOptions;
  /** How the child supervises its own children (when it is a plain actor that spawns some). */
  readonly supervision?: Partial<RestartPolicy>;
}

/** Options of {@link supervisor}. */
export interface SupervisorOptions {
  /** Defaults to `one_for_one`. */
  readonly strategy?: Strategy;
  /** Most restarts within `periodMs`; one more and the supervisor fails upward. Defaults to 3. */
  readonly intensity?: number;
  /** Defaults to 5000. */
  readonly periodMs?: number;
  /** Delay between restarts; none by default. */
  readonly backoff?: Backoff;
  /** Started in order, each after the previous one's `preStart`; stopped in reverse order. */
  readonly children: readonly ChildSpec[];
}

/** Options of {@link dynamicSupervisor}. */
export interface DynamicSupervisorOptions {
  /** Defaults to 3. */
  readonly intensity?: number;
  /** Defaults to 5000. */
  readonly periodMs?: number;
  readonly backoff?: Backoff;
  /** Most children alive at once; `startChild` past it rejects with `ERR_MAX_CHILDREN`. No limit by default. */
  readonly maxChildren?: number;
}

/** One child as `whichChildren` reports it. */
export interface ChildInfo {
  readonly id: string;
  readonly address: string;
  readonly status: 'starting' | 'running' | 'suspended' | 'restarting' | 'stopping' | 'stopped';
  readonly restarts: number;
}

const childInfo = z.object({
  id: z.string(),
  address: z.string(),
  status: z.enum(['starting', 'running', 'suspended', 'restarting', 'stopping', 'stopped']),
  restarts: z.number(),
});

/** What every supervisor answers, locally or (later) remotely. */
export const SupervisorProtocol = defineProtocol('troupe.supervisor', {
  whichChildren: ask(z.object({}), z.array(childInfo)),
  countChildren: ask(z.object({}), z.object({ specs: z.number(), active: z.number() })),
});

/** A ref to a supervisor. */
export type SupervisorRef = ActorRef<typeof SupervisorProtocol>;

/** Defaults of {@link supervisor} and {@link dynamicSupervisor} (Elixir's: 3 restarts in 5 seconds). */
export const supervisorDefaults = { strategy: 'one_for_one', intensity: 3, periodMs: 5000 } as const;

const handlers = {
  whichChildren: (_body: object, ctx: ActorContext<unknown, typeof SupervisorProtocol>) => listChildren(ctx),
  countChildren: (_body: object, ctx: ActorContext<unknown, typeof SupervisorProtocol>) => {
    const all = listChildren(ctx);
    return { specs: all.length, active: all.filter((c) => c.status !== 'stopped').length };
  },
};

function listChildren(ctx: ActorContext<unknown, typeof SupervisorProtocol>): ChildInfo[] {
  return childSlots(ctx).map(({ name, ref }) => {
    const state = describe(ref) ?? { status: 'running' as const, restarts: 0 };
    return { id: name, address: ref.address, status: state.status, restarts: state.restarts };
  });
}

/**
 * A supervisor with static children (OTP `supervisor`): it starts them in order, each after the
 * previous one has started, restarts them under `strategy` within `intensity`/`periodMs`, and stops
 * them in reverse order. A stopped permanent or transient child keeps its slot, so a group restart
 * (one_for_all, rest_for_one) starts it again, as in OTP.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for an unknown strategy, bad numbers or duplicate ids.
 * @example
 * ```ts
 * const app = system.spawn(supervisor({
 *   strategy: 'rest_for_one', intensity: 3, periodMs: 5000,
 *   children: [{ id: 'db', behavior: db }, { id: 'api', behavior: api, restart: 'transient' }],
 * }), { name: 'app' });
 * ```
 */
export function supervisor(options: SupervisorOptions): Behavior<typeof SupervisorProtocol, undefined> {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('supervisor', 'must be an object', options);
  if (!Array.isArray(options.children)) throw invalidOption('children', 'must be an array of child specs');
  const ids = new Set<string>();
  for (const spec of options.children) {
    checkSpec(spec);
    if (ids.has(spec.id)) throw invalidOption('children', `duplicate child id "${spec.id}"`, spec.id);
    ids.add(spec.id);
  }
  const children = [...options.children];
  return supervisingBehavior(
    {
      protocols: [SupervisorProtocol],
      handlers,
      preStart: async (ctx) => {
        for (const spec of children) await spawnAndStart(ctx, spec.behavior, spawnOptions(spec));
      },
    },
    policyOf(options),
    true,
  );
}

/**
 * A supervisor whose children are started at run time with {@link startChild} (OTP
 * `simple_one_for_one`, Elixir `DynamicSupervisor`). Always one_for_one.
 */
export function dynamicSupervisor(
  options: DynamicSupervisorOptions = {},
): Behavior<typeof SupervisorProtocol, undefined> {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('dynamicSupervisor', 'must be an object');
  const maxChildren = options.maxChildren ?? Number.POSITIVE_INFINITY;
  if (!(maxChildren >= 1) || (Number.isFinite(maxChildren) && !Number.isInteger(maxChildren))) {
    throw invalidOption('maxChildren', 'must be an integer >= 1', options.maxChildren);
  }
  const b = supervisingBehavior(
    { protocols: [SupervisorProtocol], handlers },
    policyOf({ ...options, strategy: 'one_for_one' }),
    false,
  );
  dynamicLimits.set(b, maxChildren);
  return b;
}

const dynamicLimits = new WeakMap<object, number>();

/**
 * Starts a child under a supervisor and resolves when it has started. On a static supervisor the
 * spec is added to its children (OTP `start_child`).
 *
 * @throws TroupeError `ERR_NAME_TAKEN` when the id is in use, `ERR_MAX_CHILDREN` past a dynamic
 * supervisor's limit, `ERR_START_FAILED` when the child's `preStart` throws.
 */
export function startChild<P extends AnyProtocol>(
  sup: SupervisorRef,
  spec: ChildSpec & { behavior: Behavior<P, any> },
): Promise<ActorRef<P>> {
  checkSpec(spec);
  return withContext(sup, async (ctx) => {
    const limit = limitOf(ctx);
    if (limit !== undefined && ctx.children().length >= limit) {
      throw new TroupeError('ERR_MAX_CHILDREN', `${sup.address} already has ${limit} children`, {
        details: { supervisor: sup.address, maxChildren: limit },
      });
    }
    return spawnAndStart(ctx, spec.behavior, spawnOptions(spec));
  }) as Promise<ActorRef<P>>;
}

/** Stops a child without restarting it. A static supervisor keeps its spec (see {@link restartChild}). */
export function terminateChild(sup: SupervisorRef, id: string): Promise<void> {
  return withContext(sup, (ctx) => {
    const child = childNamed(ctx, id);
    if (child === undefined) throw noChild(sup, id);
    return stopChildSlot(ctx, child, limitOf(ctx) === undefined);
  });
}

/** Starts again a child of a static supervisor that was terminated. */
export function restartChild(sup: SupervisorRef, id: string): Promise<void> {
  return withContext(sup, (ctx) => {
    const child = childNamed(ctx, id);
    if (child === undefined) throw noChild(sup, id);
    return restartChildSlot(ctx, child);
  });
}

/** Forgets a terminated child's spec. */
export function deleteChild(sup: SupervisorRef, id: string): Promise<void> {
  return withContext(sup, (ctx) => {
    const child = childNamed(ctx, id);
    if (child === undefined) throw noChild(sup, id);
    deleteChildSlot(ctx, child);
  });
}

/** Status and restart count of a local actor, for tests and tools. */
export function childState(
  ref: ActorRef<any>,
): { status: ChildInfo['status']; restarts: number } | undefined {
  return describe(ref);
}

function limitOf(ctx: ActorContext<any, any>): number | undefined {
  return dynamicLimits.get(ownBehavior(ctx));
}

function noChild(sup: SupervisorRef, id: string): TroupeError {
  return new TroupeError('ERR_ILLEGAL_STATE', `${sup.address} has no child "${id}"`, { details: { id } });
}

const RESTART_TYPES: readonly RestartType[] = ['permanent', 'transient', 'temporary'];

function checkSpec(spec: ChildSpec): void {
  if (typeof spec !== 'object' || spec === null)
    throw invalidOption('children', 'each child spec must be an object');
  if (typeof spec.id !== 'string' || spec.id.length === 0)
    throw invalidOption('children.id', 'must be a non-empty string');
  if (typeof spec.behavior !== 'object' || spec.behavior === null) {
    throw invalidOption(`children.${spec.id}.behavior`, 'must be a behaviour');
  }
  if (spec.restart !== undefined && !RESTART_TYPES.includes(spec.restart)) {
    throw invalidOption(
      `children.${spec.id}.restart`,
      `use one of ${RESTART_TYPES.join(', ')}`,
      spec.restart,
    );
  }
  checkSpawnOptions(spec.behavior, spawnOptions(spec));
}

function spawnOptions(spec: ChildSpec): SpawnOptions {
  const options: { -readonly [K in keyof SpawnOptions]: SpawnOptions[K] } = {
    name: spec.id,
    restart: spec.restart ?? 'permanent',
  };
  if (spec.shutdownMs !== undefined) options.shutdownMs = spec.shutdownMs;
  if (spec.mailbox !== undefined) options.mailbox = spec.mailbox;
  if (spec.supervision !== undefined) options.supervision = spec.supervision;
  return options;
}

function policyOf(options: {
  strategy?: Strategy;
  intensity?: number;
  periodMs?: number;
  backoff?: Backoff;
}): Partial<RestartPolicy> {
  return {
    strategy: options.strategy ?? supervisorDefaults.strategy,
    intensity: options.intensity ?? supervisorDefaults.intensity,
    periodMs: options.periodMs ?? supervisorDefaults.periodMs,
    backoff: options.backoff,
  };
}
