import { invalidOption, TroupeError } from '../protocols/index.js';
import { type Clock, exponential, type Random, retrying } from '../runtime/index.js';
import { type BatchPlan, duplicateKey, type PlannedRow, planBatch, type StreamFacts } from './batch.js';
import {
  type AppendRequest,
  type AppendResult,
  type Checkpoint,
  GroupCommitJournal,
  type Journal,
  type JournalOptions,
  type JournalStore,
  MESSAGE_ID_SEPARATOR,
  type RawEvent,
  resolveJournalOptions,
  unavailable,
} from './journal.js';

/** Runs SQL: a pool, a client inside a transaction, a PGlite. */
export interface SqlExecutor {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
}

/** What the SQL journal needs from a driver (`pg` or PGlite). */
export interface SqlDriver extends SqlExecutor {
  /** How many transactions may run at once. */
  readonly concurrency: number;
  /** Runs `fn` in a transaction on one connection: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Calls `listener` on each NOTIFY on `channel`, and after a lost connection comes back. */
  listen(channel: string, listener: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Options of the SQL journals (Postgres and PGlite). */
export interface SqlJournalOptions extends JournalOptions {
  /**
   * The prefix of the journal's table names, so several journals can share a database.
   * Lower-case letters, digits and `_`. Defaults to `troupe_`.
   */
  readonly prefix?: string;
}

/** One row of the runtime metrics table (a hypertable under TimescaleDB). */
export interface MetricRow {
  /** Defaults to now. */
  readonly time?: Date;
  readonly node: string;
  readonly name: string;
  readonly value: number;
  readonly labels?: Readonly<Record<string, string>>;
}

/** One row of the agent usage table (a hypertable under TimescaleDB): tokens and cost of a model call. */
export interface UsageRow {
  /** Defaults to now. */
  readonly time?: Date;
  readonly agent: string;
  readonly model: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly costUsd?: number;
}

/**
 * A journal in SQL (Postgres or PGlite): the {@link Journal} plus what lives beside it in the same
 * database: transactions for read models (a projection stores its checkpoint in the same
 * transaction), and the time-series tables of metrics and agent usage.
 */
export interface SqlJournal extends Journal {
  /** The table names, with the prefix. */
  readonly tables: Readonly<
    Record<'events' | 'snapshots' | 'checkpoints' | 'fences' | 'metrics' | 'usage', string>
  >;
  /** True when TimescaleDB is installed in the database and the time-series tables are hypertables. */
  readonly timescale: boolean;
  /** Runs `fn` in one transaction of the journal's database. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /**
   * Stores a reader's checkpoint within `tx`, so it commits with the reader's own writes. With
   * `expected`, only if the stored checkpoint is still that one (or none is stored and `expected` is
   * the start): a second reader of the same name then fails (`ERR_PROJECTION_FAILED`).
   */
  saveCheckpointIn(
    tx: SqlExecutor,
    name: string,
    checkpoint: Checkpoint,
    expected?: Checkpoint,
  ): Promise<void>;
  /** Appends rows to the metrics table. */
  recordMetrics(rows: readonly MetricRow[]): Promise<void>;
  /** Appends rows to the agent usage table. */
  recordUsage(rows: readonly UsageRow[]): Promise<void>;
}

/**
 * The migrations, in order. Each runs once per database and prefix, in one transaction with the
 * others, under an advisory lock so nodes that start together do not race. `{p}` is the prefix.
 */
const MIGRATIONS: readonly {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
}[] = [
  {
    version: 1,
    name: 'event log, snapshots, checkpoints, fences',
    statements: [
      // No table of stream versions: a stream's version is its newest event's, one step down the
      // unique (stream_id, version) index, which saves an upsert per stream in every append.
      // The event log stays a plain table: a hypertable cannot enforce unique(stream_id, version)
      // without the time column in the key.
      `CREATE TABLE {p}events (
        global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
        stream_id text NOT NULL,
        version bigint NOT NULL,
        type text NOT NULL,
        data jsonb NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{}',
        message_id text,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (stream_id, version),
        UNIQUE (stream_id, message_id)
      )`,
      `CREATE INDEX {p}events_commit_order ON {p}events (transaction_id, global_position)`,
      `CREATE TABLE {p}snapshots (stream_id text PRIMARY KEY, version bigint NOT NULL, state jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
      `CREATE TABLE {p}checkpoints (name text PRIMARY KEY, tx bigint NOT NULL, position bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`,
      `CREATE TABLE {p}fences (stream_id text PRIMARY KEY, fence bigint NOT NULL)`,
    ],
  },
  {
    version: 2,
    name: 'time series: runtime metrics and agent usage',
    statements: [
      `CREATE TABLE {p}metrics (time timestamptz NOT NULL DEFAULT now(), node text NOT NULL, name text NOT NULL, value double precision NOT NULL, labels jsonb NOT NULL DEFAULT '{}')`,
      `CREATE INDEX {p}metrics_name_time ON {p}metrics (name, time DESC)`,
      `CREATE TABLE {p}usage (time timestamptz NOT NULL DEFAULT now(), agent text NOT NULL, model text NOT NULL, input_tokens integer NOT NULL, output_tokens integer NOT NULL, cost_usd double precision)`,
      `CREATE INDEX {p}usage_agent_time ON {p}usage (agent, time DESC)`,
    ],
  },
];

/** The newest migration version. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Runs the migrations the database lacks, under an advisory lock, in one transaction; then, when the
 * `timescaledb` extension is installed, turns the time-series tables into hypertables. Resolves with
 * whether they are hypertables.
 */
export async function migrate(driver: SqlDriver, prefix: string): Promise<boolean> {
  return driver.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${prefix}migrations`]);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS ${prefix}migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await tx.query<{ version: number }>(`SELECT version FROM ${prefix}migrations`);
    const applied = new Set(rows.map((r) => Number(r.version)));
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      for (const statement of migration.statements) await tx.query(statement.replaceAll('{p}', prefix));
      await tx.query(`INSERT INTO ${prefix}migrations (version, name) VALUES ($1, $2)`, [
        migration.version,
        migration.name,
      ]);
    }
    const timescale = await tx.query(`SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'`);
    if (timescale.rows.length === 0) return false;
    for (const table of ['metrics', 'usage']) {
      await tx.query(
        `SELECT create_hypertable($1::regclass, 'time', if_not_exists => true, migrate_data => true)`,
        [`${prefix}${table}`],
      );
    }
    return true;
  });
}

