import { Observable } from 'rxjs';
import { invalidOption, TroupeError } from '../protocols/index.js';
import { type Clock, every, type Random, realClock, realRandom } from '../runtime/index.js';

/** An event to append: its type and data (plain JSON), and optional metadata. */
export interface NewEvent {
  readonly type: string;
  readonly data: unknown;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/**
 * A place in the global log. Global reads run in the order of `(tx, position)`: `tx` is the writing
 * transaction's id, so a reader never passes an event whose transaction has yet to commit.
 * {@link START} is before every event.
 */
export interface Checkpoint {
  readonly tx: number;
  readonly position: number;
}

/** Before the first event of the global log. */
export const START: Checkpoint = Object.freeze({ tx: 0, position: 0 });

/** An event as stored. Versions count from 1 within a stream. */
export interface StoredEvent {
  readonly stream: string;
  readonly version: number;
  readonly type: string;
  readonly data: unknown;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The message id of the append that wrote it, if it had one. */
  readonly messageId: string | undefined;
  /** Where it is in the global log; a reader resumes after it. */
  readonly checkpoint: Checkpoint;
  /** Epoch milliseconds of the append. */
  readonly createdAt: number;
}

/** Options of one append. */
export interface AppendOptions {
  /**
   * The version the stream must have before the append (0: the stream must not exist yet), or
   * `'any'` (default). A mismatch rejects with `ERR_JOURNAL_CONFLICT`.
   */
  readonly expectedVersion?: number | 'any' | undefined;
  /**
   * Makes the append idempotent: appending again with an id the stream already holds appends
   * nothing and resolves with the first append's result (`duplicate: true`).
   */
  readonly messageId?: string | undefined;
  /**
   * The writer's fencing token (a named actor's lease revision). The journal refuses (`ERR_FENCED`)
   * an append whose fence is older than the newest it has seen for the stream.
   */
  readonly fence?: number | undefined;
}

/** What an append did. */
export interface AppendResult {
  readonly stream: string;
  /**
   * The version of the append's first event: for a duplicate, that of the first append with the
   * message id; when nothing was appended, the stream's version + 1.
   */
  readonly fromVersion: number;
  /** The stream's version after the append. */
  readonly toVersion: number;
  /** True when the message id was already in the stream and nothing was appended. */
  readonly duplicate: boolean;
}

/** A stream's state at a version, saved so recovery need not replay every event. */
export interface Snapshot {
  readonly stream: string;
  readonly version: number;
  readonly state: unknown;
  readonly createdAt: number;
}

/** Options of a live subscription to the global log. */
export interface SubscribeOptions {
  /** Deliver events after this checkpoint. Defaults to {@link START}. */
  readonly after?: Checkpoint;
  /** Events read per query while catching up. Defaults to 500. */
  readonly batchSize?: number;
}

/**
 * The event journal: streams of events with optimistic concurrency, idempotent appends, fencing, a
 * gapless global log with live subscriptions, snapshots and checkpoints. Build one with
 * `inMemoryJournal()`, `pgliteJournal()` or `postgresJournal()`; all three pass one contract suite.
 *
 * Appends made in the same turn of the event loop (by many actors, say) go to the store together,
 * in one transaction per free connection (split by stream); each still resolves with its own result
 * or error (group commit). A stream's appends stay in order.
 */
export interface Journal {
  /**
   * Appends `events` to `stream`, durably, as one unit: all of them or none.
   * @throws TroupeError `ERR_JOURNAL_CONFLICT` when `expectedVersion` is not the stream's version;
   * `ERR_FENCED` for a stale fence; `ERR_VALIDATION` for a bad stream name, event or option;
   * `ERR_JOURNAL_UNAVAILABLE` when the store failed (the append may then have committed: retry with
   * the same message id).
   */
  append(stream: string, events: readonly NewEvent[], options?: AppendOptions): Promise<AppendResult>;
  /** The events of `stream` from `fromVersion` (default 1), in version order, at most `limit`. */
  readStream(stream: string, options?: { fromVersion?: number; limit?: number }): Promise<StoredEvent[]>;
  /** The stream's version: the number of events ever appended to it (0 when it does not exist). */
  streamVersion(stream: string): Promise<number>;
  /**
   * Up to `limit` (default 500) events of the global log after `after` (default {@link START}). An
   * event is returned only once every transaction that could come before it has ended, so reading on
   * from the last event's checkpoint never skips one.
   */
  readAll(options?: { after?: Checkpoint; limit?: number }): Promise<StoredEvent[]>;
  /**
   * The global log from `after` on: catches up, then follows new events as they commit (Postgres
   * wakes it with LISTEN/NOTIFY). Each event carries its checkpoint. While the store is unreachable
   * it keeps trying; other errors (`ERR_JOURNAL_CORRUPT`) end the Observable.
   */
  subscribe(options?: SubscribeOptions): Observable<StoredEvent>;
  /** Saves a snapshot of `stream` at `version`; an older one than the stored one is ignored. */
  saveSnapshot(stream: string, version: number, state: unknown): Promise<void>;
  /**
   * The stream's latest snapshot, if any.
   * @throws TroupeError `ERR_JOURNAL_CORRUPT` when the stored snapshot cannot be decoded.
   */
  loadSnapshot(stream: string): Promise<Snapshot | undefined>;
  /**
   * Retention: deletes the events of `stream` that its latest snapshot covers, but those of the
   * stream's newest append (they hold the stream's version and the append's message id); resolves
   * with how many. Readers of the global log that have not yet passed them will never see them, and
   * the message ids of the deleted appends are forgotten.
   */
  pruneToSnapshot(stream: string): Promise<number>;
  /** The stored checkpoint of a reader (a projection) named `name`, or undefined. */
  loadCheckpoint(name: string): Promise<Checkpoint | undefined>;
  /** Stores the checkpoint of the reader `name`. */
  saveCheckpoint(name: string, checkpoint: Checkpoint): Promise<void>;
  /**
   * Ends subscriptions and releases the store (a pool it made, a PGlite it opened), after the
   * appends it has taken reach the store (they may be committing: they are never cut short).
   * `drain()` is the same. Idempotent.
   */
  close(): Promise<void>;
  drain(): Promise<void>;
  /** Resolves once closed. */
  closed(): Promise<Error | undefined>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** One append as a store sees it: validated, the data already JSON. */
export interface AppendRequest {
  readonly stream: string;
  readonly events: readonly { readonly type: string; readonly data: string; readonly metadata: string }[];
  readonly expectedVersion: number | undefined;
  readonly messageId: string | undefined;
  readonly fence: number | undefined;
}

/** A row as a store reads it, before it is checked. */
export interface RawEvent {
  readonly stream: unknown;
  readonly version: unknown;
  readonly type: unknown;
  readonly data: unknown;
  readonly metadata: unknown;
  readonly messageId: unknown;
  readonly tx: unknown;
  readonly position: unknown;
  readonly createdAt: unknown;
}

/**
 * What each journal adapter implements; {@link createJournal} adds group commit, argument checks,
 * decoding and subscriptions on top.
 */
export interface JournalStore {
  /** How many batches may be in flight at once. */
  readonly concurrency: number;
  /** Applies the requests in order, in one transaction; one result or error per request. */
  appendBatch(requests: readonly AppendRequest[]): Promise<(AppendResult | TroupeError)[]>;
  /** Rows of a stream from a version, in version order. */
  readStream(stream: string, fromVersion: number, limit: number): Promise<RawEvent[]>;
  /** The stream's newest version, 0 for none. */
  streamVersion(stream: string): Promise<number>;
  /** Rows of the global log after a checkpoint, in its order, never past a transaction still open. */
  readAll(after: Checkpoint, limit: number): Promise<RawEvent[]>;
  /** Stores a snapshot (state as JSON) unless a newer one is stored. */
  saveSnapshot(stream: string, version: number, state: string): Promise<void>;
  /** The stored snapshot's row, if any. */
  loadSnapshot(stream: string): Promise<{ version: unknown; state: unknown; createdAt: unknown } | undefined>;
  /** Deletes what the snapshot covers, but the newest append; resolves with how many. */
  pruneToSnapshot(stream: string): Promise<number>;
  /** A reader's stored checkpoint. */
  loadCheckpoint(name: string): Promise<Checkpoint | undefined>;
  /** Stores a reader's checkpoint. */
  saveCheckpoint(name: string, checkpoint: Checkpoint): Promise<void>;
  /** Calls `listener` after appends commit (any writer's, where the store can tell); returns an unsubscribe. */
  onCommit(listener: () => void): () => void;
  /** Releases what the store opened. */
  close(): Promise<void>;
}

/** Options shared by every journal. */
export interface JournalOptions {
  /** Most events in one group-commit transaction. Defaults to 5,000. */
  readonly maxBatchEvents?: number;
  /**
   * How often a caught-up subscription polls even without a wake-up, in ms: a safety net for a lost
   * notification and for writers the store cannot hear. Defaults to 1,000.
   */
  readonly pollMs?: number;
  /**
   * Time for the polls, the waits between retries and the timestamps a journal in memory stamps
   * (`createdAt`; a journal in SQL takes the database's). Defaults to the real clock.
   */
  readonly clock?: Clock;
  /** Jitter of the waits between retries. Defaults to `Math.random`. */
  readonly random?: Random;
}

/** The defaults of {@link JournalOptions}. */
export const journalDefaults = {
  maxBatchEvents: 5000,
  pollMs: 1000,
  clock: realClock,
  random: realRandom,
} as const;

interface Pending {
  readonly request: AppendRequest;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: Error) => void;
}

/** Fewer events than this per connection go in one transaction rather than be split. */
const SPLIT_EVENTS = 200;

/**
 * Reads a whole stream from `fromVersion` on, a page at a time, in version order: what recovery
 * folds into state.
 * @example
 * ```ts
 * for await (const page of streamPages(journal, 'order-7')) for (const e of page) state = apply(state, e);
 * ```
 */
export async function* streamPages(
  journal: Journal,
  stream: string,
  fromVersion = 1,
  pageSize = 5000,
): AsyncGenerator<StoredEvent[], void, undefined> {
  for (let from = fromVersion; ; ) {
    const page = await journal.readStream(stream, { fromVersion: from, limit: pageSize });
    if (page.length > 0) yield page;
    if (page.length < pageSize) return;
    from = page[page.length - 1]!.version + 1;
  }
}

/** A hash of a stream name (FNV-1a), to share streams out over batches. */
function streamHash(stream: string): number {
  let h = 2166136261;
  for (let i = 0; i < stream.length; i++) h = Math.imul(h ^ stream.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** The separator of the message ids of an append's later events; refused inside a message id. */
export const MESSAGE_ID_SEPARATOR = '\u001f';

/**
 * Builds a {@link Journal} over a store adapter. Internal to the memory layer: its adapters call
 * it, users call `inMemoryJournal()`, `pgliteJournal()` or `postgresJournal()`.
 */
export function createJournal(store: JournalStore, options: JournalOptions = {}): Journal {
  return new GroupCommitJournal(store, resolveJournalOptions(options));
}

/**
 * Checks {@link JournalOptions} and fills in the defaults.
 * @throws TroupeError `ERR_INVALID_OPTION` naming the bad option.
 */
export function resolveJournalOptions(options: JournalOptions): Required<JournalOptions> {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', 'must be an object');
  const maxBatchEvents = options.maxBatchEvents ?? journalDefaults.maxBatchEvents;
  if (!Number.isInteger(maxBatchEvents) || maxBatchEvents < 1)
    throw invalidOption('maxBatchEvents', 'must be a positive integer', maxBatchEvents);
  const pollMs = options.pollMs ?? journalDefaults.pollMs;
  if (!Number.isFinite(pollMs) || pollMs < 1) throw invalidOption('pollMs', 'must be at least 1', pollMs);
  const { clock = journalDefaults.clock, random = journalDefaults.random } = options;
  if (typeof clock?.setTimeout !== 'function' || typeof clock.wallNow !== 'function')
    throw invalidOption('clock', 'must be a clock (now, wallNow, setTimeout)', clock);
  if (typeof random !== 'function') throw invalidOption('random', 'must be a function', random);
  return { maxBatchEvents, pollMs, clock, random };
}

/** The {@link Journal} over a store: group commit, checks, decoding, subscriptions. */
export class GroupCommitJournal implements Journal {
  private pending: Pending[] = [];
  /** Streams with a batch in flight: their next appends wait for it, so they stay in order. */
  private readonly busy = new Set<string>();
  private inFlight = 0;
  private scheduled = false;
  private closing: Promise<void> | undefined;
  private readonly subscriptions = new Set<() => void>();

  constructor(
    private readonly store: JournalStore,
    private readonly options: Required<JournalOptions>,
  ) {}

  append(stream: string, events: readonly NewEvent[], options?: AppendOptions): Promise<AppendResult> {
    let request: AppendRequest;
    try {
      this.checkOpen();
      request = appendRequest(stream, events, options);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ request, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.store.concurrency) return;
    this.scheduled = true;
    // setImmediate, not a microtask: the batch takes every append made in this turn of the event
    // loop, whichever actors made them. A turn boundary, not a wait in time: no clock is involved.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /**
   * Sends what is pending as up to one batch per free connection. A large amount is split by stream
   * over the free connections so the store works on them in parallel; a stream's appends stay in one
   * batch, in order, and wait while an earlier batch of that stream is in flight. No batch holds more
   * than `maxBatchEvents` events (but for one larger append on its own).
   */
  private flush(): void {
    const free = this.store.concurrency - this.inFlight;
    if (free <= 0 || this.pending.length === 0) return;
    const max = this.options.maxBatchEvents;
    let ready = 0;
    for (const p of this.pending) if (!this.busy.has(p.request.stream)) ready += p.request.events.length;
    const parts = Math.max(1, Math.min(free, ready >= SPLIT_EVENTS * free ? free : Math.ceil(ready / max)));
    const batches = Array.from({ length: parts }, () => ({ items: [] as Pending[], events: 0 }));
    const held = new Set<string>();
    const rest: Pending[] = [];
    for (const p of this.pending) {
      const { stream, events } = p.request;
      if (this.busy.has(stream) || held.has(stream)) {
        rest.push(p);
        continue;
      }
      const batch = batches[parts === 1 ? 0 : streamHash(stream) % parts]!;
      if (batch.events > 0 && batch.events + events.length > max) {
        held.add(stream);
        rest.push(p);
        continue;
      }
      batch.items.push(p);
      batch.events += events.length;
    }
    this.pending = rest;
    for (const batch of batches) if (batch.items.length > 0) this.send(batch.items);
  }

  private send(batch: Pending[]): void {
    this.inFlight++;
    const streams = new Set<string>();
    for (const p of batch) streams.add(p.request.stream);
    for (const stream of streams) this.busy.add(stream);
    const done = () => {
      this.inFlight--;
      for (const stream of streams) this.busy.delete(stream);
      if (this.pending.length > 0) this.flush();
    };
    let sent: Promise<(AppendResult | TroupeError)[]>;
    try {
      sent = this.store.appendBatch(batch.map((p) => p.request));
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      (results) => {
        for (let i = 0; i < batch.length; i++) {
          const result = results[i]!;
          if (result instanceof Error) batch[i]!.reject(result);
          else batch[i]!.resolve(result);
        }
        done();
      },
      (error: unknown) => {
        const failure = unavailable('append', error);
        for (const p of batch) p.reject(failure);
        done();
      },
    );
  }

  async readStream(
    stream: string,
    options: { fromVersion?: number; limit?: number } = {},
  ): Promise<StoredEvent[]> {
    this.checkOpen();
    checkStream(stream);
    const fromVersion = options.fromVersion ?? 1;
    if (!Number.isInteger(fromVersion) || fromVersion < 1)
      throw invalidOption('fromVersion', 'must be a positive integer', fromVersion);
    const limit = checkLimit(options.limit, Number.MAX_SAFE_INTEGER);
    const rows = await guard('readStream', () => this.store.readStream(stream, fromVersion, limit));
    return rows.map(decodeEvent);
  }

  async streamVersion(stream: string): Promise<number> {
    this.checkOpen();
    checkStream(stream);
    return guard('streamVersion', () => this.store.streamVersion(stream));
  }

  async readAll(options: { after?: Checkpoint; limit?: number } = {}): Promise<StoredEvent[]> {
    this.checkOpen();
    const after = checkCheckpoint(options.after ?? START, 'after');
    const limit = checkLimit(options.limit, 500);
    const rows = await guard('readAll', () => this.store.readAll(after, limit));
    return rows.map(decodeEvent);
  }

  subscribe(options: SubscribeOptions = {}): Observable<StoredEvent> {
    this.checkOpen();
    const start = checkCheckpoint(options.after ?? START, 'after');
    const batchSize = checkLimit(options.batchSize, 500);
    return new Observable<StoredEvent>((subscriber) => {
      let after = start;
      let reading = false;
      let again = false;
      let done = false;
      const read = async (): Promise<void> => {
        if (reading) {
          again = true;
          return;
        }
        reading = true;
        try {
          do {
            again = false;
            for (;;) {
              if (done) return;
              const events = await this.readAll({ after, limit: batchSize });
              for (const event of events) {
                if (done) return;
                after = event.checkpoint;
                subscriber.next(event);
              }
              if (events.length < batchSize) break;
            }
          } while (again && !done);
        } catch (error) {
          // An outage is waited out: the next wake-up or poll reads again from the same place.
          if (!done && !TroupeError.is(error, 'ERR_JOURNAL_UNAVAILABLE')) subscriber.error(error);
        } finally {
          reading = false;
        }
      };
      const stopListening = this.store.onCommit(() => void read());
      const stopPolling = every(this.options.clock, this.options.pollMs, () => void read());
      const end = (): void => {
        done = true;
        stopListening();
        stopPolling();
        this.subscriptions.delete(complete);
      };
      const complete = (): void => {
        end();
        subscriber.complete();
      };
      this.subscriptions.add(complete);
      void read();
      return end;
    });
  }

  async saveSnapshot(stream: string, version: number, state: unknown): Promise<void> {
    this.checkOpen();
    checkStream(stream);
    if (!Number.isInteger(version) || version < 1)
      throw invalidOption('version', 'must be a positive integer', version);
    const text = json(state, () => `the snapshot of "${stream}"`);
    await guard('saveSnapshot', () => this.store.saveSnapshot(stream, version, text));
  }

  async loadSnapshot(stream: string): Promise<Snapshot | undefined> {
    this.checkOpen();
    checkStream(stream);
    const row = await guard('loadSnapshot', () => this.store.loadSnapshot(stream));
    if (row === undefined) return undefined;
    const version = Number(row.version);
    if (!Number.isInteger(version) || version < 1 || row.state === undefined) {
      throw new TroupeError('ERR_JOURNAL_CORRUPT', `the snapshot of "${stream}" cannot be decoded`, {
        details: { stream, version: row.version },
      });
    }
    return { stream, version, state: row.state, createdAt: toMillis(row.createdAt) };
  }

  async pruneToSnapshot(stream: string): Promise<number> {
    this.checkOpen();
    checkStream(stream);
    return guard('pruneToSnapshot', () => this.store.pruneToSnapshot(stream));
  }

  async loadCheckpoint(name: string): Promise<Checkpoint | undefined> {
    this.checkOpen();
    checkName(name);
    return guard('loadCheckpoint', () => this.store.loadCheckpoint(name));
  }

  async saveCheckpoint(name: string, checkpoint: Checkpoint): Promise<void> {
    this.checkOpen();
    checkName(name);
    checkCheckpoint(checkpoint, 'checkpoint');
    await guard('saveCheckpoint', () => this.store.saveCheckpoint(name, checkpoint));
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const end of [...this.subscriptions]) end();
      // Appends already taken still go to the store; wait for them before releasing it.
      while (this.pending.length > 0 || this.inFlight > 0 || this.scheduled) {
        await new Promise((r) => setImmediate(r));
      }
      try {
        await this.store.close();
      } finally {
        this.resolveClosed(undefined);
      }
    })();
    return this.closing;
  }

  drain(): Promise<void> {
    return this.close();
  }

  closed(): Promise<Error | undefined> {
    return this.closedPromise;
  }

  // Declared before `closedPromise`: a field declared after it would be reset to undefined once the
  // promise's executor had set it (class fields are defined in order).
  private resolveClosed!: (error: Error | undefined) => void;
  private readonly closedPromise = new Promise<Error | undefined>((resolve) => {
    this.resolveClosed = resolve;
  });

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** True once `close()` was called. */
  protected get isClosed(): boolean {
    return this.closing !== undefined;
  }

  private checkOpen(): void {
    if (this.closing !== undefined) throw new TroupeError('ERR_ILLEGAL_STATE', 'the journal is closed');
  }
}

/** Runs a store call, turning a driver's failure into `ERR_JOURNAL_UNAVAILABLE`. */
async function guard<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw unavailable(what, error);
  }
}

