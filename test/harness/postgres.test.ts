/**
 * The Postgres harness itself: a private server starts, answers SQL, survives kill -9 and restarts;
 * psql keeps its complaints in the error it throws.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PostgresServer, psql } from './postgres.js';
import { runScript } from './script.js';

let server: PostgresServer;
beforeAll(async () => {
  server = await PostgresServer.start();
}, 60_000);
afterAll(async () => {
  await server?.dispose();
});

const sql = (query: string) => psql(server.url, query);

it('runs a private server that keeps committed rows across a kill -9 and a restart', async () => {
  sql('create table t (n int)');
  sql('insert into t values (1), (2)');
  expect(sql('select sum(n) from t')).toBe('3');
  await server.stop(true);
  expect(() => sql('select 1')).toThrow(/refused/);
  await server.restart();
  expect(sql('select sum(n) from t')).toBe('3');
}, 60_000);

it("keeps psql's complaint about a server that is down in its error, off the run's output", async () => {
  const result = await runScript(
    'harness',
    'psql-refused',
    `import { psql } from '../../test/harness/postgres.js';
try {
  psql('postgres://postgres@127.0.0.1:1/postgres', 'select 1');
} catch (error) {
  console.log(/refused/.test((error as Error).message) ? 'refused' : 'other');
}
`,
  );
  expect(result).toMatchObject({ code: 0, stdout: 'refused\n', stderr: '' });
}, 60_000);