/** Checks a table prefix: it is written into SQL. */
export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || !/^[a-z_][a-z0-9_]{0,39}$/.test(prefix)) {
    throw invalidOption(
      'prefix',
      'must be lower-case letters, digits and _ (at most 40), not starting with a digit',
      prefix,
    );
  }
  return prefix;
}

/** Builds an SQL journal over a driver, after migrating its database. */
export async function sqlJournal(driver: SqlDriver, options: SqlJournalOptions = {}): Promise<SqlJournal> {
  const resolved = resolveJournalOptions(options);
  const prefix = checkPrefix(options.prefix ?? 'troupe_');
  let timescale: boolean;
  try {
    timescale = await migrate(driver, prefix);
  } catch (error) {
    await driver.close().catch(() => {});
    throw unavailable('migrations', error);
  }
  const store = new SqlStore(driver, prefix, { clock: resolved.clock, random: resolved.random });
  return new SqlJournalImpl(store, resolved, timescale);
}

class SqlJournalImpl extends GroupCommitJournal implements SqlJournal {
  readonly tables: SqlJournal['tables'];

  constructor(
    private readonly sql: SqlStore,
    options: Required<JournalOptions>,
    readonly timescale: boolean,
  ) {
    super(sql, options);
    this.tables = sql.tables;
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    this.checkUsable();
    return this.sql.driver.transaction(fn);
  }

  /** Refuses calls on a closed journal, as the journal's own methods do. */
  private checkUsable(): void {
    if (this.isClosed) throw new TroupeError('ERR_ILLEGAL_STATE', 'the journal is closed');
  }

  async saveCheckpointIn(
    tx: SqlExecutor,
    name: string,
    checkpoint: Checkpoint,
    expected?: Checkpoint,
  ): Promise<void> {
    this.checkUsable();
    await this.sql.saveCheckpoint(name, checkpoint, tx, expected);
  }

  async recordMetrics(rows: readonly MetricRow[]): Promise<void> {
    this.checkUsable();
    if (rows.length === 0) return;
    try {
      await this.sql.driver.query(
        `INSERT INTO ${this.tables.metrics} (time, node, name, value, labels)
         SELECT coalesce(t, now()), n, m, v, l FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::float8[], $5::jsonb[]) AS r(t, n, m, v, l)`,
        [
          rows.map((r) => r.time ?? null),
          rows.map((r) => r.node),
          rows.map((r) => r.name),
          rows.map((r) => r.value),
          rows.map((r) => JSON.stringify(r.labels ?? {})),
        ],
      );
    } catch (error) {
      throw unavailable('recordMetrics', error);
    }
  }