/** `ERR_JOURNAL_UNAVAILABLE` for a store failure; Troupe errors pass as they are. */
export function unavailable(what: string, error: unknown): TroupeError {
  if (TroupeError.is(error)) return error;
  const reason = error instanceof Error ? error.message : describeThrown(error);
  return new TroupeError('ERR_JOURNAL_UNAVAILABLE', `the journal's ${what} failed: ${reason}`, {
    cause: error,
  });
}

/** What a driver threw that is not an Error (PGlite throws errno objects): its message or code. */
function describeThrown(thrown: unknown): string {
  if (typeof thrown !== 'object' || thrown === null) return String(thrown);
  const { message, code, errno } = thrown as { message?: unknown; code?: unknown; errno?: unknown };
  if (typeof message === 'string' && message !== '') return message;
  if (code !== undefined || errno !== undefined) return `errno ${String(code ?? errno)}`;
  return Object.prototype.toString.call(thrown);
}

function checkStream(stream: unknown): asserts stream is string {
  if (
    typeof stream !== 'string' ||
    stream.length === 0 ||
    stream.length > 512 ||
    UNSTORABLE_TEXT.test(stream)
  ) {
    throw new TroupeError(
      'ERR_VALIDATION',
      'a stream name must be a string of 1 to 512 characters, without NUL',
      {
        details: { stream },
      },
    );
  }
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0)
    throw invalidOption('name', 'must be a non-empty string', name);
}

