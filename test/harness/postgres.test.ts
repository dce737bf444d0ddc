/** The Postgres harness itself: a private server starts, answers SQL, survives kill -9 and restarts. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PostgresServer, postgresBinaries } from './postgres.js';

let server: PostgresServer;
beforeAll(async () => {
  server = await PostgresServer.start();
}, 60_000);
afterAll(async () => {
  await server?.dispose();
});

const sql = (query: string) =>
  execFileSync(join(postgresBinaries()!, 'psql'), [server.url, '-tAc', query]).toString().trim();

it('runs a private server that keeps committed rows across a kill -9 and a restart', async () => {
  sql('create table t (n int)');
  sql('insert into t values (1), (2)');
  expect(sql('select sum(n) from t')).toBe('3');
  await server.stop(true);
  expect(() => sql('select 1')).toThrow();
  await server.restart();
  expect(sql('select sum(n) from t')).toBe('3');
}, 60_000);