  async recordUsage(rows: readonly UsageRow[]): Promise<void> {
    this.checkUsable();
    if (rows.length === 0) return;
    try {
      await this.sql.driver.query(
        `INSERT INTO ${this.tables.usage} (time, agent, model, input_tokens, output_tokens, cost_usd)
         SELECT coalesce(t, now()), a, m, i, o, c FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::int[], $5::int[], $6::float8[]) AS r(t, a, m, i, o, c)`,
        [
          rows.map((r) => r.time ?? null),
          rows.map((r) => r.agent),
          rows.map((r) => r.model),
          rows.map((r) => r.inputTokens),
          rows.map((r) => r.outputTokens),
          rows.map((r) => r.costUsd ?? null),
        ],
      );
    } catch (error) {
      throw unavailable('recordUsage', error);
    }
  }
}

/**
 * The rows as one JSON array for json_to_recordset: data and metadata are JSON already and go in as
 * they are, where array parameters would escape every quote of them twice over. (The recordset reads
 * JSON null data as SQL NULL; the INSERT turns it back.)
 */
function rowsJson(rows: readonly PlannedRow[]): string {
  let json = '[';
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (i > 0) json += ',';
    json += `{"s":${JSON.stringify(r.stream)},"v":${r.version},"t":${JSON.stringify(r.type)},"d":${r.data},"m":${r.metadata},"i":${r.messageId === null ? 'null' : JSON.stringify(r.messageId)}}`;
  }
  return `${json}]`;
}

const EVENT_COLUMNS = `stream_id AS stream, version, type, data, metadata, message_id AS "messageId",
  transaction_id::text AS tx, global_position AS position, created_at AS "createdAt"`;

/**
 * The SQLSTATEs of a lost race with another writer: a unique index violation, a deadlock, a
 * serialization failure. The fast path then takes the locked way; the locked way tries again.
 */
const RACE_CODES = new Set(['23505', '40P01', '40001']);
const lostRace = (error: unknown) => RACE_CODES.has((error as { code?: string } | null)?.code ?? '');
/** How often the locked way tries before it reports a conflict. */
const LOCKED_ATTEMPTS = 5;
/** Short and fully jittered (0 to 5, 10, 20, 20 ms), so racing writers spread out. */
const LOCKED_BACKOFF = exponential({ baseMs: 2.5, maxMs: 10, jitter: 1 });

/** The journal's SQL, shared by the Postgres and PGlite adapters. */
class SqlStore implements JournalStore {
  readonly concurrency: number;
  readonly tables: SqlJournal['tables'];
  private readonly channel: string;
  /** Each stream's version and fence as this store last saw them, for the fast path. */
  private readonly known = new Map<string, { version: number; fence: number | undefined }>();

  constructor(
    readonly driver: SqlDriver,
    private readonly prefix: string,
    /** The journal's clock and random source, for the waits between tries of the locked way. */
    private readonly timing: { readonly clock: Clock; readonly random: Random },
  ) {
    this.concurrency = driver.concurrency;
    const t = (name: string) => `${prefix}${name}`;
    this.tables = {
      events: t('events'),
      snapshots: t('snapshots'),
      checkpoints: t('checkpoints'),
      fences: t('fences'),
      metrics: t('metrics'),
      usage: t('usage'),
    };
    this.channel = t('events');
  }

  /**
   * Appends a batch. The fast path is one statement in autocommit, planned from the versions and
   * fences this store saw last: a version or message id taken since fails it on the unique indexes,
   * and the statement itself checks that no newer fence was stored and that no snapshot covers the
   * planned versions (pruning is the one way a taken version can be gone). Its transaction id is
   * taken after the previous version committed, as on the locked way. Anything the fast path cannot
   * settle (a stream not seen yet, an empty append, a conflict, a duplicate, a stale fence, another
   * writer) goes the locked way, which reads the facts afresh.
   */
  async appendBatch(requests: readonly AppendRequest[]): Promise<(AppendResult | TroupeError)[]> {
    if (this.fastPathFits(requests)) {
      const plan = planBatch(requests, this.known, new Map());
      if (!plan.results.some((r) => r instanceof TroupeError)) {
        try {
          if (await this.write(this.driver, plan, requests)) {
            this.remember(plan);
            return plan.results;
          }
        } catch (error) {
          if (!lostRace(error)) throw error;
        }
      }
    }
    return this.appendLocked(requests);
  }