function checkLimit(limit: number | undefined, fallback: number): number {
  if (limit === undefined) return fallback;
  if (!Number.isInteger(limit) || limit < 1)
    throw invalidOption('limit', 'must be a positive integer', limit);
  return limit;
}

function checkCheckpoint(checkpoint: Checkpoint, option: string): Checkpoint {
  if (
    typeof checkpoint !== 'object' ||
    checkpoint === null ||
    !Number.isSafeInteger(checkpoint.tx) ||
    !Number.isSafeInteger(checkpoint.position) ||
    checkpoint.tx < 0 ||
    checkpoint.position < 0
  ) {
    throw invalidOption(option, 'must be a checkpoint { tx, position } of non-negative integers', checkpoint);
  }
  return checkpoint;
}

/** JSON of an event's data (or metadata), or `ERR_VALIDATION` naming it. */
function toJson(value: unknown, event: NewEvent, index: number, stream: string, part = 'data'): string {
  const text = storable(value);
  if (typeof text !== 'string') {
    throw unstorable(`the ${part} of event ${index} ("${event.type}") for "${stream}"`, text.cause);
  }
  return text;
}

function json(value: unknown, what: () => string): string {
  const text = storable(value);
  if (typeof text !== 'string') throw unstorable(what(), text.cause);
  return text;
}

