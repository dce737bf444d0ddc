import {
  type Address,
  asError,
  type Infer,
  invalidOption,
  parseAddress,
  type Schema,
  TroupeError,
  type Validated,
  validate,
} from '../protocols/index.js';
import type { ActorContext } from '../runtime/index.js';
import { activationFence } from '../runtime/internal.js';
import { corrupt, type Journal, type NewEvent, streamPages } from './journal.js';

/** The event schemas of a persistent behaviour, by event type. */
export type EventSchemas = Readonly<Record<string, Schema>>;

/** An event of `E`: its type and its data. */
export type EventOf<E extends EventSchemas> = {
  [K in keyof E & string]: { readonly type: K; readonly data: Infer<E[K]> };
}[keyof E & string];

/** How an actor's state is event-sourced: where its events go, what they are, how they fold. */
export interface StreamDefinition<S, E extends EventSchemas> {
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
   * Save a snapshot every this many events (see {@link PersistentStream.snapshotIfDue}). No
   * snapshots by default. The state is stored as JSON, so it must be plain JSON data (a Map or a
   * Date would come back changed); a snapshot that fails is tried again at the next chance, and its
   * first failure in an incarnation is a `snapshot-failed` event.
   */
  readonly snapshotEvery?: number;
  /** With snapshots: delete the events each snapshot covers (retention). Defaults to false. */
  readonly pruneOnSnapshot?: boolean;
}

/**
 * One incarnation's hold on its actor's stream: the stream's name, the activation's fence, and the
 * version it has reached. Appends go after that version with that fence, so a writer that is not
 * the newest (another incarnation appended, a newer activation claimed the stream) is refused.
 */
export interface PersistentStream<S> {
  /** The stream's name in the journal. */
  readonly name: string;
  /** The activation's fencing token, fixed for its life (undefined for an actor that is not named). */
  readonly fence: number | undefined;
  /** The version of the newest event this incarnation has read or appended. */
  readonly version: number;
  /**
   * Checks `events` against their schemas, appends them durably, then folds them into `state`.
   * With a `messageId` the stream already holds, nothing is appended and `state` comes back as it
   * was, with `duplicate: true`.
   * @throws TroupeError `ERR_VALIDATION` for an event that is not of the definition or fails its
   * schema (nothing is appended); the journal's `ERR_JOURNAL_CONFLICT`, `ERR_FENCED`,
   * `ERR_JOURNAL_UNAVAILABLE`.
   */
  append(
    state: S,
    events: readonly NewEvent[],
    options?: { readonly messageId?: string | undefined },
  ): Promise<{ readonly state: S; readonly duplicate: boolean }>;
  /**
   * Saves `state` as a snapshot at {@link version} when `snapshotEvery` events have passed since the
   * last one, and prunes when asked. Best effort: the events are durable already, so a failure costs
   * only a longer recovery; it never throws.
   */
  snapshotIfDue(state: S): Promise<void>;
}

/**
 * Checks a stream definition once, where the behaviour is built.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad journal, persistence id, initial state, event
 * schema or `snapshotEvery`; `ERR_MISSING_HANDLER` for an event type without an applier.
 */
export function checkStreamDefinition(definition: StreamDefinition<unknown, EventSchemas>): void {
  const { journal, persistenceId, events, apply, snapshotEvery } = definition;
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
    if (typeof events[type]?.['~standard']?.validate !== 'function')
      throw invalidOption(`events.${type}`, 'must be a Standard Schema', events[type]);
    if (typeof (apply as Record<string, unknown>)[type] !== 'function') {
      throw new TroupeError(
        'ERR_MISSING_HANDLER',
        `the persistent behaviour has no applier for event "${type}"`,
        { details: { event: type } },
      );
    }
  }
  if (snapshotEvery !== undefined && (!Number.isInteger(snapshotEvery) || snapshotEvery < 1))
    throw invalidOption('snapshotEvery', 'must be a positive integer', snapshotEvery);
}

/**
 * Recovers an actor incarnation's event-sourced state: names its stream (from `persistenceId` and
 * the actor's address), claims the stream with the activation's fence when the actor is named (so a
 * stale activation elsewhere cannot write, even before this one appends), then folds the newest
 * snapshot and the events after it. `afterPage`, called after each page of events read, keeps
 * memory bounded for a long stream (an agent trims its history there). This is what
 * `persistentBehavior` recovers with; an actor whose handlers append more than once per message
 * (an agent, each step of its run) uses it directly.
 *
 * @returns The stream, to append to, and the recovered state.
 * @throws TroupeError `ERR_JOURNAL_CORRUPT` naming the stream and version of an event that is not of
 * the definition or fails its schema; `ERR_FENCED` when a newer activation claimed the stream; the
 * journal's other errors; `ERR_INVALID_OPTION` when `persistenceId` gives no name.
 * @example
 * ```ts
 * preStart: async (ctx) => {
 *   const { stream, state } = await recoverStream(ctx, definition);
 *   ctx.state = { ...state, stream };
 * },
 * ```
 */
