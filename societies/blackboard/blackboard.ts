import { z } from 'zod';
import {
  type Journal,
  type PersistentStream,
  recoverStream,
  type StreamDefinition,
} from '../../memory/index.js';
import {
  ask,
  defineProtocol,
  invalidOption,
  type Schema,
  TroupeError,
  tell,
  validate,
} from '../../protocols/index.js';
import {
  type ActorContext,
  type ActorRef,
  type Behavior,
  behavior,
  type MailboxOptions,
} from '../../runtime/index.js';
import { failureOf } from '../members.js';
import { recordEvents } from '../record.js';

const entrySchema = z.object({
  key: z.string(),
  type: z.string(),
  value: z.unknown(),
  /** 1 when written first; each update adds 1. */
  version: z.number().int().min(1),
  /** Who wrote it (the writer's address, when it said). */
  by: z.string().optional(),
});

/** One entry of a blackboard. */
export type Entry = z.infer<typeof entrySchema>;

const patternSchema = z.object({
  /** Entries of this type only. */
  type: z.string().optional(),
  /** Entries whose key starts with this. */
  prefix: z.string().optional(),
});

/** Which changes trigger a knowledge source: by entry type and key prefix (both optional). */
export type EntryPattern = z.infer<typeof patternSchema>;

const failureSchema = z.object({ code: z.string(), message: z.string() });

/**
 * What a blackboard speaks. `put` is a compare-and-set: it writes only when the entry is at
 * `expectedVersion` (0: it must not exist yet), else answers `ERR_VERSION_CONFLICT` with the current
 * entry. `subscribe` registers a knowledge source (an actor speaking {@link KnowledgeSourceProtocol})
 * for the changes matching a pattern (a source may subscribe with several patterns, and is triggered
 * once per change; `unsubscribe` removes all of its own).
 */
export const BlackboardProtocol = defineProtocol('troupe.society.blackboard', {
  get: ask(z.object({ key: z.string().min(1) }), entrySchema.nullable()),
  list: ask(patternSchema, z.array(entrySchema)),
  put: ask(
    z.object({
      key: z.string().min(1),
      type: z.string().min(1),
      value: z.unknown(),
      expectedVersion: z.number().int().min(0),
      /** The writer's address: its own change does not trigger it. */
      by: z.string().optional(),
    }),
    z.discriminatedUnion('ok', [
      z.object({ ok: z.literal(true), version: z.number() }),
      z.object({ ok: z.literal(false), error: failureSchema, current: entrySchema.nullable() }),
    ]),
  ),
  subscribe: ask(
    z.object({
      /** The knowledge source's address. */
      source: z.string().min(1),
      pattern: patternSchema,
      /** Higher runs first under the default controller. Defaults to 0. */
      priority: z.number().optional(),
    }),
    z.object({ ok: z.literal(true) }),
  ),
  unsubscribe: ask(z.object({ source: z.string().min(1) }), z.object({ ok: z.boolean() })),
});

/** What a knowledge source speaks: `react` to a change on a board it subscribed to. */
export const KnowledgeSourceProtocol = defineProtocol('troupe.society.knowledge-source', {
  react: ask(
    z.object({
      /** The board's address, to read and write it. */
      board: z.string(),
      change: entrySchema,
    }),
    z.unknown(),
  ),
});

const BoardInternal = defineProtocol('troupe.society.blackboard.internal', {
  activationDone: tell(
    z.object({ epoch: z.string(), source: z.string(), key: z.string(), error: failureSchema.optional() }),
  ),
});

/** A pending activation: a knowledge source triggered by a change, waiting for the controller. */
export interface Activation {
  readonly source: string;
  readonly change: Entry;
  readonly priority: number;
}

/**
 * Decides which pending activation runs next: its index in `agenda`, or undefined to run none now
 * (the agenda waits for the next change). Activations run one at a time.
 */
export type Controller = (
  agenda: readonly Activation[],
  board: { readonly entries: Readonly<Record<string, Entry>> },
) => number | undefined;

/** Runs the highest priority first, in the order triggered among equals. The default controller. */
export const priorityController: Controller = (agenda) => {
  let best = 0;
  for (let i = 1; i < agenda.length; i++) if (agenda[i]!.priority > agenda[best]!.priority) best = i;
  return agenda.length === 0 ? undefined : best;
};

/** Options of {@link blackboard}. */
export interface BlackboardOptions {
  /** The schema of each entry type; a `put` of another type or a value failing its schema is refused (`ERR_VALIDATION`). */
  readonly types: Readonly<Record<string, Schema>>;
  /** The events' journal: with one, the entries and subscriptions survive crashes and moves. */
  readonly journal?: Journal;
  /** The board's stream. Defaults to `blackboard-<name>`. */
  readonly persistenceId?: (self: { readonly address: string; readonly name: string }) => string;
  /** Who acts next. Defaults to {@link priorityController}. */
  readonly controller?: Controller;
  /** How long a knowledge source may take to react. Defaults to 30 s. */
  readonly activationTimeoutMs?: number;
  readonly mailbox?: MailboxOptions;
}

