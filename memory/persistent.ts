import {
  type Address,
  type AnyProtocol,
  type AskSpec,
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
import { corrupt, type Journal, type NewEvent } from './journal.js';

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
   * persists nothing again. Defaults to the body's `commandId` field when it is a string.
   */
  readonly commandId?: (body: unknown, type: string) => string | undefined;
  /** Save a snapshot (the state as JSON) every this many events. No snapshots by default. */
  readonly snapshotEvery?: number;
  /** With snapshots: delete the events each snapshot covers (retention). Defaults to false. */
  readonly pruneOnSnapshot?: boolean;
  readonly mailbox?: MailboxOptions;
}

interface Incarnation {
  readonly stream: string;
  version: number;
}

function checkedEvent(event: NewEvent, checked: Validated): NewEvent {
  if (!checked.ok) throw checked.error;
  return { type: event.type, data: checked.value };
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
 * fence, an outage), crashes the actor: nothing was persisted, and its supervisor restarts it from
 * the journal.
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
    let state = definition.initialState();
    let version = 0;
    const snapshot = await journal.loadSnapshot(stream);
    if (snapshot !== undefined) {
      state = snapshot.state as S;
      version = snapshot.version;
    }
    const page = 5000;
    for (;;) {
      const batch = await journal.readStream(stream, { fromVersion: version + 1, limit: page });
      for (const event of batch) {
        const schema = schemas[event.type];
        if (schema === undefined)
          throw corrupt(stream, event.version, `has the unknown type "${event.type}"`);
        let checked = validate(schema, event.data, `event ${event.version} of "${stream}"`);
        if (checked instanceof Promise) checked = await checked;
        if (!checked.ok) throw corrupt(stream, event.version, 'fails its schema', checked.error);
        state = appliers[event.type]!(state, checked.value);
        version = event.version;
      }
      if (batch.length < page) break;
    }
    ctx.state = state;
    incarnations.set(ctx, { stream, version });
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
    let duplicate = false;
    if (toAppend !== undefined && toAppend.length > 0) {
      const incarnation = incarnations.get(ctx)!;
      const checked: NewEvent[] = new Array(toAppend.length);
      for (let i = 0; i < toAppend.length; i++) {
        const one = checkEvent(toAppend[i]!, i);
        checked[i] = one instanceof Promise ? await one : (one as NewEvent);
      }
      const before = incarnation.version;
      const result = await journal.append(incarnation.stream, checked, {
        expectedVersion: before,
        messageId: commandId(body, type),
        fence: activationFence(ctx),
      });
      duplicate = result.duplicate;
      if (!duplicate) {
        let state = ctx.state;
        for (const event of checked) state = appliers[event.type]!(state, event.data);
        ctx.state = state;
        incarnation.version = result.toVersion;
        if (
          snapshotEvery !== undefined &&
          Math.floor(before / snapshotEvery) < Math.floor(result.toVersion / snapshotEvery)
        ) {
          await journal.saveSnapshot(incarnation.stream, result.toVersion, state);
          if (pruneOnSnapshot) await journal.pruneToSnapshot(incarnation.stream);
        }
      }
    }
    if (!duplicate && effect.thenRun !== undefined) await effect.thenRun(ctx.state);
    return effect.reply?.(ctx.state);
  };

  /** The event with its data as the schema gives it back; synchronous for synchronous schemas. */
  const checkEvent = (event: NewEvent, index: number): NewEvent | Promise<NewEvent> => {
    const schema = typeof event?.type === 'string' ? schemas[event.type] : undefined;
    if (schema === undefined) {
      throw new TroupeError(
        'ERR_VALIDATION',
        `event ${index} has the unknown type "${String(event?.type)}"`,
        {
          details: { index, type: event?.type },
        },
      );
    }
    const checked = validate(schema, event.data, `event "${event.type}"`);
    return checked instanceof Promise
      ? checked.then((c) => checkedEvent(event, c))
      : checkedEvent(event, checked);
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
