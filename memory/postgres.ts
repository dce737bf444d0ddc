import type pg from 'pg';
import { invalidOption } from '../protocols/index.js';
import { backoffDelay, type Clock, exponential, type Random, type TimerHandle } from '../runtime/index.js';
import { journalDefaults } from './journal.js';
import {
  type SqlDriver,
  type SqlExecutor,
  type SqlJournal,
  type SqlJournalOptions,
  sqlJournal,
} from './sql.js';

/** Options of {@link postgresJournal}. */
export interface PostgresJournalOptions extends SqlJournalOptions {
  /** `postgres://user@host:port/db`. Required unless `pool` is given. */
  readonly connectionString?: string;
  /** A `pg` pool you made yourself; the journal then leaves it open on `close()`. */
  readonly pool?: pg.Pool;
  /** Connections of the pool the journal makes. Defaults to 6 (with `pool`: that pool's `max`). */
  readonly poolSize?: number;
  /**
   * How many group-commit statements may run at once, each on its own connection; the rest of the
   * pool serves reads. Defaults to 4, or `poolSize` when that is smaller.
   */
  readonly concurrency?: number;
}

/**
 * The journal on PostgreSQL (or TimescaleDB) through `pg`. Runs the migrations before it resolves,
 * under an advisory lock, so nodes may start together. Live subscriptions are woken by
 * LISTEN/NOTIFY; a lost connection is replaced by itself (calls meanwhile fail with
 * `ERR_JOURNAL_UNAVAILABLE`).
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for bad options; `ERR_JOURNAL_UNAVAILABLE` when the
 * server cannot be reached or migrated.
 * @example
 * ```ts
 * const journal = await postgresJournal({ connectionString: process.env.DATABASE_URL });
 * ```
 */
export async function postgresJournal(options: PostgresJournalOptions): Promise<SqlJournal> {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', 'must be an object');
  const { connectionString, pool } = options;
  // A pool of your own has its own size.
  const poolSize = options.poolSize ?? pool?.options.max ?? 6;
  const concurrency = options.concurrency ?? Math.min(4, poolSize);
  if (pool === undefined && (typeof connectionString !== 'string' || connectionString === ''))
    throw invalidOption('connectionString', 'is required unless a pool is given', connectionString);
  if (connectionString !== undefined) checkConnectionString(connectionString);
  if (!Number.isInteger(poolSize) || poolSize < 1)
    throw invalidOption('poolSize', 'must be a positive integer', poolSize);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > poolSize)
    throw invalidOption('concurrency', 'must be a positive integer no larger than poolSize', concurrency);
  // Loaded on first use: most programs that import Troupe never talk to Postgres.
  const driver = (await import('pg')).default;
  const owned = pool === undefined;
  // A journal nobody closed must not keep the process alive: idle connections let it exit.
  const thePool = pool ?? new driver.Pool({ connectionString, max: poolSize, allowExitOnIdle: true });
  const timing = {
    clock: options.clock ?? journalDefaults.clock,
    random: options.random ?? journalDefaults.random,
  };
  return sqlJournal(new PgDriver(driver, thePool, owned, concurrency, connectionString, timing), options);
}

/**
 * `pg` reads anything as a connection string (`hello world` becomes a database on a host named
 * `base`), so a typo would surface as a DNS failure; refuse what is not a URL or a socket path.
 * The string is never echoed: it may hold a password.
 */
function checkConnectionString(connectionString: unknown): void {
  const invalid = () =>
    invalidOption(
      'connectionString',
      'is not a valid connection string: expected a URL such as postgres://user:password@host:5432/database (or a socket directory such as /var/run/postgresql)',
    );
  if (typeof connectionString !== 'string') throw invalid();
  if (connectionString.startsWith('/')) return;
  if (!/^(postgres|postgresql|socket):/i.test(connectionString)) throw invalid();
  try {
    new URL(connectionString);
  } catch {
    throw invalid();
  }
}

class PgDriver implements SqlDriver {
  private readonly listeners = new Map<string, Set<() => void>>();
  private listener: PgListener | undefined;
  private closed = false;