interface BoardData {
  readonly entries: Readonly<Record<string, Entry>>;
  readonly subscriptions: readonly { source: string; pattern: EntryPattern; priority: number }[];
}

/** The board's actor state. */
export interface BlackboardState {
  data: BoardData;
  stream: PersistentStream<BoardData> | undefined;
  agenda: Activation[];
  running: boolean;
  epoch: string;
}

const boardEvents = {
  written: entrySchema,
  subscribed: z.object({ source: z.string(), pattern: patternSchema, priority: z.number() }),
  unsubscribed: z.object({ source: z.string() }),
};

const applyBoard = {
  written: (s: BoardData, e: Entry): BoardData => ({ ...s, entries: { ...s.entries, [e.key]: e } }),
  subscribed: (s: BoardData, e: { source: string; pattern: EntryPattern; priority: number }): BoardData => ({
    ...s,
    subscriptions: [
      ...s.subscriptions.filter(
        (x) =>
          x.source !== e.source || x.pattern.type !== e.pattern.type || x.pattern.prefix !== e.pattern.prefix,
      ),
      e,
    ],
  }),
  unsubscribed: (s: BoardData, e: { source: string }): BoardData => ({
    ...s,
    subscriptions: s.subscriptions.filter((x) => x.source !== e.source),
  }),
};

type BoardEvent =
  | { type: 'written'; data: Entry }
  | { type: 'subscribed'; data: { source: string; pattern: EntryPattern; priority: number } }
  | { type: 'unsubscribed'; data: { source: string } };

type Ctx = ActorContext<BlackboardState, typeof BlackboardProtocol | typeof BoardInternal>;

const matches = (pattern: EntryPattern, entry: Entry) =>
  (pattern.type === undefined || pattern.type === entry.type) &&
  (pattern.prefix === undefined || entry.key.startsWith(pattern.prefix));

/**
 * A blackboard: an event-sourced shared store of typed entries. Every write is a compare-and-set on
 * the entry's version and an event (in the journal, when given) before it is acknowledged. Knowledge
 * sources subscribe by pattern; each change that matches puts an activation on the agenda (not for
 * the writer itself), and the controller picks which runs next, one at a time: the board asks the
 * source's `react` with the change. A source that fails or times out is a `blackboard-activation`
 * event with the error, and the agenda goes on. The agenda is not durable: after a crash, pending
 * activations are gone (the entries and subscriptions are recovered).
 *
 * @throws TroupeError `ERR_INVALID_OPTION` naming the part: no types, a type without a schema, a bad
 * controller or timeout.
 * @example
 * ```ts
 * const board = system.spawn(
 *   blackboard({ types: { hypothesis: z.object({ text: z.string(), confidence: z.number() }) }, journal }),
 *   { name: 'board' },
 * );
 * await board.ask('put', { key: 'h1', type: 'hypothesis', value: { text: 'tides', confidence: 0.4 }, expectedVersion: 0 });
 * ```
 */
