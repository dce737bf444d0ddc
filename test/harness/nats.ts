/**
 * Private `nats-server` instances for tests: a random port, a temporary JetStream directory, and
 * stop/kill/restart on the same port so tests can play outages. The binary is Debian's `nats-server`
 * (scripts/setup.sh installs it when missing). No mock of NATS anywhere.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exponential, retrying } from '../../runtime/index.js';
import { stopChild } from './child.js';

const STEADY_100_MS = exponential({ baseMs: 100, maxMs: 100 });

const CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

/** The nats-server binary, or undefined when it is not installed. */
export function natsServerBinary(): string | undefined {
  return CANDIDATES.find((path) => existsSync(path));
}

export interface NatsServerOptions {
  /** Extra command-line arguments (e.g. `--user`, `--pass`). */
  readonly args?: readonly string[];
}

export class NatsServer {
  private process: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly args: readonly string[],
  ) {}

  /** Starts a server on a random free port with its own JetStream store. */
  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const dir = await mkdtemp(join(tmpdir(), 'troupe-nats-'));
    const server = new NatsServer(0, dir, options.args ?? []);
    const port = await server.launch(-1);
    (server as { port: number }).port = port;
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.process !== undefined;
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
    const child = spawn(
      binary,
      ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', this.dir, ...this.args],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.process = child;
    return new Promise<number>((resolve, reject) => {
      let log = '';
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
        const match = /Listening for client connections on [^:]+:(\d+)/.exec(log);
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
