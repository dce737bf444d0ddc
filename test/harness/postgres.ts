/**
 * A private PostgreSQL server for tests: `initdb` and `postgres` from Debian's `postgresql` package
 * (scripts/setup.sh installs it when missing), a temporary data directory, a random port, and
 * stop/kill/restart so tests can crash it; with `DATABASE_URL` set, `PostgresServer.fromEnvironment()`
 * uses that server instead. The launcher is the chaos runner's (ops/chaos/real/servers.ts), shared
 * so there is one.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { postgresBinaries } from '../../ops/chaos/real/servers.js';

export { PostgresServer, postgresBinaries } from '../../ops/chaos/real/servers.js';

/**
 * Runs one query with `psql` and returns its output. A failure throws with psql's message, which is
 * kept off the test run's own output (execFileSync writes a child's stderr there unless told).
 */
export function psql(url: string, query: string): string {
  const bin = postgresBinaries();
  if (bin === undefined) throw new Error('PostgreSQL is not installed: run `npm run setup`');
  return execFileSync(join(bin, 'psql'), [url, '-tAc', query], { stdio: 'pipe' }).toString().trim();
}