  /** True when the store has seen every stream of the batch and every request appends events. */
  private fastPathFits(requests: readonly AppendRequest[]): boolean {
    for (const { stream, events } of requests)
      if (events.length === 0 || !this.known.has(stream)) return false;
    return true;
  }

  /** Takes in what a batch did, after the facts the locked path read (if it did). */
  private remember(plan: BatchPlan, facts?: ReadonlyMap<string, StreamFacts>): void {
    // A bound on memory: forgetting only sends the next batch of those streams the locked way.
    if (this.known.size > 100_000) this.known.clear();
    if (facts !== undefined) for (const [stream, f] of facts) this.known.set(stream, { ...f });
    // Updated in place: the map's own objects, made above or by an earlier batch.
    for (const [stream, version] of plan.versions) {
      const known = this.known.get(stream);
      if (known === undefined) this.known.set(stream, { version, fence: undefined });
      else known.version = version;
    }
    for (const [stream, fence] of plan.fences) {
      const known = this.known.get(stream);
      if (known === undefined) this.known.set(stream, { version: 0, fence });
      else known.fence = fence;
    }
  }

  /**
   * The locked way, tried again after a lost race: a fast-path statement (of another node, or a
   * hand-written INSERT) took a version between the read and the write, or two writers deadlocked.
   */
  private appendLocked(requests: readonly AppendRequest[]): Promise<(AppendResult | TroupeError)[]> {
    const streams = [...new Set(requests.map((r) => r.stream))];
    let attempts = 0;
    return retrying(
      () => {
        attempts++;
        return this.appendLockedOnce(requests, streams);
      },
      { attempts: LOCKED_ATTEMPTS, backoff: LOCKED_BACKOFF, retryable: lostRace, ...this.timing },
    ).catch((error: unknown) => {
      if (!lostRace(error)) throw error;
      throw new TroupeError(
        'ERR_JOURNAL_CONFLICT',
        `other writers kept appending to the streams of this batch (${attempts} attempts)`,
        { cause: error, details: { streams, attempts } },
      );
    });
  }

  /** One try of the locked way: reads the facts afresh under advisory locks, plans and writes. */
  private appendLockedOnce(
    requests: readonly AppendRequest[],
    streams: readonly string[],
  ): Promise<(AppendResult | TroupeError)[]> {
    const { events, fences } = this.tables;
    return this.driver
      .transaction(async (tx) => {
        // Advisory locks first, in one order, before anything writes: the transaction id is taken
        // at the first write, so a stream's later version always has a later transaction id and
        // global reads in transaction order keep each stream in version order.
        await tx.query(
          `SELECT pg_advisory_xact_lock(h) FROM
             (SELECT DISTINCT hashtextextended($2 || s, 0) AS h FROM unnest($1::text[]) AS s ORDER BY h) AS locks`,
          [streams, this.prefix],
        );
        const known = await tx.query<{ stream: string; version: string | null; fence: string | null }>(
          `SELECT q.s AS stream, (SELECT max(version) FROM ${events} e WHERE e.stream_id = q.s) AS version, f.fence
             FROM unnest($1::text[]) AS q(s) LEFT JOIN ${fences} f ON f.stream_id = q.s`,
          [streams],
        );
        const facts = new Map<string, StreamFacts>();
        for (const row of known.rows) {
          facts.set(row.stream, {
            version: row.version === null ? 0 : Number(row.version),
            fence: row.fence === null ? undefined : Number(row.fence),
          });
        }
        const duplicates = await this.duplicates(tx, requests);
        const plan = planBatch(requests, facts, duplicates);
        if (plan.rows.length > 0 || plan.fences.size > 0) await this.write(tx, plan, undefined);
        return { plan, facts };
      })
      .then(({ plan, facts }) => {
        this.remember(plan, facts);
        return plan.results;
      });
  }

