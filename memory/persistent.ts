import {
  type AnyProtocol,
  type AskSpec,
  type Infer,
  invalidOption,
  type MessageMap,
  type TellSpec,
  TroupeError,
} from '../protocols/index.js';
import {
  type ActorContext,
  type Behavior,
  type BehaviorDefinition,
  behavior,
  type MailboxOptions,
} from '../runtime/index.js';
import type { NewEvent } from './journal.js';
import {
  checkStreamDefinition,
  type EventOf,
  type EventSchemas,
  type PersistentStream,
  recoverStream,
  type StreamDefinition,
} from './persistent-stream.js';

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

/** How a persistent actor is defined: its stream (see {@link StreamDefinition}) and its commands. */
export interface PersistentDefinition<P extends AnyProtocol, S, E extends EventSchemas>
  extends Omit<BehaviorDefinition<P, S>, 'handlers' | 'initialState'>,
    StreamDefinition<S, E> {
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
  /** The mailbox of each actor. */
  readonly mailbox?: MailboxOptions;
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
 * latest snapshot and the events after it (see {@link recoverStream}); a corrupt event fails the
 * recovery with `ERR_JOURNAL_CORRUPT` naming the stream and version. With `snapshotEvery`, the
 * snapshot is saved after the command's side effects.
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
  checkStreamDefinition(definition as unknown as StreamDefinition<unknown, EventSchemas>);
  const { commands } = definition;
  const commandId = definition.commandId ?? defaultCommandId;
  if (typeof commandId !== 'function') throw invalidOption('commandId', 'must be a function', commandId);
  /** Each incarnation's stream: a command that outlived its incarnation must not touch the next one's state. */
  const streams = new WeakMap<object, PersistentStream<S>>();

  const recover = async (ctx: ActorContext<S, P>): Promise<void> => {
    const { stream, state } = await recoverStream(ctx, definition);
    ctx.state = state;
    streams.set(ctx, stream);
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
    const before = ctx.state;
    if (toAppend === undefined || toAppend.length === 0) {
      if (effect.thenRun !== undefined) await effect.thenRun(before);
      return effect.reply?.(before);
    }
    const stream = streams.get(ctx)!;
    const { state, duplicate } = await stream.append(before, toAppend, { messageId: commandId(body, type) });
    // The actor may have restarted while the append was in flight: the new incarnation recovered
    // these events from the journal, so its state is left alone.
    const current = streams.get(ctx) === stream;
    // A redelivered command: its events are in the state already, and nothing new happened.
    if (duplicate) return effect.reply?.(current ? ctx.state : state);
    if (current) ctx.state = state;
    if (effect.thenRun !== undefined) await effect.thenRun(state);
    // After the side effects: a snapshot is only an optimisation of the next recovery.
    if (current) await stream.snapshotIfDue(state);
    return effect.reply?.(state);
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