export function blackboard(options: BlackboardOptions): Behavior<typeof BlackboardProtocol, BlackboardState> {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const { types, journal, controller = priorityController, activationTimeoutMs = 30_000 } = options;
  if (typeof types !== 'object' || types === null || Object.keys(types).length === 0)
    throw invalidOption('types', 'must name at least one entry type with its schema', types);
  for (const [type, schema] of Object.entries(types)) {
    if (typeof schema?.['~standard']?.validate !== 'function')
      throw invalidOption(`types.${type}`, 'must be a Standard Schema', schema);
  }
  if (journal !== undefined && typeof journal.append !== 'function')
    throw invalidOption('journal', 'must be a journal', journal);
  if (typeof controller !== 'function') throw invalidOption('controller', 'must be a function', controller);
  if (!(activationTimeoutMs > 0))
    throw invalidOption('activationTimeoutMs', 'must be a positive number', activationTimeoutMs);
  const persistenceId = options.persistenceId ?? (({ name }) => `blackboard-${name}`);
  const definition: StreamDefinition<BoardData, typeof boardEvents> | undefined =
    journal === undefined
      ? undefined
      : { journal, persistenceId, initialState: emptyBoard, events: boardEvents, apply: applyBoard };

  const append = async (ctx: Ctx, events: readonly BoardEvent[]): Promise<void> => {
    const live = ctx.state;
    live.data = await recordEvents(live.stream, live.data, events, applyBoard);
  };

  /** Runs the activation the controller picks, if none is running. */
  const runNext = (ctx: Ctx): void => {
    const live = ctx.state;
    if (live.running || live.agenda.length === 0) return;
    let at: number | undefined;
    try {
      at = controller(live.agenda, { entries: live.data.entries });
    } catch (error) {
      const { code, message } = failureOf(error);
      ctx.system.publish({
        type: 'blackboard-activation',
        board: ctx.self.address,
        source: '',
        key: '',
        ok: false,
        error: `${code}: the controller threw: ${message}`,
      });
      return;
    }
    if (at === undefined) return;
    const activation = live.agenda[at];
    if (activation === undefined) return;
    live.agenda.splice(at, 1);
    live.running = true;
    const { epoch } = live;
    const self = ctx.self as unknown as ActorRef<typeof BoardInternal>;
    const source = ctx.system.ref(activation.source, KnowledgeSourceProtocol);
    const done = (error?: { code: string; message: string }) => {
      if (ctx.signal.aborted) return;
      self.tell('activationDone', {
        epoch,
        source: activation.source,
        key: activation.change.key,
        ...(error === undefined ? {} : { error }),
      });
    };
    source
      .ask(
        'react',
        { board: ctx.self.address, change: activation.change },
        { timeoutMs: activationTimeoutMs, signal: ctx.signal },
      )
      .then(
        () => done(),
        (error) => done(failureOf(error)),
      );
  };

  const handlers = {
    get: ({ key }: { key: string }, ctx: Ctx) => ctx.state.data.entries[key] ?? null,
    list: (pattern: EntryPattern, ctx: Ctx) =>
      Object.values(ctx.state.data.entries)
        .filter((e) => matches(pattern, e))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
    put: async (
      body: { key: string; type: string; value: unknown; expectedVersion: number; by?: string | undefined },
      ctx: Ctx,
    ) => {
      const current = ctx.state.data.entries[body.key] ?? null;
      const version = current?.version ?? 0;
      if (version !== body.expectedVersion) {
        const error = new TroupeError(
          'ERR_VERSION_CONFLICT',
          `entry "${body.key}" is at version ${version}, not ${body.expectedVersion}`,
        );
        return { ok: false as const, error: { code: error.code, message: error.message }, current };
      }
      const schema = Object.hasOwn(types, body.type) ? types[body.type] : undefined;
      const checked =
        schema === undefined ? undefined : await validate(schema, body.value, `entry "${body.key}"`);
      if (checked === undefined || !checked.ok) {
        const message =
          checked === undefined
            ? `"${body.type}" is not an entry type of the board (${Object.keys(types).join(', ')})`
            : checked.error.message;
        return { ok: false as const, error: { code: 'ERR_VALIDATION', message }, current };
      }
      const entry: Entry = {
        key: body.key,
        type: body.type,
        value: checked.value,
        version: version + 1,
        ...(body.by === undefined ? {} : { by: body.by }),
      };
      await append(ctx, [{ type: 'written', data: entry }]);
      ctx.system.publish({
        type: 'blackboard-change',
        board: ctx.self.address,
        key: entry.key,
        entryType: entry.type,
        version: entry.version,
        ...(entry.by === undefined ? {} : { by: entry.by }),
      });
      // Each source at most once per change, at the highest priority of its matching patterns.
      const triggered = new Map<string, number>();
      for (const sub of ctx.state.data.subscriptions) {
        if (sub.source === entry.by || !matches(sub.pattern, entry)) continue;
        triggered.set(sub.source, Math.max(sub.priority, triggered.get(sub.source) ?? sub.priority));
      }
      for (const [source, priority] of triggered) ctx.state.agenda.push({ source, change: entry, priority });
      runNext(ctx);
      return { ok: true as const, version: entry.version };
    },
    subscribe: async (
      {
        source,
        pattern,
        priority = 0,
      }: { source: string; pattern: EntryPattern; priority?: number | undefined },
      ctx: Ctx,
    ) => {
      await append(ctx, [{ type: 'subscribed', data: { source, pattern, priority } }]);
      return { ok: true as const };
    },
    unsubscribe: async ({ source }: { source: string }, ctx: Ctx) => {
      if (!ctx.state.data.subscriptions.some((s) => s.source === source)) return { ok: false };
      await append(ctx, [{ type: 'unsubscribed', data: { source } }]);
      ctx.state.agenda = ctx.state.agenda.filter((a) => a.source !== source);
      return { ok: true };
    },
    activationDone: (
      {
        epoch,
        source,
        key,
        error,
      }: {
        epoch: string;
        source: string;
        key: string;
        error?: { code: string; message: string } | undefined;
      },
      ctx: Ctx,
    ) => {
      if (epoch !== ctx.state.epoch) return;
      ctx.state.running = false;
      ctx.system.publish({
        type: 'blackboard-activation',
        board: ctx.self.address,
        source,
        key,
        ok: error === undefined,
        ...(error === undefined ? {} : { error: error.code }),
      });
      runNext(ctx);
    },
  };

  return behavior<typeof BlackboardProtocol | typeof BoardInternal, BlackboardState>({
    protocols: [BlackboardProtocol, BoardInternal],
    initialState: () => ({ data: emptyBoard(), stream: undefined, agenda: [], running: false, epoch: '' }),
    handlers: handlers as never,
    preStart: async (ctx) => {
      ctx.state.epoch = ctx.system.random().toString(36).slice(2);
      if (definition === undefined) return;
      const { stream, state } = await recoverStream(ctx, definition);
      ctx.state.stream = stream;
      ctx.state.data = state;
    },
    ...(options.mailbox === undefined ? {} : { mailbox: options.mailbox }),
  }) as unknown as Behavior<typeof BlackboardProtocol, BlackboardState>;
}

function emptyBoard(): BoardData {
  return { entries: {}, subscriptions: [] };
}
