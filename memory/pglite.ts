import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { lock } from 'proper-lockfile';
import { invalidOption, TroupeError } from '../protocols/index.js';
import { unavailable } from './journal.js';
import {
  type SqlDriver,
  type SqlExecutor,
  type SqlJournal,
  type SqlJournalOptions,
  sqlJournal,
} from './sql.js';

/** Options of {@link pgliteJournal}. */
export interface PgliteJournalOptions extends SqlJournalOptions {
  /**
   * Where the database lives: a directory (created when missing) keeps it across restarts of the
   * process; `memory://` keeps it in memory. Ignored when `db` is given.
   */
  readonly dataDir?: string;
  /** A PGlite you opened yourself; the journal then leaves it open on `close()`. */
  readonly db?: PgliteDatabase;
  /**
   * Told what a slow step is doing: creating a new database in `dataDir` takes several seconds and
   * about 40 MB. Defaults to writing the line to stderr; `false` for silence.
   */
  readonly notice?: ((line: string) => void) | false;
  /**
   * Told of a failure that no call of the journal returns: its directory's lock was lost
   * (`ERR_JOURNAL_LOCKED`; the process stalled past the lock's 10 s and another may open the
   * directory now). Defaults to writing it to stderr. A journal has no system of its own; to have it
   * on a system's stream, publish it there: `onDefect: (error) => system.publish({ type: 'journal-defect', error })`.
   */
  readonly onDefect?: (error: TroupeError) => void;
}

/**
 * What the journal uses of a PGlite you opened yourself: a `PGlite` of `@electric-sql/pglite` is
 * one. Declared here so that Troupe's types do not pull in PGlite's, which need `@types/emscripten`.
 */
