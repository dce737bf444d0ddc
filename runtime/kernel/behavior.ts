import { type AnyProtocol, invalidOption, type MessageSpec, TroupeError } from '../../protocols/index.js';
import type { ActorRef, Behavior, BehaviorDefinition, Handlers } from './api.js';
import { nonNegative, type ResolvedMailbox, resolveMailbox, systemDefaults } from './options.js';
import { type RestartPolicy, resolveRestartPolicy } from './supervision/policy.js';

/** A handler table: message name to handler, with no prototype so names like `constructor` are safe. */
export type HandlerTable = Record<string, (body: unknown, ctx: unknown) => unknown>;

/** What the kernel keeps of a behaviour. */
export interface CompiledBehavior {
  readonly protocols: readonly AnyProtocol[];
  readonly kind: 'worker' | 'supervisor';
  readonly definition: BehaviorDefinition<any, any>;
  readonly table: HandlerTable;
  /** Message name to its spec and protocol, for validation and wire types. */
  readonly specs: Record<string, { readonly spec: MessageSpec; readonly protocol: string }>;
  readonly handlerDeadlineMs: number | undefined;
  /** Mailbox overrides of the behaviour (spawn options override these in turn). */
  readonly mailbox: Partial<ResolvedMailbox> | undefined;
  /** For supervisors: the policy over their children, and whether stopped children keep their slot. */
  readonly supervision: RestartPolicy | undefined;
  readonly retainChildren: boolean;
  /** For supervisors that decide per child (the activations of named actors): see {@link Decider}. */
  readonly decide: Decider | undefined;
  /** A check each message passes at its send, before it is queued (see {@link withSendCheck}). */
  readonly checkSend: SendCheck | undefined;
}

/**
 * A check of a message at its send: throws (a typed error) to refuse it, so `tell` throws and `ask`
 * rejects before the message is queued. `to` is the actor sent to.
 */
export type SendCheck = (type: string, body: unknown, to: ActorRef<any>) => void;

/**
 * The behaviour `b` with `check` run on every message sent to its actors, synchronously at `tell`
 * and `ask` (an isolated actor's proxy refuses there what cannot cross to its host, rather than
 * later in its handler).
 */
export function withSendCheck<B extends Behavior<any, any>>(b: B, check: SendCheck): B {
  return Object.freeze({ ...compiled(b), checkSend: check }) as unknown as B;
}

/**
 * What a supervisor with its own decisions does with a child that exited (`error` undefined for a
 * normal exit): restart it alone after a delay, stop it for good, or leave it to the restart policy
 * (undefined). The hook keeps its own restart accounting; the policy's window is not touched.
 */
export type Decider = (
  child: ActorRef<any>,
  error: Error | undefined,
) => { readonly restartAfterMs: number } | 'stop' | undefined;

/**
 * Compiles a behaviour: state, a handler per message of each declared protocol, lifecycle hooks.
 * A missing handler is a compile error, and is rejected here too.
 *
 * @throws TroupeError `ERR_MISSING_HANDLER` when a message of a declared protocol has no handler;
 * `ERR_PROTOCOL_CONFLICT` when two protocols share a message name; `ERR_INVALID_OPTION` for bad options.
 * @example
 * ```ts
 * const counter = behavior({
 *   protocols: [Counter],
 *   initialState: () => ({ count: 0 }),
 *   handlers: {
 *     add: ({ by }, ctx) => { ctx.state.count += by; },
 *     get: (_body, ctx) => ctx.state.count,
 *   },
 * });
 * ```
 */
export function behavior<const P extends AnyProtocol, S = undefined>(
  definition: BehaviorDefinition<P, S>,
): Behavior<P, S> {
  return compile(definition, 'worker', undefined, false) as unknown as Behavior<P, S>;
}

/**
 * Builds a behaviour that supervises its children under `supervision`; used by the supervisors layer.
 * `retainChildren` keeps a stopped non-temporary child's slot so a later group restart starts it again (OTP).
 */
export function supervisingBehavior<const P extends AnyProtocol, S = undefined>(
  definition: BehaviorDefinition<P, S>,
  supervision: Partial<RestartPolicy>,
  retainChildren: boolean,
  decide?: Decider,
): Behavior<P, S> {
  const policy = resolveRestartPolicy(supervision, undefined, 'supervision');
  return compile(definition, 'supervisor', policy, retainChildren, decide) as unknown as Behavior<P, S>;
}