  /**
   * Writes a planned batch in one statement and wakes the readers. With `checked` (the fast path)
   * nothing is written, and false comes back, if a stream has a fence newer than a request's, or a
   * snapshot at or after the first planned version. The unique index refuses a planned version that
   * is taken; the snapshot check covers the one way a taken version can be gone (pruned), so a plan
   * made from an old idea of the stream can never leave a gap or reuse a version.
   */
  private async write(
    sql: SqlExecutor,
    plan: BatchPlan,
    checked: readonly AppendRequest[] | undefined,
  ): Promise<boolean> {
    const { events, fences, snapshots } = this.tables;
    const first = new Map<string, { version: number; fence: number | null }>();
    if (checked !== undefined) {
      for (const row of plan.rows)
        if (!first.has(row.stream)) first.set(row.stream, { version: row.version, fence: null });
      for (const r of checked) {
        const f = first.get(r.stream);
        if (f !== undefined && r.fence !== undefined && (f.fence === null || r.fence < f.fence))
          f.fence = r.fence;
      }
    }
    const checks = [...first.values()];
    const { rows } = await sql.query<{ blocked: boolean }>(
      `WITH blocked AS (
         SELECT 1 FROM unnest($5::text[], $6::int8[], $7::int8[]) AS c(s, v, f)
         WHERE EXISTS (SELECT 1 FROM ${snapshots} sn WHERE sn.stream_id = c.s AND sn.version >= c.v)
            OR (c.f IS NOT NULL AND EXISTS (SELECT 1 FROM ${fences} x WHERE x.stream_id = c.s AND x.fence > c.f))
         LIMIT 1),
       inserted AS (
         INSERT INTO ${events} (stream_id, version, type, data, metadata, message_id)
         SELECT r.s, r.v, r.t, coalesce(r.d, 'null'), r.m, r.i
         FROM json_to_recordset($1::json) AS r(s text, v int8, t text, d jsonb, m jsonb, i text)
         WHERE NOT EXISTS (SELECT 1 FROM blocked)
         -- One order for every writer's index entries, so two inserts cannot deadlock on them.
         ORDER BY r.s COLLATE "C", r.v
         RETURNING 1),
       fenced AS (
         INSERT INTO ${fences} (stream_id, fence) SELECT * FROM unnest($2::text[], $3::int8[])
         WHERE NOT EXISTS (SELECT 1 FROM blocked)
         ON CONFLICT (stream_id) DO UPDATE SET fence = greatest(${fences}.fence, excluded.fence) RETURNING 1)
       SELECT EXISTS (SELECT 1 FROM blocked) AS blocked,
         CASE WHEN EXISTS (SELECT 1 FROM inserted) THEN pg_notify($4, '') END AS notified`,
      [
        rowsJson(plan.rows),
        [...plan.fences.keys()],
        [...plan.fences.values()],
        this.channel,
        [...first.keys()],
        checks.map((c) => c.version),
        checks.map((c) => c.fence),
      ],
    );
    return rows[0]?.blocked !== true;
  }

  /** The earlier appends of the batch's message ids: their first version and event count. */
  private async duplicates(
    tx: SqlExecutor,
    requests: readonly AppendRequest[],
  ): Promise<Map<string, AppendResult>> {
    const found = new Map<string, AppendResult>();
    const withId = requests.filter((r) => r.messageId !== undefined);
    if (withId.length === 0) return found;
    const { rows } = await tx.query<{ stream: string; id: string; version: string; count: string }>(
      `SELECT e.stream_id AS stream, e.message_id AS id, e.version,
         1 + (SELECT count(*) FROM ${this.tables.events} x WHERE x.stream_id = e.stream_id
                AND x.version > e.version AND starts_with(x.message_id, e.message_id || $3)) AS count
       FROM ${this.tables.events} e JOIN unnest($1::text[], $2::text[]) AS q(s, m)
         ON e.stream_id = q.s AND e.message_id = q.m`,
      [withId.map((r) => r.stream), withId.map((r) => r.messageId), MESSAGE_ID_SEPARATOR],
    );
    for (const row of rows) {
      const fromVersion = Number(row.version);
      found.set(duplicateKey(row.stream, row.id), {
        stream: row.stream,
        fromVersion,
        toVersion: fromVersion + Number(row.count) - 1,
        duplicate: true,
      });
    }
    return found;
  }

  async readStream(stream: string, fromVersion: number, limit: number): Promise<RawEvent[]> {
    const { rows } = await this.driver.query<RawEvent>(
      `SELECT ${EVENT_COLUMNS} FROM ${this.tables.events} WHERE stream_id = $1 AND version >= $2
       ORDER BY version LIMIT $3`,
      [stream, fromVersion, Math.min(limit, 2 ** 31 - 1)],
    );
    return rows;
  }