export interface PgliteDatabase {
  readonly closed: boolean;
  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** The lock file inside a data directory: one process at a time may open the directory. */
export const PGLITE_LOCK_FILE = 'troupe.lock';

/**
 * How long a lock whose holder stopped refreshing it (a process killed with `kill -9`) keeps the
 * directory locked. The holder refreshes it every half of this; PGlite's longest pause of the event
 * loop (creating a database) is about a second, well within it.
 */
const LOCK_STALE_MS = 10_000;

/**
 * A durable journal embedded in the process: PostgreSQL compiled to WebAssembly (PGlite), in a
 * directory on disk, with the same tables and SQL as {@link postgresJournal}. No server to run. One
 * process at a time may open a directory: the journal locks it (a `troupe.lock` inside it) until
 * `close()`, or until its process ends; a process killed with `kill -9` leaves a lock that expires
 * within 10 s. Runs the migrations before it resolves.
 *
 * @throws TroupeError `ERR_JOURNAL_LOCKED` when another process has the directory open;
 * `ERR_JOURNAL_UNAVAILABLE` when the directory cannot be created, written (the message names the
 * path and the permission) or migrated.
 * @example
 * ```ts
 * const journal = await pgliteJournal({ dataDir: './data/journal' });
 * ```
 */
export async function pgliteJournal(options: PgliteJournalOptions = {}): Promise<SqlJournal> {
  if (options.db === undefined && options.dataDir !== undefined && typeof options.dataDir !== 'string')
    throw invalidOption('dataDir', 'must be a directory path or memory://', options.dataDir);
  if (options.notice !== undefined && options.notice !== false && typeof options.notice !== 'function')
    throw invalidOption('notice', 'must be a function or false', options.notice);
  if (options.onDefect !== undefined && typeof options.onDefect !== 'function')
    throw invalidOption('onDefect', 'must be a function', options.onDefect);
  const owned = options.db === undefined;
  const dataDir = options.dataDir ?? 'memory://';
  const directory = owned ? directoryOf(dataDir) : undefined;
  let unlock: (() => Promise<void>) | undefined;
  if (directory !== undefined) {
    // Without a listener, the console is the only place left to say it.
    const onDefect = options.onDefect ?? ((error: TroupeError) => console.error(`troupe: ${error.message}`));
    unlock = await lockDirectory(directory, onDefect);
    if (!existsSync(join(directory, 'PG_VERSION'))) {
      const notice = options.notice ?? ((line: string) => process.stderr.write(`${line}\n`));
      if (notice !== false)
        notice(`troupe: creating a PGlite database in ${directory} (takes several seconds and about 40 MB)`);
    }
  }
  // Loaded on first use: most programs that import Troupe never open a PGlite.
  let db: PgliteDatabase;
  try {
    db = options.db ?? (await (await import('@electric-sql/pglite')).PGlite.create(dataDir));
  } catch (error) {
    await unlock?.().catch(() => {});
    throw unavailable(`open of ${directory ?? dataDir}`, error);
  }
  return sqlJournal(new PgliteDriver(db, owned, unlock), options);
}

/** The directory a PGlite `dataDir` names on this machine's disk; undefined for memory and browsers. */
function directoryOf(dataDir: string): string | undefined {
  if (/^(memory|idb|opfs-ahp):\/\//.test(dataDir)) return undefined;
  return dataDir.startsWith('file://') ? dataDir.slice('file://'.length) : dataDir;
}

/**
 * Creates the directory when missing, checks that this process may write it (PGlite would fail
 * only after loading, with an errno object for a reason), and locks it.
 * @returns what releases the lock.
 */
async function lockDirectory(
  directory: string,
  onDefect: (error: TroupeError) => void,
): Promise<() => Promise<void>> {
  try {
    mkdirSync(directory, { recursive: true });
  } catch (error) {
    throw notWritable(directory, 'cannot be created', error);
  }
  try {
    accessSync(directory, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (error) {
    throw notWritable(directory, 'is not readable and writable by this process', error);
  }
  try {
    return await lock(directory, {
      lockfilePath: join(directory, PGLITE_LOCK_FILE),
      realpath: false,
      stale: LOCK_STALE_MS,
      // Losing the lock (the process stalled past LOCK_STALE_MS and another took over) cannot be
      // undone here; what matters is saying so, not crashing the process from a timer.
      onCompromised: (error) =>
        onDefect(
          new TroupeError(
            'ERR_JOURNAL_LOCKED',
            `the lock of the PGlite directory ${directory} was lost (${error.message}); another process may open it now`,
            { cause: error, details: { dataDir: directory } },
          ),
        ),
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') {
      throw new TroupeError(
        'ERR_JOURNAL_LOCKED',
        `the PGlite directory ${directory} is open in another process; one process at a time may open it ` +
          `(close the journal there, or give this process its own dataDir; the lock of a killed process ` +
          `expires within ${LOCK_STALE_MS / 1000} s)`,
        { details: { dataDir: directory } },
      );
    }
    throw notWritable(directory, 'cannot be locked', error);
  }
}

function notWritable(directory: string, problem: string, error: unknown): TroupeError {
  const code = (error as NodeJS.ErrnoException).code;
  const why =
    code === 'EACCES' || code === 'EPERM'
      ? 'permission denied'
      : code === 'EROFS'
        ? 'read-only file system'
        : undefined;
  return new TroupeError(
    'ERR_JOURNAL_UNAVAILABLE',
    `the PGlite directory ${directory} ${problem}: ${why === undefined ? (error as Error).message : `${why} (${code})`}`,
    { cause: error, details: { dataDir: directory, code } },
  );
}

class PgliteDriver implements SqlDriver {
  // One connection: transactions run one at a time anyway.
  readonly concurrency = 1;

  constructor(
    private readonly db: PgliteDatabase,
    private readonly owned: boolean,
    private readonly unlock: (() => Promise<void>) | undefined,
  ) {}

  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }> {
    return this.db.query<R>(text, params);
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) =>
      fn({ query: <R>(text: string, params?: unknown[]) => tx.query<R>(text, params) }),
    );
  }

  async listen(channel: string, listener: () => void): Promise<() => Promise<void>> {
    const unlisten = await this.db.listen(channel, () => listener());
    return async () => {
      // Closing the database ends its listeners anyway.
      if (!this.db.closed) await unlisten().catch(() => {});
    };
  }

  async close(): Promise<void> {
    if (this.owned && !this.db.closed) await this.db.close();
    // Released after the database has written its last page.
    await this.unlock?.().catch(() => {});
  }
}