/** The JSON text of `value`, or why there is none that the stores can keep. */
function storable(value: unknown): string | { readonly cause: unknown } {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (cause) {
    return { cause };
  }
  if (text === undefined || (text.includes('\\u') && UNSTORABLE_ESCAPE.test(text)))
    return { cause: undefined };
  return text;
}

/**
 * JSON.stringify escapes NUL and lone surrogates as `\u0000` and `\udXXX`; Postgres refuses both
 * in jsonb (and the in-memory journal follows, so the adapters agree). The lookbehind skips an
 * escaped backslash followed by a literal "u".
 */
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;
/** A NUL or a lone surrogate in a string (stream, type, message id). */
const UNSTORABLE_TEXT = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * `text` as the journal can store it: NUL and lone surrogates, which it refuses, become U+FFFD.
 * @example `storableText('a\u0000b') === 'a\ufffdb'`
 */
export function storableText(text: string): string {
  return text.replace(new RegExp(UNSTORABLE_TEXT.source, 'g'), '\ufffd');
}

function unstorable(what: string, cause?: unknown): TroupeError {
  return new TroupeError(
    'ERR_VALIDATION',
    cause === undefined
      ? `${what} is not JSON data that can be stored (a NUL character or a lone surrogate, or no JSON at all)`
      : `${what} is not JSON data`,
    cause === undefined ? undefined : { cause },
  );
}