export async function recoverStream<S, E extends EventSchemas>(
  ctx: ActorContext<any, any>,
  definition: StreamDefinition<S, E>,
  afterPage?: (state: S) => S,
): Promise<{ readonly stream: PersistentStream<S>; readonly state: S }> {
  const { journal } = definition;
  const name = streamName(definition.persistenceId, ctx.self.address);
  const fence = activationFence(ctx);
  if (fence !== undefined) await journal.append(name, [], { fence });
  let state = definition.initialState();
  let version = 0;
  const snapshot = await journal.loadSnapshot(name);
  if (snapshot !== undefined) {
    state = snapshot.state as S;
    version = snapshot.version;
  }
  const stream = new Stream<S>(ctx, definition as unknown as AnyDefinition<S>, name, fence, version);
  for await (const page of streamPages(journal, name, version + 1)) {
    for (const event of page) {
      const refuse = (problem: string, cause?: TroupeError) => corrupt(name, event.version, problem, cause);
      let data = stream.check(event.type, event.data, refuse);
      if (data instanceof Promise) data = await data;
      state = stream.applier(event.type)(state, data);
      stream.version = event.version;
    }
    if (afterPage !== undefined) state = afterPage(state);
  }
  return { stream, state };
}

/** A definition with its types erased, as the stream uses it. */
type AnyDefinition<S> = StreamDefinition<S, EventSchemas> & {
  readonly apply: Readonly<Record<string, (state: S, data: unknown) => S>>;
};

/** The stream name `persistenceId` gives for an actor. */
function streamName(
  persistenceId: StreamDefinition<unknown, EventSchemas>['persistenceId'],
  address: Address,
) {
  if (typeof persistenceId === 'string') return persistenceId;
  const path = parseAddress(address).path;
  const id = persistenceId({ address, name: path.slice(path.lastIndexOf('/') + 1) });
  if (typeof id !== 'string' || id === '')
    throw invalidOption('persistenceId', `gave no stream name for ${address}`, id);
  return id;
}

/** A new event that is not one of the definition's, or fails its schema: refused at append. */
function refuseEvent(problem: string, cause?: TroupeError): TroupeError {
  return cause ?? new TroupeError('ERR_VALIDATION', `an event ${problem}`);
}

function validValue(
  checked: Validated,
  refuse: (problem: string, cause?: TroupeError) => TroupeError,
): unknown {
  if (!checked.ok) throw refuse('fails its schema', checked.error);
  return checked.value;
}

class Stream<S> implements PersistentStream<S> {
  /** The version of the newest snapshot this incarnation knows. */
  private snapshotVersion: number;
  /** Its first failed snapshot was reported: later ones would say the same. */
  private snapshotReported = false;

  constructor(
    private readonly ctx: ActorContext<any, any>,
    private readonly definition: AnyDefinition<S>,
    readonly name: string,
    readonly fence: number | undefined,
    public version: number,
  ) {
    this.snapshotVersion = version;
  }

  async append(
    state: S,
    events: readonly NewEvent[],
    options?: { readonly messageId?: string | undefined },
  ): Promise<{ readonly state: S; readonly duplicate: boolean }> {
    const checked: NewEvent[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      let data = this.check(event?.type, event?.data, refuseEvent);
      if (data instanceof Promise) data = await data;
      checked[i] = { type: event.type, data };
    }
    const result = await this.definition.journal.append(this.name, checked, {
      expectedVersion: this.version,
      messageId: options?.messageId,
      fence: this.fence,
    });
    // A redelivered message id: its events are in the state already, and nothing new happened.
    if (result.duplicate) return { state, duplicate: true };
    this.version = result.toVersion;
    for (const event of checked) state = this.applier(event.type)(state, event.data);
    return { state, duplicate: false };
  }

  async snapshotIfDue(state: S): Promise<void> {
    const { snapshotEvery, journal, pruneOnSnapshot } = this.definition;
    if (snapshotEvery === undefined || this.version - this.snapshotVersion < snapshotEvery) return;
    const version = this.version;
    try {
      await journal.saveSnapshot(this.name, version, state);
      this.snapshotVersion = version;
      if (pruneOnSnapshot === true) await journal.pruneToSnapshot(this.name);
    } catch (error) {
      // Reported once an incarnation: a state that is not JSON data would otherwise fail unseen
      // forever, and every later attempt would say the same.
      if (this.snapshotReported) return;
      this.snapshotReported = true;
      this.ctx.system.publish({
        type: 'snapshot-failed',
        address: this.ctx.self.address,
        stream: this.name,
        version,
        error: asError(error),
      });
    }
  }

  /** The applier of an event type that {@link check} accepted. */
  applier(type: string): (state: S, data: unknown) => S {
    return this.definition.apply[type]!;
  }

  /** An event's data as its schema gives it back (a promise for an async schema). */
  check(type: string, data: unknown, refuse: (problem: string, cause?: TroupeError) => TroupeError): unknown {
    const { events } = this.definition;
    const schema = typeof type === 'string' && Object.hasOwn(events, type) ? events[type] : undefined;
    if (schema === undefined) throw refuse(`has the unknown type "${String(type)}"`);
    const checked = validate(schema, data, `event "${type}"`);
    return checked instanceof Promise
      ? checked.then((c) => validValue(c, refuse))
      : validValue(checked, refuse);
  }
}
