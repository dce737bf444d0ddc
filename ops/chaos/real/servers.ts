/**
 * Private servers for runs on real processes (and the project's own tests): a `nats-server` on a
 * port of its own with a temporary JetStream directory, and a PostgreSQL made with `initdb` in a
 * temporary directory. Both stop (gracefully or with SIGKILL) and start again on the same port and
 * data, so a run can restart them as faults. Binaries are Debian's (`nats-server`, `postgresql`).
 * Postgres refuses to run as root, so under root it runs as the `postgres` user (setpriv, which
 * execs: a signal reaches the server itself).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exponential, retrying } from '../../../runtime/index.js';

const STEADY_100_MS = exponential({ baseMs: 100, maxMs: 100 });

const NATS_CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

/** The nats-server binary, or undefined when it is not installed. */
export function natsServerBinary(): string | undefined {
  return NATS_CANDIDATES.find((path) => existsSync(path));
}

/** The directory of Debian's PostgreSQL binaries (the newest version installed), or undefined. */
export function postgresBinaries(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** Sends `signal` to `child` unless it has exited already, and resolves once it has exited. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await exited;
}

/** A free TCP port on `host`, as the system hands one out. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Options of {@link NatsServer.start}. */
export interface NatsServerOptions {
  /** Extra command-line arguments (e.g. `--user`, `--pass`). */
  readonly args?: readonly string[];
  /** The address it listens on. Defaults to 127.0.0.1. */
  readonly host?: string;
  /** Put before the command, e.g. a net lab host's `ip netns exec <ns>`. */
  readonly prefix?: readonly string[];
  /** Told each server process as soon as it is spawned (restarts too), before it is ready. */
  readonly onProcess?: (child: ChildProcess) => void;
  /** Told the server's temporary directory (its store) as soon as it is made. */
  readonly onDirectory?: (dir: string) => void;
}

/** A private nats-server with JetStream: {@link NatsServer.start}, then stop, restart, dispose. */
export class NatsServer {
  private process: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly args: readonly string[],
    readonly host: string,
    private readonly prefix: readonly string[],
    private readonly onProcess: ((child: ChildProcess) => void) | undefined,
  ) {}

  /** Starts a server on a random free port with its own JetStream store. */
  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const dir = await mkdtemp(join(tmpdir(), 'troupe-nats-'));
    options.onDirectory?.(dir);
    const server = new NatsServer(
      0,
      dir,
      options.args ?? [],
      options.host ?? '127.0.0.1',
      options.prefix ?? [],
      options.onProcess,
    );
    const port = await server.launch(-1);
    (server as { port: number }).port = port;
    return server;
  }

  get url(): string {
    return `nats://${this.host === '0.0.0.0' ? '127.0.0.1' : this.host}:${this.port}`;
  }

  get running(): boolean {
    return this.process !== undefined;
  }

  /** The server's process id while it runs. */
  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** Stops the server (SIGKILL with `hard`, else SIGTERM) and waits for it to exit. */
  async stop(hard = false): Promise<void> {
    const child = this.process;
    if (child === undefined) return;
    this.process = undefined;
    await stopChild(child, hard ? 'SIGKILL' : 'SIGTERM');
  }

  /** Starts the server again on the same port and store (after stop). */
  async restart(): Promise<void> {
    if (this.process !== undefined) await this.stop();
    // The port may linger briefly after a kill; retry for a while.
    await retrying(() => this.launch(this.port), { attempts: 21, backoff: STEADY_100_MS });
  }

  /** Stops the server and deletes its store. */
  async dispose(): Promise<void> {
    await this.stop(true);
    await rm(this.dir, { recursive: true, force: true });
  }

  private launch(port: number): Promise<number> {
    const binary = natsServerBinary();
    if (binary === undefined) throw new Error('nats-server is not installed: run `npm run setup`');
    const command = [
      ...this.prefix,
      binary,
      ...['-a', this.host, '-p', String(port), '-js', '-sd', this.dir, ...this.args],
    ];
    const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    this.process = child;
    this.onProcess?.(child);
    return new Promise<number>((resolve, reject) => {
      let log = '';
      // Real time on purpose: a real nats-server gets a wall-clock deadline to start.
      const timer = setTimeout(() => fail(new Error(`nats-server did not start in 10 s:\n${log}`)), 10_000);
      const fail = (error: Error) => {
        clearTimeout(timer);
        if (this.process === child) this.process = undefined;
        child.kill('SIGKILL');
        reject(error);
      };
      child.once('exit', (code) => fail(new Error(`nats-server exited with ${code}:\n${log}`)));
      child.stderr!.on('data', (chunk: Buffer) => {
        log += chunk.toString();
        const match = /Listening for client connections on [^\n]*:(\d+)/.exec(log);
        if (match !== null && log.includes('Server is ready')) {
          clearTimeout(timer);
          child.removeAllListeners('exit');
          child.once('exit', () => {
            if (this.process === child) this.process = undefined;
          });
          child.stderr!.removeAllListeners('data');
          child.stderr!.resume();
          resolve(Number(match[1]));
        }
      });
    });
  }
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

