import {
  type Address,
  type AnyProtocol,
  type AskSpec,
  asError,
  type Infer,
  invalidOption,
  type MessageMap,
  parseAddress,
  type Schema,
  type TellSpec,
  TroupeError,
  type Validated,
  validate,
} from '../protocols/index.js';
import {
  type ActorContext,
  activationFence,
  type Behavior,
  type BehaviorDefinition,
  behavior,
  type MailboxOptions,
} from '../runtime/index.js';
import { corrupt, type Journal, type NewEvent, streamPages } from './journal.js';

/** The event schemas of a persistent behaviour, by event type. */
export type EventSchemas = Readonly<Record<string, Schema>>;

/** An event of `E`: its type and its data. */
export type EventOf<E extends EventSchemas> = {
  [K in keyof E & string]: { readonly type: K; readonly data: Infer<E[K]> };
}[keyof E & string];

/** What a command handler decides: events to persist, then a reply and side effects. */
export interface Effect<E, S, R> {
  /** Persisted together, durably, before `reply` and `thenRun`; then applied to the state in order. */
  readonly events?: readonly E[];
  /** The reply of an ask, from the state after the events are applied. */
  readonly reply?: (state: S) => R;
  /**
   * Side effects (tells, calls out), after the events are durable and applied. Not run for a
   * redelivered command id: its events were persisted before and nothing new happened. (Not named
   * `then`: an effect with a `then` method would be a thenable, and awaiting it would call it.)
   */
  readonly thenRun?: (state: S) => void | PromiseLike<void>;
}

type MaybePromise<T> = T | PromiseLike<T>;

type CommandFor<Spec, S, P extends AnyProtocol, E> =
  Spec extends AskSpec<infer B, infer R>
    ? (
        body: Infer<B>,
        ctx: ActorContext<S, P>,
      ) => MaybePromise<Effect<E, S, Infer<R>> & { reply: (state: S) => Infer<R> }>
    : Spec extends TellSpec<infer B>
      ? (body: Infer<B>, ctx: ActorContext<S, P>) => MaybePromise<Omit<Effect<E, S, never>, 'reply'> | void>
      : never;

/** One command handler per message of every protocol in `P`. */
export type CommandHandlers<P extends AnyProtocol, S, E> = {
  [K in keyof MessageMap<P> & string]: CommandFor<MessageMap<P>[K], S, P, E>;
};

/** How a persistent actor is defined. */
export interface PersistentDefinition<P extends AnyProtocol, S, E extends EventSchemas>
  extends Omit<BehaviorDefinition<P, S>, 'handlers' | 'initialState'> {
  /** Where the events go. */
  readonly journal: Journal;
  /**
   * The stream of this actor: a string, or a function of the actor's address and name (the last
   * part of its path, which for a named actor is its key), so each instance has its own.
   */
  readonly persistenceId: string | ((self: { readonly address: Address; readonly name: string }) => string);
  /** The state before any event. */
  readonly initialState: () => S;
  /** The schema of each event type; events are checked before they are appended and when read. */
  readonly events: E;
  /** Folds one event into the state. Must be pure: it runs again at every recovery. */
  readonly apply: { readonly [K in keyof E & string]: (state: S, data: Infer<E[K]>) => S };
  /**
   * Commands: one handler per message. A handler reads `ctx.state` and returns the events to
   * persist; it must not change the state itself.
   */
  readonly commands: CommandHandlers<P, S, EventOf<E>>;
  /**
   * The id of a command, for effectively-once handling: a command whose id the stream already holds
   * persists nothing again. Defaults to the body's `commandId` field when it is a string. With
   * `pruneOnSnapshot`, the ids of pruned appends are forgotten (the newest append's stays).
   */
  readonly commandId?: (body: unknown, type: string) => string | undefined;
  /**
   * Save a snapshot every this many events, after the command's side effects. No snapshots by
   * default. The state is stored as JSON, so it must be plain JSON data (a Map or a Date would come
   * back changed); a snapshot that fails is tried again at the next command, and its first failure
   * in an incarnation is a `snapshot-failed` event.
   */
  readonly snapshotEvery?: number;
  /** With snapshots: delete the events each snapshot covers (retention). Defaults to false. */
  readonly pruneOnSnapshot?: boolean;
  /** The mailbox of each actor. */
  readonly mailbox?: MailboxOptions;
}

