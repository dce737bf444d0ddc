import type { PGlite } from '@electric-sql/pglite';
import { invalidOption } from '../protocols/index.js';
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
  readonly db?: PGlite;
}

/**
 * A durable journal embedded in the process: PostgreSQL compiled to WebAssembly (PGlite), in a
 * directory on disk, with the same tables and SQL as {@link postgresJournal}. No server to run; one
 * process at a time may open a directory. Runs the migrations before it resolves.
 *
 * @throws TroupeError `ERR_JOURNAL_UNAVAILABLE` when the directory cannot be opened or migrated.
 * @example
 * ```ts
 * const journal = await pgliteJournal({ dataDir: './data/journal' });
 * ```
 */
export async function pgliteJournal(options: PgliteJournalOptions = {}): Promise<SqlJournal> {
  if (options.db === undefined && options.dataDir !== undefined && typeof options.dataDir !== 'string')
    throw invalidOption('dataDir', 'must be a directory path or memory://', options.dataDir);
  const owned = options.db === undefined;
  // Loaded on first use: most programs that import Troupe never open a PGlite.
  let db: PGlite;
  try {
    db =
      options.db ??
      (await (await import('@electric-sql/pglite')).PGlite.create(options.dataDir ?? 'memory://'));
  } catch (error) {
    throw unavailable('open', error);
  }
  return sqlJournal(new PgliteDriver(db, owned), options);
}

class PgliteDriver implements SqlDriver {
  // One connection: transactions run one at a time anyway.
  readonly concurrency = 1;

  constructor(
    private readonly db: PGlite,
    private readonly owned: boolean,
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
  }
}