function appendRequest(
  stream: string,
  events: readonly NewEvent[],
  options: AppendOptions = {},
): AppendRequest {
  checkStream(stream);
  if (!Array.isArray(events)) {
    throw new TroupeError('ERR_VALIDATION', `the events for "${stream}" must be an array`);
  }
  const { expectedVersion = 'any', messageId, fence } = options;
  if (expectedVersion !== 'any' && (!Number.isSafeInteger(expectedVersion) || expectedVersion < 0))
    throw invalidOption('expectedVersion', "must be a non-negative integer or 'any'", expectedVersion);
  if (
    messageId !== undefined &&
    (typeof messageId !== 'string' ||
      messageId.length === 0 ||
      messageId.length > 256 ||
      messageId.includes(MESSAGE_ID_SEPARATOR) ||
      UNSTORABLE_TEXT.test(messageId))
  ) {
    throw invalidOption('messageId', 'must be a string of 1 to 256 characters without U+001F', messageId);
  }
  if (fence !== undefined && (!Number.isSafeInteger(fence) || fence < 0))
    throw invalidOption('fence', 'must be a non-negative integer', fence);
  const encoded: AppendRequest['events'][number][] = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    if (
      typeof event !== 'object' ||
      event === null ||
      typeof event.type !== 'string' ||
      event.type === '' ||
      UNSTORABLE_TEXT.test(event.type)
    ) {
      throw new TroupeError('ERR_VALIDATION', `event ${i} for "${stream}" needs a non-empty string type`, {
        details: { stream, index: i },
      });
    }
    const { metadata } = event;
    if (
      metadata !== undefined &&
      (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
    ) {
      throw new TroupeError('ERR_VALIDATION', `the metadata of event ${i} for "${stream}" must be an object`);
    }
    encoded[i] = {
      type: event.type,
      data: toJson(event.data ?? null, event, i, stream),
      metadata: metadata === undefined ? '{}' : toJson(metadata, event, i, stream, 'metadata'),
    };
  }
  return {
    stream,
    events: encoded,
    expectedVersion: expectedVersion === 'any' ? undefined : expectedVersion,
    messageId,
    fence,
  };
}

