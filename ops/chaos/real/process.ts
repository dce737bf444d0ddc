/** The runner's side of one node process: start it (behind a command prefix), signal it, command it. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TroupeError } from '../../../protocols/index.js';
import type { LogEntry } from '../history/index.js';
import { stopChild } from './servers.js';
import { type ControlCommand, LOG, READY } from './wire.js';

/** The node program, next to this file (`.ts` under tsx, `.js` once built). */
const ENTRY = fileURLToPath(
  new URL(`./node-main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
);

/** How to start one node process. */
export interface NodeLaunch {
  readonly node: string;
  /** Put before the command, e.g. `['ip', 'netns', 'exec', 'ns-a']`. */
  readonly prefix: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** How long it may take to say it is ready. */
  readonly readyTimeoutMs: number;
  /** Aborting it while the node starts kills it, and the start rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Told each entry the node's workload adds to the checkers' log. */
  readonly onLog?: (entry: LogEntry) => void;
}

/** A running node process. */
export class NodeProcess {
  /** The last lines it wrote on stderr (its logs), for a failure's message. */
  private tail: string[] = [];
  state: 'running' | 'paused' | 'dead' = 'running';

  private constructor(
    readonly node: string,
    private readonly child: ChildProcess,
    /** The node program's own pid (a prefix such as `ip netns exec` execs, but may not). */
    readonly pid: number,
  ) {
    child.once('exit', () => {
      this.state = 'dead';
    });
  }

  /** Starts the node and resolves once it has joined the cluster (its ready line). */
  static start(launch: NodeLaunch): Promise<NodeProcess> {
    launch.signal?.throwIfAborted();
    const execArgv = ENTRY.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : [];
    const command = [...launch.prefix, process.execPath, ...execArgv, ENTRY];
    const child = spawn(command[0]!, command.slice(1), {
      env: { ...process.env, ...launch.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (line) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
    });
    return new Promise<NodeProcess>((resolve, reject) => {
      const end = (error: unknown) => {
        clearTimeout(timer);
        launch.signal?.removeEventListener('abort', onAbort);
        child.kill('SIGKILL');
        reject(error);
      };
      const fail = (why: string) =>
        end(
          new TroupeError('ERR_ILLEGAL_STATE', `node ${launch.node} ${why}:\n${tail.join('\n')}`, {
            details: { node: launch.node },
          }),
        );
      const onAbort = () => end(launch.signal!.reason);
      launch.signal?.addEventListener('abort', onAbort, { once: true });
      // Real time on purpose: a real node process gets a wall-clock deadline to start.
      const timer = setTimeout(
        () => fail(`did not start in ${launch.readyTimeoutMs} ms`),
        launch.readyTimeoutMs,
      );
      child.once('error', (error) => fail(`could not be spawned: ${error.message}`));
      child.once('exit', (code, signal) => fail(`exited while starting (${signal ?? code})`));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.startsWith(LOG)) {
          // A line cut short by a kill -9 in the middle of a long write is not an entry.
          let entry: LogEntry;
          try {
            entry = JSON.parse(line.slice(LOG.length + 1)) as LogEntry;
          } catch {
            tail.push(`(a log entry cut short: ${line.slice(0, 200)})`);
            return;
          }
          launch.onLog?.(entry);
          return;
        }
        if (!line.startsWith(READY)) return;
        clearTimeout(timer);
        launch.signal?.removeEventListener('abort', onAbort);
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
        const started = new NodeProcess(launch.node, child, Number(line.slice(READY.length + 1)));
        started.tail = tail;
        resolve(started);
      });
      // A node whose runner stopped reading must not block on a full pipe.
      child.stdin!.on('error', () => {});
    });
  }

  /** Sends a signal to the node program (kill -9, SIGSTOP, SIGCONT, SIGTERM). */
  signal(signal: NodeJS.Signals): void {
    if (this.state === 'dead') return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // Gone meanwhile.
    }
    if (signal === 'SIGSTOP') this.state = 'paused';
    if (signal === 'SIGCONT') this.state = 'running';
  }

  /** Sends a command down its stdin. */
  command(command: ControlCommand): void {
    if (this.state === 'dead') return;
    this.child.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  /** Resolves once the process has exited. */
  exited(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  /** Its last log lines. */
  logs(): string {
    return this.tail.join('\n');
  }

  /** Ends it at once (SIGKILL), paused or not. */
  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await stopChild(this.child, 'SIGKILL');
  }
}