interface Incarnation {
  readonly stream: string;
  /** The activation's fencing token, fixed for its life (undefined for an actor that is not named). */
  readonly fence: number | undefined;
  version: number;
  /** The version of the newest snapshot this incarnation knows. */
  snapshotVersion: number;
  /** Its first failed snapshot was reported: later ones would say the same. */
  snapshotReported: boolean;
}

function validValue(
  checked: Validated,
  refuse: (problem: string, cause?: TroupeError) => TroupeError,
): unknown {
  if (!checked.ok) throw refuse('fails its schema', checked.error);
  return checked.value;
}

/** A command's event that is not one of the behaviour's, or fails its schema: refused at append. */
function refuseEvent(problem: string, cause?: TroupeError): TroupeError {
  return cause ?? new TroupeError('ERR_VALIDATION', `an event ${problem}`);
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

const defaultCommandId = (body: unknown): string | undefined => {
  const id = (body as { commandId?: unknown } | null)?.commandId;
  return typeof id === 'string' && id !== '' ? id : undefined;
};

/**
 * A behaviour whose state is event-sourced: commands become events, events are appended to the
 * journal (with the activation's fence, for a named actor) before the reply and before any side
 * effect, then folded into the state. On start and on every restart the actor recovers from its
 * latest snapshot and the events after it; a corrupt event fails the recovery with
 * `ERR_JOURNAL_CORRUPT` naming the stream and version.
 *
 * A command whose events fail their schemas, or that the journal refuses (a conflict, a stale
 * fence, an outage), crashes the actor, and its supervisor restarts it from the journal. Nothing was
 * persisted, but after an outage (`ERR_JOURNAL_UNAVAILABLE`) the events may have been: a retry with
 * the same command id is then a duplicate and appends nothing.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad definition; `ERR_MISSING_HANDLER` for a missing
 * command handler or event applier.
 * @example
 * ```ts
 * const account = persistentBehavior({
 *   protocols: [Account],
 *   journal,
 *   persistenceId: ({ name }) => `account-${name}`,
 *   initialState: () => ({ balance: 0 }),
 *   events: { deposited: z.object({ amount: z.number() }) },
 *   apply: { deposited: (s, e) => ({ balance: s.balance + e.amount }) },
 *   commands: {
 *     deposit: ({ amount }) => ({ events: [{ type: 'deposited', data: { amount } }], reply: (s) => s.balance }),
 *   },
 * });
 * ```
 */
export function persistentBehavior<const P extends AnyProtocol, S, const E extends EventSchemas>(
  definition: PersistentDefinition<P, S, E>,
): Behavior<P, S> {
  if (typeof definition !== 'object' || definition === null)
    throw invalidOption('behavior', 'must be an object');
  const {
    journal,
    persistenceId,
    events,
    apply,
    commands,
    snapshotEvery,
    pruneOnSnapshot = false,
  } = definition;
  if (typeof journal?.append !== 'function') throw invalidOption('journal', 'must be a journal', journal);
  if (typeof persistenceId !== 'function' && (typeof persistenceId !== 'string' || persistenceId === ''))
    throw invalidOption('persistenceId', 'must be a non-empty string or a function', persistenceId);
  if (typeof definition.initialState !== 'function')
    throw invalidOption('initialState', 'must be a function', definition.initialState);
  if (typeof events !== 'object' || events === null)
    throw invalidOption('events', 'must be an object of schemas', events);
  if (typeof apply !== 'object' || apply === null)
    throw invalidOption('apply', 'must be an object of functions', apply);
  for (const type of Object.keys(events)) {
    if (typeof (events as Record<string, Schema>)[type]?.['~standard']?.validate !== 'function')
      throw invalidOption(`events.${type}`, 'must be a Standard Schema', events[type]);
    if (typeof (apply as Record<string, unknown>)[type] !== 'function') {
      throw new TroupeError(
        'ERR_MISSING_HANDLER',
        `the persistent behaviour has no applier for event "${type}"`,
        {
          details: { event: type },
        },
      );
    }
  }
  if (snapshotEvery !== undefined && (!Number.isInteger(snapshotEvery) || snapshotEvery < 1))
    throw invalidOption('snapshotEvery', 'must be a positive integer', snapshotEvery);
  const commandId = definition.commandId ?? defaultCommandId;
  if (typeof commandId !== 'function') throw invalidOption('commandId', 'must be a function', commandId);
  const appliers = apply as Record<string, (state: S, data: unknown) => S>;
  const schemas = events as Record<string, Schema>;
  const incarnations = new WeakMap<object, Incarnation>();

  const streamOf = (ctx: ActorContext<S, P>): string => {
    if (typeof persistenceId === 'string') return persistenceId;
    const { address } = ctx.self;
    const path = parseAddress(address).path;
    const id = persistenceId({ address, name: path.slice(path.lastIndexOf('/') + 1) });
    if (typeof id !== 'string' || id === '')
      throw invalidOption('persistenceId', `gave no stream name for ${address}`, id);
    return id;
  };

  const recover = async (ctx: ActorContext<S, P>): Promise<void> => {
    const stream = streamOf(ctx);
    const fence = activationFence(ctx);
    // A named actor's new activation claims its stream at once, so a stale activation elsewhere
    // cannot write even before this one has appended anything.
    if (fence !== undefined) await journal.append(stream, [], { fence });
    let state = definition.initialState();
    let version = 0;
    const snapshot = await journal.loadSnapshot(stream);
    if (snapshot !== undefined) {
      state = snapshot.state as S;
      version = snapshot.version;
    }
    const snapshotVersion = version;
    for await (const page of streamPages(journal, stream, version + 1)) {
      for (const event of page) {
        const refuse = (problem: string, cause?: TroupeError) =>
          corrupt(stream, event.version, problem, cause);
        let data = validData(event.type, event.data, refuse);
        if (data instanceof Promise) data = await data;
        state = appliers[event.type]!(state, data);
        version = event.version;
      }
    }
    ctx.state = state;
    incarnations.set(ctx, { stream, fence, version, snapshotVersion, snapshotReported: false });
  };

  const run = (type: string, body: unknown, ctx: ActorContext<S, P>): unknown => {
    const handler = (commands as Record<string, (b: unknown, c: unknown) => unknown>)[type]!;
    const effect = handler(body, ctx) as MaybePromise<Effect<NewEvent, S, unknown> | undefined>;
    // Most handlers decide synchronously: no extra turn for them.
    if (isPromiseLike(effect)) return Promise.resolve(effect).then((e) => perform(e, type, body, ctx));
    if (effect === undefined || effect === null) return undefined;
    // A query (no events, no side effects) replies in the same turn.
    if ((effect.events === undefined || effect.events.length === 0) && effect.thenRun === undefined)
      return effect.reply?.(ctx.state);
    return perform(effect, type, body, ctx);
  };

  const perform = async (
    effect: Effect<NewEvent, S, unknown> | undefined,
    type: string,
    body: unknown,
    ctx: ActorContext<S, P>,
  ): Promise<unknown> => {
    if (effect === undefined || effect === null) return undefined;
    const toAppend = effect.events;
    let state = ctx.state;
    if (toAppend === undefined || toAppend.length === 0) {
      if (effect.thenRun !== undefined) await effect.thenRun(state);
      return effect.reply?.(state);
    }
    const incarnation = incarnations.get(ctx)!;
    const checked: NewEvent[] = new Array(toAppend.length);
    for (let i = 0; i < toAppend.length; i++) {
      const event = toAppend[i]!;
      let data = validData(event?.type, event?.data, refuseEvent);
      if (data instanceof Promise) data = await data;
      checked[i] = { type: event.type, data };
    }
    const result = await journal.append(incarnation.stream, checked, {
      expectedVersion: incarnation.version,
      messageId: commandId(body, type),
      fence: incarnation.fence,
    });
    // A redelivered command: its events are in the state already, and nothing new happened.
    if (result.duplicate) return effect.reply?.(incarnations.get(ctx) === incarnation ? ctx.state : state);
    for (const event of checked) state = appliers[event.type]!(state, event.data);
    // The actor may have restarted while the append was in flight: the new incarnation recovered
    // these events from the journal, so its state is left alone.
    const current = incarnations.get(ctx) === incarnation;
    if (current) {
      ctx.state = state;
      incarnation.version = result.toVersion;
    }
    if (effect.thenRun !== undefined) await effect.thenRun(state);
    if (
      current &&
      snapshotEvery !== undefined &&
      incarnation.version - incarnation.snapshotVersion >= snapshotEvery
    ) {
      await snapshotOf(incarnation, state, ctx);
    }
    return effect.reply?.(state);
  };

  /**
   * Saves a snapshot, and prunes when asked. Best effort: the events are durable already, so a
   * failure costs only a longer recovery; the next command tries again. The first failure of an
   * incarnation is a `snapshot-failed` event (a state that is not JSON data would otherwise fail
   * unseen forever).
   */
  const snapshotOf = async (incarnation: Incarnation, state: S, ctx: ActorContext<S, P>): Promise<void> => {
    try {
      await journal.saveSnapshot(incarnation.stream, incarnation.version, state);
      incarnation.snapshotVersion = incarnation.version;
      if (pruneOnSnapshot) await journal.pruneToSnapshot(incarnation.stream);
    } catch (error) {
      if (!incarnation.snapshotReported) {
        incarnation.snapshotReported = true;
        ctx.system.publish({
          type: 'snapshot-failed',
          address: ctx.self.address,
          stream: incarnation.stream,
          version: incarnation.version,
          error: asError(error),
        });
      }
    }
  };

  /** An event's data as its schema gives it back (a promise for an async schema). */
  const validData = (
    type: string,
    data: unknown,
    refuse: (problem: string, cause?: TroupeError) => TroupeError,
  ): unknown => {
    const schema = typeof type === 'string' ? schemas[type] : undefined;
    if (schema === undefined) throw refuse(`has the unknown type "${String(type)}"`);
    const checked = validate(schema, data, `event "${type}"`);
    return checked instanceof Promise
      ? checked.then((c) => validValue(c, refuse))
      : validValue(checked, refuse);
  };

  const handlers: Record<string, (body: unknown, ctx: ActorContext<S, P>) => unknown> = {};
  for (const protocol of definition.protocols) {
    for (const type of Object.keys(protocol.messages)) {
      if (typeof (commands as Record<string, unknown>)[type] !== 'function') {
        throw new TroupeError(
          'ERR_MISSING_HANDLER',
          `the persistent behaviour has no command handler for "${type}"`,
          {
            details: { message: type, protocol: protocol.name },
          },
        );
      }
      handlers[type] = (body, ctx) => run(type, body, ctx);
    }
  }
  const { preStart, postRestart } = definition;
  return behavior<P, S>({
    ...definition,
    handlers: handlers as unknown as BehaviorDefinition<P, S>['handlers'],
    preStart: async (ctx) => {
      await recover(ctx);
      await preStart?.(ctx);
    },
    // Without its own postRestart a restart runs preStart again, which recovers.
    ...(postRestart === undefined
      ? {}
      : {
          postRestart: async (ctx: ActorContext<S, P>, error: Error) => {
            await recover(ctx);
            await postRestart(ctx, error);
          },
        }),
  });
}
