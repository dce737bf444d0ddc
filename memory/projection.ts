import type { Subscription } from 'rxjs';
import { asError, invalidOption, TroupeError } from '../protocols/index.js';
import {
  type Clock,
  exponential,
  type Random,
  type RetryingOptions,
  realClock,
  retrying,
  sleep,
} from '../runtime/index.js';
import { type Checkpoint, type Journal, START, type StoredEvent } from './journal.js';
import type { SearchDocument, SearchIndex } from './search.js';
import type { SqlExecutor, SqlJournal } from './sql.js';

/** Options of {@link startProjection}. */
export interface ProjectionOptions {
  /** The journal whose global log the projection reads. */
  readonly journal: Journal;
  /** Names the projection's checkpoint: one name, one position in the global log. */
  readonly name: string;
  /**
   * Updates the read model with a batch of events, in global order. With a transactional
   * projection `tx` is the transaction that also stores the checkpoint: write the read model
   * through it and both commit together (exactly-once effect). Otherwise `tx` is undefined and the
   * checkpoint is stored after the handler resolves (at-least-once: make the update idempotent).
   */
  readonly handle: (events: readonly StoredEvent[], tx: SqlExecutor | undefined) => void | PromiseLike<void>;
  /**
   * Store the checkpoint in the handler's transaction. Defaults to true for a journal in SQL
   * (Postgres, PGlite), whose database then holds the read model; must be false for other journals.
   */
  readonly transactional?: boolean;
  /** Most events per batch. Defaults to 500. */
  readonly batchSize?: number;
  /** Attempts of a failing batch before the projection stops with the error. Defaults to 5. */
  readonly maxAttempts?: number;
  /** The first retry's delay; each later one doubles, up to 5 s. Defaults to 100. */
  readonly retryDelayMs?: number;
  /** Time for the waits between attempts and of `caughtUp()`. Defaults to the real clock. */
  readonly clock?: Clock;
  /** Jitter of the waits between attempts (there is none by default). Defaults to `Math.random`. */
  readonly random?: Random;
}

/** A running projection. */
export interface Projection {
  /** The name its checkpoint is stored under. */
  readonly name: string;
  /** The checkpoint of the last event handled (and stored). */
  readonly checkpoint: Checkpoint;
  /**
   * Resolves once every event that readers of the global log can see has been handled. An event
   * becomes visible only when every transaction that started before it ended, so while an older
   * transaction is open anywhere in the database, newer events wait (see `Journal.readAll`).
   */
  caughtUp(): Promise<void>;
  /** Stops after the batch in progress (its checkpoint stored); the same as `close()`. Idempotent. */
  drain(): Promise<void>;
  /**
   * Stops: no new batch starts; the batch in progress finishes, so its events and checkpoint stay
   * together. Idempotent.
   */
  close(): Promise<void>;
  /** Resolves when the projection has stopped: with the error that stopped it, or undefined. */
  closed(): Promise<Error | undefined>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Batches that may wait unhandled before the runner stops reading ahead. */
const QUEUED_BATCHES = 4;

function isSqlJournal(journal: Journal): journal is SqlJournal {
  return typeof (journal as Partial<SqlJournal>).transaction === 'function';
}

/**
 * Runs a projection (CQRS read side): reads the global log from its stored checkpoint, hands each
 * batch to `handle`, stores the new checkpoint (in the same transaction for SQL read models), and
 * follows new events. After a crash it resumes from the checkpoint: no event is skipped, and with a
 * transactional projection none is handled twice.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for bad options; `ERR_JOURNAL_UNAVAILABLE` when the
 * checkpoint cannot be read.
 * @example
 * ```ts
 * const totals = await startProjection({
 *   journal,
 *   name: 'totals',
 *   handle: async (events, tx) => {
 *     for (const e of events) await tx!.query('UPDATE totals SET n = n + 1 WHERE type = $1', [e.type]);
 *   },
 * });
 * ```
 */
export async function startProjection(options: ProjectionOptions): Promise<Projection> {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', 'must be an object');
  const { journal, name, handle, batchSize = 500, maxAttempts = 5, retryDelayMs = 100 } = options;
  if (typeof journal?.readAll !== 'function') throw invalidOption('journal', 'must be a journal', journal);
  if (typeof name !== 'string' || name === '')
    throw invalidOption('name', 'must be a non-empty string', name);
  if (typeof handle !== 'function') throw invalidOption('handle', 'must be a function', handle);
  const transactional = options.transactional ?? isSqlJournal(journal);
  if (transactional && !isSqlJournal(journal))
    throw invalidOption('transactional', 'needs a journal in SQL (Postgres or PGlite)', transactional);
  for (const [option, value, min] of [
    ['batchSize', batchSize, 1],
    ['maxAttempts', maxAttempts, 1],
    ['retryDelayMs', retryDelayMs, 0],
  ] as const) {
    if (!Number.isInteger(value) || value < min)
      throw invalidOption(option, `must be an integer of at least ${min}`, value);
  }
  const { clock = realClock, random } = options;
  if (typeof clock?.setTimeout !== 'function') throw invalidOption('clock', 'must be a clock', clock);
  if (random !== undefined && typeof random !== 'function')
    throw invalidOption('random', 'must be a function', random);
  const start = (await journal.loadCheckpoint(name)) ?? START;
  const retry = {
    attempts: maxAttempts,
    backoff: exponential({ baseMs: Math.min(retryDelayMs, 5000), maxMs: 5000 }),
    clock,
    random,
  };
  const runner = new ProjectionRunner(journal, name, handle, transactional, retry, start);
  runner.run(batchSize);
  return runner;
}

class ProjectionRunner implements Projection {
  checkpoint: Checkpoint;
  private queue: StoredEvent[] = [];
  private working = false;
  /** Settles when the batches being worked on are done: `close()` waits for it. */
  private workDone: Promise<void> = Promise.resolve();
  private stopped = false;
  private subscription: Subscription | undefined;
  private resolveClosed!: (error: Error | undefined) => void;
  private readonly closedPromise = new Promise<Error | undefined>((r) => {
    this.resolveClosed = r;
  });