/** The compiled form behind a {@link Behavior}. */
export function compiled(b: Behavior<any, any>): CompiledBehavior {
  const c = b as unknown as CompiledBehavior;
  if (typeof c !== 'object' || c === null || c.table === undefined) {
    throw invalidOption('behavior', 'not a behaviour; build it with behavior()', b);
  }
  return c;
}

const tables = new WeakMap<object, HandlerTable>();

/** Builds (and caches) the handler table for `handlers` over the messages of `specs`. */
/**
 * The prototype of handler tables: empty, without Object.prototype, so a lookup finds only the
 * table's own handlers (never `toString`). A table made from it stays in V8's fast mode, where one made
 * with Object.create(null) is a hash table: the run loop's lookup is then an inline-cached load.
 */
const NO_INHERITED: object = Object.freeze(Object.create(null));

export function handlerTable(
  handlers: Handlers<any, any>,
  specs: CompiledBehavior['specs'],
  where: string,
): HandlerTable {
  if (typeof handlers !== 'object' || handlers === null)
    throw invalidOption('handlers', 'must be an object', handlers);
  const cached = tables.get(handlers);
  if (cached !== undefined) return cached;
  const table = Object.create(NO_INHERITED) as HandlerTable;
  for (const [name, { protocol }] of Object.entries(specs)) {
    const handler = (handlers as Record<string, unknown>)[name];
    if (typeof handler !== 'function') {
      throw new TroupeError(
        'ERR_MISSING_HANDLER',
        `${where} has no handler for "${name}" of protocol "${protocol}"`,
        { details: { message: name, protocol } },
      );
    }
    table[name] = handler as HandlerTable[string];
  }
  tables.set(handlers, table);
  return table;
}

function compile(
  definition: BehaviorDefinition<any, any>,
  kind: 'worker' | 'supervisor',
  supervision: RestartPolicy | undefined,
  retainChildren: boolean,
  decide?: Decider,
): CompiledBehavior {
  if (typeof definition !== 'object' || definition === null) {
    throw invalidOption('behavior', 'must be an object', definition);
  }
  const { protocols } = definition;
  if (!Array.isArray(protocols)) throw invalidOption('protocols', 'must be an array of protocols', protocols);
  const specs = Object.create(null) as Record<string, { spec: MessageSpec; protocol: string }>;
  for (const protocol of protocols) {
    if (typeof protocol?.name !== 'string' || typeof protocol.messages !== 'object') {
      throw invalidOption('protocols', 'each entry must come from defineProtocol()', protocol);
    }
    for (const [name, spec] of Object.entries(protocol.messages as Record<string, MessageSpec>)) {
      const other = specs[name];
      if (other !== undefined) {
        throw new TroupeError(
          'ERR_PROTOCOL_CONFLICT',
          `message "${name}" is defined by both "${other.protocol}" and "${protocol.name}"`,
          { details: { message: name, protocols: [other.protocol, protocol.name] } },
        );
      }
      specs[name] = { spec, protocol: protocol.name };
    }
  }
  for (const hook of [
    'initialState',
    'preStart',
    'postStop',
    'preRestart',
    'postRestart',
    'terminated',
  ] as const) {
    const value = definition[hook];
    if (value !== undefined && typeof value !== 'function')
      throw invalidOption(hook, 'must be a function', value);
  }
  const { capabilities } = definition;
  if (
    capabilities !== undefined &&
    typeof capabilities !== 'function' &&
    (typeof capabilities !== 'object' ||
      capabilities === null ||
      Object.values(capabilities).some((score) => typeof score !== 'number' || Number.isNaN(score)))
  ) {
    throw invalidOption('capabilities', 'must be scores by capability name, or a function', capabilities);
  }
  const handlerDeadlineMs =
    definition.handlerDeadlineMs === undefined
      ? undefined
      : nonNegative('handlerDeadlineMs', definition.handlerDeadlineMs);
  const mailbox =
    definition.mailbox === undefined
      ? undefined
      : resolveMailbox(definition.mailbox, systemDefaults.mailbox, 'mailbox') && definition.mailbox;
  const table = handlerTable(
    definition.handlers,
    specs,
    `behaviour of ${protocols.map((p) => p.name).join(', ') || 'no protocol'}`,
  );
  return Object.freeze({
    protocols: Object.freeze([...protocols]),
    kind,
    definition,
    table,
    specs,
    handlerDeadlineMs,
    mailbox,
    supervision,
    retainChildren,
    decide,
    checkSend: undefined,
  });
}