  async streamVersion(stream: string): Promise<number> {
    const { rows } = await this.driver.query<{ version: string | null }>(
      `SELECT max(version) AS version FROM ${this.tables.events} WHERE stream_id = $1`,
      [stream],
    );
    return Number(rows[0]?.version ?? 0);
  }

  async readAll(after: Checkpoint, limit: number): Promise<RawEvent[]> {
    // Only transactions below the snapshot's xmin have all ended; a later one may still commit rows
    // that sort before ones already visible, so the read stops there.
    const { rows } = await this.driver.query<RawEvent>(
      `SELECT ${EVENT_COLUMNS} FROM ${this.tables.events}
       WHERE (transaction_id, global_position) > ($1::text::xid8, $2::int8)
         AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
       ORDER BY transaction_id, global_position LIMIT $3`,
      [String(after.tx), after.position, Math.min(limit, 2 ** 31 - 1)],
    );
    return rows;
  }

  async saveSnapshot(stream: string, version: number, state: string): Promise<void> {
    const table = this.tables.snapshots;
    await this.driver.query(
      `INSERT INTO ${table} (stream_id, version, state) VALUES ($1, $2, $3::jsonb)
       ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state, created_at = now()
       WHERE ${table}.version < excluded.version`,
      [stream, version, state],
    );
  }

  async loadSnapshot(stream: string) {
    const { rows } = await this.driver.query<{ version: unknown; state: unknown; createdAt: unknown }>(
      `SELECT version, state, created_at AS "createdAt" FROM ${this.tables.snapshots} WHERE stream_id = $1`,
      [stream],
    );
    return rows[0];
  }

  async pruneToSnapshot(stream: string): Promise<number> {
    const { events, snapshots } = this.tables;
    // The newest append stays whole: its first event's version is the newest's minus the index in
    // its message id. It keeps the stream's version, and its message id for a redelivery.
    const { rows } = await this.driver.query<{ count: string }>(
      `WITH newest AS (
         SELECT version - coalesce(nullif(split_part(message_id, $2, 2), '')::bigint, 0) AS first
         FROM ${events} WHERE stream_id = $1 ORDER BY version DESC LIMIT 1),
       pruned AS (
         DELETE FROM ${events} e USING ${snapshots} s, newest n
         WHERE s.stream_id = $1 AND e.stream_id = $1 AND e.version <= s.version AND e.version < n.first
         RETURNING 1)
       SELECT count(*) AS count FROM pruned`,
      [stream, MESSAGE_ID_SEPARATOR],
    );
    return Number(rows[0]!.count);
  }

  async loadCheckpoint(name: string): Promise<Checkpoint | undefined> {
    const { rows } = await this.driver.query<{ tx: string; position: string }>(
      `SELECT tx, position FROM ${this.tables.checkpoints} WHERE name = $1`,
      [name],
    );
    return rows.length === 0 ? undefined : { tx: Number(rows[0]!.tx), position: Number(rows[0]!.position) };
  }

  /**
   * Stores a reader's checkpoint; with `expected`, only over that one (or over none when it is the
   * start), else `ERR_PROJECTION_FAILED`: another reader of the name moved it.
   */
  async saveCheckpoint(
    name: string,
    checkpoint: Checkpoint,
    tx: SqlExecutor = this.driver,
    expected?: Checkpoint,
  ): Promise<void> {
    const table = this.tables.checkpoints;
    const { rows } = await tx.query(
      `INSERT INTO ${table} (name, tx, position) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET tx = excluded.tx, position = excluded.position, updated_at = now()
       WHERE $4::bigint IS NULL OR (${table}.tx = $4 AND ${table}.position = $5)
       RETURNING 1`,
      [name, checkpoint.tx, checkpoint.position, expected?.tx ?? null, expected?.position ?? null],
    );
    if (rows.length === 0) {
      throw new TroupeError(
        'ERR_PROJECTION_FAILED',
        `the checkpoint of "${name}" moved away from ${JSON.stringify(expected)}: another reader of that name runs`,
        { details: { projection: name, expected } },
      );
    }
  }

  onCommit(listener: () => void): () => void {
    let stop: (() => Promise<void>) | undefined;
    let stopped = false;
    this.driver.listen(this.channel, listener).then(
      (unlisten) => {
        if (stopped) void unlisten();
        else stop = unlisten;
      },
      // Without notifications the subscription still polls.
      () => {},
    );
    return () => {
      stopped = true;
      void stop?.();
    };
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}