  constructor(
    private readonly journal: Journal,
    readonly name: string,
    private readonly handle: ProjectionOptions['handle'],
    private readonly transactional: boolean,
    private readonly retry: RetryingOptions & { readonly clock: Clock },
    start: Checkpoint,
  ) {
    this.checkpoint = start;
  }

  /**
   * Follows the global log from `after`. The subscription pauses (unsubscribes) when a few batches
   * wait unhandled and resumes from the last one read, so a slow handler never makes the runner read
   * the whole log into memory.
   */
  run(batchSize: number, after: Checkpoint = this.checkpoint): void {
    this.subscription = this.journal.subscribe({ after, batchSize }).subscribe({
      next: (event) => {
        this.queue.push(event);
        if (this.queue.length >= batchSize * QUEUED_BATCHES && this.subscription !== undefined) {
          this.subscription.unsubscribe();
          this.subscription = undefined;
        }
        if (this.queue.length === 1) queueMicrotask(() => this.work(batchSize));
      },
      error: (error: unknown) => this.end(asError(error)),
      complete: () =>
        this.end(
          new TroupeError('ERR_ILLEGAL_STATE', `projection "${this.name}" stopped: its journal closed`),
        ),
    });
  }

  private work(batchSize: number): void {
    if (this.working) return;
    this.working = true;
    this.workDone = this.workThrough(batchSize);
  }