/** Checks a stored row, so a damaged one fails loudly with its stream and version. */
function decodeEvent(row: RawEvent): StoredEvent {
  const version = Number(row.version);
  const tx = Number(row.tx);
  const position = Number(row.position);
  const problem =
    typeof row.stream !== 'string'
      ? 'no stream'
      : !Number.isSafeInteger(version) || version < 1
        ? 'a bad version'
        : typeof row.type !== 'string' || row.type === ''
          ? 'no type'
          : row.data === undefined
            ? 'no data'
            : typeof row.metadata !== 'object' || row.metadata === null || Array.isArray(row.metadata)
              ? 'metadata that is not an object'
              : !Number.isSafeInteger(tx) || !Number.isSafeInteger(position)
                ? 'a bad position'
                : undefined;
  if (problem !== undefined) {
    throw corrupt(
      String(row.stream),
      Number.isSafeInteger(version) ? version : row.version,
      `has ${problem}`,
    );
  }
  const messageId =
    typeof row.messageId === 'string' ? row.messageId.split(MESSAGE_ID_SEPARATOR)[0] : undefined;
  return {
    stream: row.stream as string,
    version,
    type: row.type as string,
    data: row.data,
    metadata: row.metadata as Record<string, unknown>,
    messageId,
    checkpoint: { tx, position },
    createdAt: toMillis(row.createdAt),
  };
}

/** `ERR_JOURNAL_CORRUPT` naming the stream and version of a damaged event. */
export function corrupt(stream: string, version: unknown, problem: string, cause?: unknown): TroupeError {
  return new TroupeError('ERR_JOURNAL_CORRUPT', `event ${String(version)} of stream "${stream}" ${problem}`, {
    details: { stream, version },
    ...(cause === undefined ? {} : { cause }),
  });
}

function toMillis(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  return Number(value);
}
