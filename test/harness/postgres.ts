/**
 * A private PostgreSQL server for tests: `initdb` and `postgres` from Debian's `postgresql` package
 * (scripts/setup.sh installs it when missing), a temporary data directory, a random port, and
 * stop/kill/restart so tests can crash it. Postgres refuses to run as root, so under root the
 * server runs as the `postgres` user (setpriv, which execs: a kill reaches the server itself).
 * With `DATABASE_URL` set, `PostgresServer.fromEnvironment()` uses that server instead.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exponential, retrying } from '../../runtime/index.js';
import { stopChild } from './child.js';

/** The directory of Debian's PostgreSQL binaries (the newest version installed), or undefined. */
export function postgresBinaries(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The command prefix that runs a binary as the postgres user when we are root. */
function asPostgres(): { prefix: string[]; uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return { prefix: [] };
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return {
    prefix: ['setpriv', '--reuid', String(uid), '--regid', String(gid), '--init-groups', '--'],
    uid,
    gid,
  };
}

/**
 * Runs one query with `psql` and returns its output. A failure throws with psql's message, which is
 * kept off the test run's own output (execFileSync writes a child's stderr there unless told).
 */
export function psql(url: string, query: string): string {
  const bin = postgresBinaries();
  if (bin === undefined) throw new Error('PostgreSQL is not installed: run `npm run setup`');
  return execFileSync(join(bin, 'psql'), [url, '-tAc', query], { stdio: 'pipe' }).toString().trim();
}

export class PostgresServer {
  private process: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string | undefined,
    private readonly bin: string | undefined,
    private readonly external: string | undefined,
  ) {}

  /** `DATABASE_URL` when set, else a private server. */
  static async fromEnvironment(): Promise<PostgresServer> {
    const url = process.env.DATABASE_URL;
    if (url !== undefined && url !== '')
      return new PostgresServer(Number(new URL(url).port || 5432), undefined, undefined, url);
    return PostgresServer.start();
  }

  /** initdb in a temporary directory, then start the server on a free port. */
  static async start(): Promise<PostgresServer> {
    const bin = postgresBinaries();
    if (bin === undefined) throw new Error('PostgreSQL is not installed: run `npm run setup`');
    const dir = await mkdtemp(join(tmpdir(), 'troupe-pg-'));
    const user = asPostgres();
    if (user.uid !== undefined) chownSync(dir, user.uid, user.gid!);
    execFileSync(
      user.prefix[0] ?? join(bin, 'initdb'),
      [
        ...user.prefix.slice(1),
        ...(user.prefix.length > 0 ? [join(bin, 'initdb')] : []),
        '-D',
        join(dir, 'data'),
        '-U',
        'postgres',
        '--auth=trust',
        '-E',
        'UTF8',
        '--no-sync',
      ],
      { stdio: 'ignore' },
    );
    const server = new PostgresServer(await freePort(), dir, bin, undefined);
    await server.launch();
    return server;
  }

  /** A connection string for the `postgres` database. */
  get url(): string {
    return this.external ?? `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  get running(): boolean {
    return this.external !== undefined || this.process !== undefined;
  }

  /** Stops the server: SIGKILL with `hard` (a crash), else a fast shutdown. */
  async stop(hard = false): Promise<void> {
    const child = this.process;
    if (child === undefined) return;
    this.process = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await stopChild(child, hard ? 'SIGKILL' : 'SIGINT');
    if (hard) {
      // The server's children notice their parent died and exit; give them a moment.
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Starts the server again on the same port and data directory (after stop or a crash). */
  async restart(): Promise<void> {
    if (this.external !== undefined) throw new Error('cannot restart an external DATABASE_URL server');
    await this.stop();
    await retrying(() => this.launch(), { attempts: 21, backoff: exponential({ baseMs: 200, maxMs: 200 }) });
  }

  async dispose(): Promise<void> {
    if (this.external !== undefined) return;
    await this.stop(true);
    if (this.dir !== undefined) await rm(this.dir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const bin = this.bin!;
    const dir = this.dir!;
    const user = asPostgres();
    const args = [
      '-D',
      join(dir, 'data'),
      '-p',
      String(this.port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      // TimescaleDB, where installed, must be preloaded before CREATE EXTENSION can work.
      ...(existsSync(join(bin, '..', 'lib', 'timescaledb.so'))
        ? ['-c', 'shared_preload_libraries=timescaledb']
        : []),
    ];
    const child = spawn(
      user.prefix[0] ?? join(bin, 'postgres'),
      [...user.prefix.slice(1), ...(user.prefix.length > 0 ? [join(bin, 'postgres')] : []), ...args],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.process = child;
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-4000);
    });
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`postgres exited with ${code}:\n${log}`))),
    );
    exited.catch(() => {
      if (this.process === child) this.process = undefined;
    });
    const until = Date.now() + 15_000;
    for (;;) {
      const ready = await Promise.race([this.isReady(), exited]);
      if (ready) return;
      if (Date.now() > until) {
        child.kill('SIGKILL');
        throw new Error(`postgres did not start in 15 s:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private isReady(): Promise<boolean> {
    return new Promise((resolve) => {
      const probe = spawn(join(this.bin!, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(this.port)], {
        stdio: 'ignore',
      });
      probe.once('exit', (code) => resolve(code === 0));
      probe.once('error', () => resolve(false));
    });
  }
}