  private async workThrough(batchSize: number): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.stopped) {
        const batch = this.queue.splice(0, batchSize);
        await this.apply(batch);
        this.checkpoint = batch[batch.length - 1]!.checkpoint;
        if (this.subscription === undefined && !this.stopped && this.queue.length <= batchSize) {
          this.run(batchSize, this.queue[this.queue.length - 1]?.checkpoint ?? this.checkpoint);
        }
      }
    } catch (error) {
      this.end(asError(error));
    } finally {
      this.working = false;
    }
  }

  private async apply(batch: StoredEvent[]): Promise<void> {
    const last = batch[batch.length - 1]!.checkpoint;
    let attempts = 0;
    const once = async () => {
      attempts++;
      if (this.transactional) {
        const journal = this.journal as SqlJournal;
        await journal.transaction(async (tx) => {
          await this.handle(batch, tx);
          // Only from where this runner started: a second runner of the same name fails here,
          // and its read model writes roll back with it.
          await journal.saveCheckpointIn(tx, this.name, last, this.checkpoint);
        });
      } else {
        await this.handle(batch, undefined);
        await this.journal.saveCheckpoint(this.name, last);
      }
    };
    try {
      await retrying(once, {
        ...this.retry,
        retryable: (error) => !TroupeError.is(error, 'ERR_PROJECTION_FAILED') && !this.stopped,
      });
    } catch (error) {
      if (TroupeError.is(error, 'ERR_PROJECTION_FAILED')) throw error;
      throw new TroupeError(
        'ERR_PROJECTION_FAILED',
        `projection "${this.name}" failed on the batch after ${JSON.stringify(this.checkpoint)} (${attempts} attempts): ${asError(error).message}`,
        { cause: error, details: { projection: this.name, after: this.checkpoint, attempts } },
      );
    }
  }

  async caughtUp(): Promise<void> {
    // Polls: for tests and tools, not a hot path.
    for (;;) {
      if (this.stopped) throw new TroupeError('ERR_ILLEGAL_STATE', `projection "${this.name}" has stopped`);
      if (this.queue.length === 0 && !this.working) {
        const ahead = await this.journal.readAll({ after: this.checkpoint, limit: 1 });
        if (ahead.length === 0 && this.queue.length === 0 && !this.working) return;
      }
      await sleep(5, { clock: this.retry.clock });
    }
  }

  private end(error: Error | undefined): void {
    if (this.stopped) return;
    this.stopped = true;
    this.subscription?.unsubscribe();
    this.resolveClosed(error);
  }

  async close(): Promise<void> {
    this.end(undefined);
    await this.workDone;
  }

  drain(): Promise<void> {
    return this.close();
  }

  closed(): Promise<Error | undefined> {
    return this.closedPromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Options of {@link startSearchProjection}. */
export interface SearchProjectionOptions {
  /** The journal whose global log feeds the index. */
  readonly journal: Journal;
  /** The name its checkpoint is stored under. */
  readonly name: string;
  /** The index to keep in sync. */
  readonly index: SearchIndex;
  /**
   * What an event does to the index: documents to upsert, ids to remove, or nothing. Documents
   * replace those with the same id, so a batch handled twice after a crash leaves the same index.
   */
  readonly toIndex: (
    event: StoredEvent,
  ) => { readonly upsert?: readonly SearchDocument[]; readonly remove?: readonly string[] } | undefined;
  /** Most events per batch. Defaults to 500. */
  readonly batchSize?: number;
}

/**
 * A projection that keeps a search index in sync with memory events (agent recall). The index lives
 * outside the journal's database, so the checkpoint is stored after each batch is indexed
 * (at-least-once, made harmless by upserts by id).
 * @example
 * ```ts
 * await startSearchProjection({
 *   journal, name: 'recall', index: embeddedSearchIndex(),
 *   toIndex: (e) => e.type === 'remembered' ? { upsert: [{ id: `${e.stream}:${e.version}`, text: (e.data as { text: string }).text }] } : undefined,
 * });
 * ```
 */
export async function startSearchProjection(options: SearchProjectionOptions): Promise<Projection> {
  const { index, toIndex } = options;
  if (typeof index?.upsert !== 'function') throw invalidOption('index', 'must be a search index', index);
  if (typeof toIndex !== 'function') throw invalidOption('toIndex', 'must be a function', toIndex);
  return startProjection({
    journal: options.journal,
    name: options.name,
    transactional: false,
    ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
    handle: async (events) => {
      // Applied in order, runs of upserts and removes kept apart, so a later remove wins.
      let upserts: SearchDocument[] = [];
      for (const event of events) {
        const change = toIndex(event);
        if (change === undefined) continue;
        if (change.upsert !== undefined) upserts.push(...change.upsert);
        if (change.remove !== undefined && change.remove.length > 0) {
          if (upserts.length > 0) await index.upsert(upserts);
          upserts = [];
          await index.remove(change.remove);
        }
      }
      if (upserts.length > 0) await index.upsert(upserts);
    },
  });
}