  constructor(
    private readonly driver: typeof pg,
    private readonly pool: pg.Pool,
    private readonly owned: boolean,
    readonly concurrency: number,
    private readonly connectionString: string | undefined,
    private readonly timing: ListenerTiming,
  ) {
    // An idle connection whose server went away emits here; the pool drops it and makes a new one
    // when asked. Without a listener Node would crash the process.
    pool.on('error', () => {});
  }

  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }> {
    return this.pool.query(text, params) as unknown as Promise<{ rows: R[] }>;
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // A checked-out client that loses its server emits 'error' besides failing its query; the
    // query's failure is what counts, and an unheard 'error' event would crash the process.
    const ignore = () => {};
    client.on('error', ignore);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn({
        query: async <R>(text: string, params?: unknown[]) => ({
          rows: (await client.query(text, params)).rows as R[],
        }),
      });
      await client.query('COMMIT');
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = error as Error;
      }
      throw error;
    } finally {
      // A connection that cannot even roll back is destroyed rather than reused.
      client.off('error', ignore);
      client.release(broken);
    }
  }

  async listen(channel: string, listener: () => void): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('the journal is closed');
    let set = this.listeners.get(channel);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    set.add(listener);
    this.listener ??= new PgListener(this.driver, this.pool, this.connectionString, this.timing, (ch) => {
      for (const l of this.listeners.get(ch) ?? []) l();
    });
    await this.listener.add(channel);
    return async () => {
      set.delete(listener);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.listener?.close();
    if (this.owned) await this.pool.end();
  }
}

/** The clock and random source the listener's reconnects wait on. */
interface ListenerTiming {
  readonly clock: Clock;
  readonly random: Random;
}

/** Waits between attempts to listen again: 100 ms, doubling up to 2 s. */
const RECONNECT_BACKOFF = exponential({ baseMs: 100, maxMs: 2000 });

/**
 * One connection that LISTENs, outside the pool, and connects again (with backoff) when it is lost;
 * after a reconnect every channel is woken once, for what was missed meanwhile.
 */
class PgListener {
  private client: pg.Client | undefined;
  private readonly channels = new Set<string>();
  private connecting: Promise<void> | undefined;
  private closed = false;
  private retry: TimerHandle | undefined;

  constructor(
    private readonly driver: typeof pg,
    private readonly pool: pg.Pool,
    private readonly connectionString: string | undefined,
    private readonly timing: ListenerTiming,
    private readonly notify: (channel: string) => void,
  ) {}

  async add(channel: string): Promise<void> {
    if (this.channels.has(channel)) return;
    this.channels.add(channel);
    if (this.client !== undefined) await this.client.query(`LISTEN "${channel}"`);
    else await this.connect();
  }

  private connect(): Promise<void> {
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** Connects and listens; `failures` is how many attempts in a row failed before this one. */
  private async open(failures = 0): Promise<void> {
    if (this.closed) return;
    const client = new this.driver.Client(this.connectionString ?? this.pool.options);
    const lost = () => {
      if (this.client !== client) return;
      this.client = undefined;
      client.end().catch(() => {});
      this.scheduleReconnect(1);
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (n) => this.notify(n.channel));
    try {
      await client.connect();
      for (const channel of this.channels) await client.query(`LISTEN "${channel}"`);
    } catch {
      client.end().catch(() => {});
      this.scheduleReconnect(failures + 1);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    // The listening connection waits by nature; like the pool's idle ones, it must not keep alive a
    // process whose journal nobody closed (pg's Client has unref(); its types do not say so).
    (client as unknown as { unref?: () => void }).unref?.();
    this.client = client;
    for (const channel of this.channels) this.notify(channel);
  }

  /** Connects again after the backoff for `failures` failures in a row (housekeeping: never holds the process). */
  private scheduleReconnect(failures: number): void {
    if (this.closed || this.retry !== undefined) return;
    const { clock, random } = this.timing;
    this.retry = clock.setTimeout(
      () => {
        this.retry = undefined;
        void this.open(failures);
      },
      backoffDelay(RECONNECT_BACKOFF, failures, random),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.retry?.cancel();
    await this.connecting?.catch(() => {});
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }
}