/** A PostgreSQL binary of `bin` with `args`, as the postgres user when we are root: the command and its arguments. */
function postgresCommand(bin: string, binary: string, args: readonly string[]): [string, string[]] {
  const [command, ...rest] = [...asPostgres().prefix, join(bin, binary), ...args];
  return [command!, rest];
}

/** Options of {@link PostgresServer.start}. */
export interface PostgresServerOptions {
  /** The address it listens on. Defaults to 127.0.0.1. */
  readonly host?: string;
  /** Told each server process as soon as it is spawned (restarts too), before it is ready. */
  readonly onProcess?: (child: ChildProcess) => void;
  /** Told the server's temporary directory (its store) as soon as it is made. */
  readonly onDirectory?: (dir: string) => void;
}

/**
 * A private PostgreSQL: {@link PostgresServer.start} (initdb, then the server on a free port), then
 * stop, restart, dispose. `fromEnvironment()` stands for the server of `DATABASE_URL` when it is set.
 */
export class PostgresServer {
  private process: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string | undefined,
    private readonly bin: string | undefined,
    private readonly external: string | undefined,
    readonly host = '127.0.0.1',
    private readonly onProcess?: (child: ChildProcess) => void,
  ) {}

  /** `DATABASE_URL` when set, else a private server. */
  static async fromEnvironment(): Promise<PostgresServer> {
    const url = process.env.DATABASE_URL;
    if (url !== undefined && url !== '')
      return new PostgresServer(Number(new URL(url).port || 5432), undefined, undefined, url);
    return PostgresServer.start();
  }

  /** initdb in a temporary directory, then start the server on a free port. */
  static async start(options: PostgresServerOptions = {}): Promise<PostgresServer> {
    const bin = postgresBinaries();
    if (bin === undefined) throw new Error('PostgreSQL is not installed: run `npm run setup`');
    const dir = await mkdtemp(join(tmpdir(), 'troupe-pg-'));
    options.onDirectory?.(dir);
    const user = asPostgres();
    if (user.uid !== undefined) chownSync(dir, user.uid, user.gid!);
    execFileSync(
      ...postgresCommand(bin, 'initdb', [
        '-D',
        join(dir, 'data'),
        '-U',
        'postgres',
        '--auth=trust',
        '-E',
        'UTF8',
        '--no-sync',
      ]),
      { stdio: 'ignore' },
    );
    const host = options.host ?? '127.0.0.1';
    const server = new PostgresServer(await freePort(host), dir, bin, undefined, host, options.onProcess);
    await server.launch();
    return server;
  }

  /** A connection string for the `postgres` database. */
  get url(): string {
    return (
      this.external ??
      `postgres://postgres@${this.host === '0.0.0.0' ? '127.0.0.1' : this.host}:${this.port}/postgres`
    );
  }

  /** The directory of its Unix socket (reachable from every network namespace); undefined for `DATABASE_URL`'s. */
  get socketDir(): string | undefined {
    return this.external === undefined ? this.dir : undefined;
  }

  /** Whether it can be stopped and started again (a private server, not `DATABASE_URL`'s). */
  get restartable(): boolean {
    return this.external === undefined;
  }

  get running(): boolean {
    return this.external !== undefined || this.process !== undefined;
  }

  /** The server's process id while it runs (a private one). */
  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** Stops the server: SIGKILL with `hard` (a crash), else a fast shutdown (SIGINT, `pg_ctl stop -m fast`). */
  async stop(hard = false): Promise<void> {
    const child = this.process;
    if (child === undefined) return;
    this.process = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await stopChild(child, hard ? 'SIGKILL' : 'SIGINT');
    if (hard) {
      // Real time on purpose: the server's children notice their parent died and exit; give them a moment.
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
    const args = [
      '-D',
      join(dir, 'data'),
      '-p',
      String(this.port),
      '-k',
      dir,
      '-c',
      `listen_addresses=${this.host === '0.0.0.0' ? '*' : this.host}`,
      '-c',
      'fsync=off',
      // TimescaleDB, where installed, must be preloaded before CREATE EXTENSION can work.
      ...(existsSync(join(bin, '..', 'lib', 'timescaledb.so'))
        ? ['-c', 'shared_preload_libraries=timescaledb']
        : []),
    ];
    const child = spawn(...postgresCommand(bin, 'postgres', args), { stdio: ['ignore', 'ignore', 'pipe'] });
    this.process = child;
    this.onProcess?.(child);
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
    // Real time on purpose: a real Postgres gets a wall-clock deadline to accept connections.
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
      const probe = spawn(
        join(this.bin!, 'pg_isready'),
        ['-h', this.host === '0.0.0.0' ? '127.0.0.1' : this.host, '-p', String(this.port)],
        { stdio: 'ignore' },
      );
      probe.once('exit', (code) => resolve(code === 0));
      probe.once('error', () => resolve(false));
    });
  }
}
