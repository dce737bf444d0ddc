/**
 * What the SQL journals share: migrations that several nodes may run at once, the time-series tables,
 * and TimescaleDB hypertables where the extension is installed.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { postgresJournal, SCHEMA_VERSION, type SqlJournal } from '../../index.js';
import { PostgresServer } from '../harness/postgres.js';
import { runScript } from '../harness/script.js';

let server: PostgresServer;
let raw: pg.Pool;
beforeAll(async () => {
  server = await PostgresServer.fromEnvironment();
  raw = new pg.Pool({ connectionString: server.url });
}, 60_000);
afterAll(async () => {
  await raw?.end();
  await server?.dispose();
});

const prefix = `m${process.pid}_`;

it('migrates once when several nodes start at once, and again is a no-op', async () => {
  const journals = await Promise.all(
    Array.from({ length: 6 }, () => postgresJournal({ connectionString: server.url, prefix })),
  );
  const { rows } = await raw.query(`SELECT version FROM ${prefix}migrations ORDER BY version`);
  expect(rows.map((r) => r.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
  await journals[0]!.append('s', [{ type: 'a', data: 1 }]);
  const again = await postgresJournal({ connectionString: server.url, prefix });
  expect(await again.streamVersion('s')).toBe(1);
  await Promise.all([...journals, again].map((j) => j.close()));
});

it('records runtime metrics and agent usage in the time-series tables', async () => {
  const j: SqlJournal = await postgresJournal({ connectionString: server.url, prefix: `${prefix}ts_` });
  await j.recordMetrics([
    { node: 'a', name: 'mailbox.size', value: 3, labels: { actor: 'x' } },
    { node: 'a', name: 'mailbox.size', value: 5, time: new Date('2026-01-01T00:00:00Z') },
  ]);
  await j.recordUsage([
    { agent: 'planner', model: 'm-1', inputTokens: 120, outputTokens: 30, costUsd: 0.002 },
  ]);
  const metrics = await raw.query(`SELECT name, value, labels FROM ${j.tables.metrics} ORDER BY time`);
  expect(metrics.rows).toEqual([
    { name: 'mailbox.size', value: 5, labels: {} },
    { name: 'mailbox.size', value: 3, labels: { actor: 'x' } },
  ]);
  const usage = await raw.query(`SELECT agent, input_tokens, output_tokens FROM ${j.tables.usage}`);
  expect(usage.rows).toEqual([{ agent: 'planner', input_tokens: 120, output_tokens: 30 }]);
  await j.close();
});

it('refuses a bad table prefix and an unreachable server with typed errors', async () => {
  await expect(postgresJournal({ connectionString: server.url, prefix: 'Bad-Prefix' })).rejects.toMatchObject(
    {
      code: 'ERR_INVALID_OPTION',
    },
  );
  await expect(
    postgresJournal({ connectionString: 'postgres://postgres@127.0.0.1:1/none' }),
  ).rejects.toMatchObject({
    code: 'ERR_JOURNAL_UNAVAILABLE',
  });
});

it('says a connection string that is not one is invalid, before any network call and without echoing it', async () => {
  for (const connectionString of ['hello world', 'localhost:5432', 'postgres://user:secret@host:port/db']) {
    const refused = postgresJournal({ connectionString });
    await expect(refused, connectionString).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      message: expect.stringContaining(
        '`connectionString`: is not a valid connection string: expected a URL',
      ),
      details: { option: 'connectionString', value: undefined },
    });
    await expect(refused.catch((e: Error) => e.message)).resolves.not.toContain('secret');
  }
});

it('does not keep the process alive when nobody closes it, a live subscription included', async () => {
  // The run's limit is far past the pool's idle timeout (10 s): a process held by the journal is killed.
  const result = await runScript(
    'journal',
    'never-closed',
    `import { postgresJournal } from '../../index.js';
const journal = await postgresJournal({ connectionString: process.env.JOURNAL_URL!, prefix: 'unclosed_' });
await journal.append('s', [{ type: 'noted', data: {} }]);
journal.subscribe().subscribe(() => {});
console.log('appended');
`,
    { env: { JOURNAL_URL: server.url }, timeoutMs: 30_000 },
  );
  expect(result, result.stderr).toMatchObject({ code: 0, signal: null, stdout: 'appended\n' });
}, 60_000);

it('turns the time-series tables into hypertables under TimescaleDB, and keeps the event log plain', async (ctx) => {
  const available = await raw.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'`);
  if (available.rows.length === 0) {
    console.warn(
      'timescale test: skipped, because the timescaledb extension is not installed on this PostgreSQL (Debian does not package it); everything else runs on plain Postgres',
    );
    ctx.skip();
  }
  await raw.query('CREATE EXTENSION IF NOT EXISTS timescaledb');
  const j = await postgresJournal({ connectionString: server.url, prefix: `${prefix}tsdb_` });
  expect(j.timescale).toBe(true);
  const { rows } = await raw.query(
    `SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1`,
  );
  expect(rows.map((r) => r.hypertable_name)).toEqual([j.tables.usage, j.tables.metrics].sort());
  await j.close();
});

it('keeps versions, conflicts and fences right between journals that share a database (stale caches)', async () => {
  const p = `${prefix}shared_`;
  const [a, b] = await Promise.all([
    postgresJournal({ connectionString: server.url, prefix: p }),
    postgresJournal({ connectionString: server.url, prefix: p }),
  ]);
  const ev = (type: string) => ({ type, data: {} });
  await a.append('s', [ev('a1'), ev('a2')]);
  await a.append('s', [ev('a3')]);
  // b appends, a's idea of the stream is now stale; b prunes, so the old versions are gone too.
  await b.append('s', [ev('b1'), ev('b2')]);
  await b.saveSnapshot('s', 5, {});
  await b.pruneToSnapshot('s');
  expect(await a.append('s', [ev('a4')])).toMatchObject({ fromVersion: 6, toVersion: 6 });
  await expect(a.append('s', [ev('x')], { expectedVersion: 3 })).rejects.toMatchObject({
    code: 'ERR_JOURNAL_CONFLICT',
  });
  expect(await b.append('s', [ev('b3')], { expectedVersion: 6 })).toMatchObject({ fromVersion: 7 });
  // A message id b wrote is a duplicate for a too.
  await b.append('s', [ev('once')], { messageId: 'm' });
  expect(await a.append('s', [ev('once')], { messageId: 'm' })).toMatchObject({
    duplicate: true,
    fromVersion: 8,
  });
  // A fence b stored refuses a's older one, though a has not seen it.
  await a.append('f', [ev('a')], { fence: 1 });
  await b.append('f', [ev('b')], { fence: 2 });
  await expect(a.append('f', [ev('stale')], { fence: 1 })).rejects.toMatchObject({ code: 'ERR_FENCED' });
  expect((await a.readStream('s')).map((e) => e.version)).toEqual([5, 6, 7, 8]);
  expect((await a.readAll({ limit: 100 })).filter((e) => e.stream === 'f').map((e) => e.type)).toEqual([
    'a',
    'b',
  ]);
  await Promise.all([a.close(), b.close()]);
});
