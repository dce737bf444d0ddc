/**
 * A private Postgres (or DATABASE_URL) for one test file or describe block, and journals on it, each
 * with its own table prefix so tests never see each other's streams; all closed afterwards.
 */
import { afterAll, beforeAll } from 'vitest';
import { postgresJournal, type SqlJournal } from '../../index.js';
import { PostgresServer } from '../harness/postgres.js';

export function postgresJournals(tag: string): { readonly journal: () => Promise<SqlJournal> } {
  let server: PostgresServer | undefined;
  let n = 0;
  const journals: SqlJournal[] = [];
  beforeAll(async () => {
    server = await PostgresServer.fromEnvironment();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(journals.map((j) => j.close()));
    await server?.dispose();
  });
  return {
    async journal() {
      const j = await postgresJournal({
        connectionString: server!.url,
        prefix: `${tag}${process.pid}_${++n}_`,
      });
      journals.push(j);
      return j;
    },
  };
}
