/**
 * Runs the `troupe` command line (ops/cli/main.ts, under tsx) as a child process, as an operator
 * would: its stdout and stderr collected, lines awaited, signals sent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { stopChild } from './child.js';

const CLI = join(import.meta.dirname, '..', '..', 'ops', 'cli', 'main.ts');

export class TroupeProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => {
      this.stdout += chunk.toString();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Starts `troupe <args>` with `env` added to this process's environment. */
  static start(args: readonly string[], env: Record<string, string> = {}): TroupeProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env: { ...process.env, NODE_ENV: 'production', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new TroupeProcess(child);
  }

  /** Runs `troupe <args>` to its end. */
  static async run(
    args: readonly string[],
    env: Record<string, string> = {},
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const p = TroupeProcess.start(args, env);
    const { code } = await p.exited;
    return { code, stdout: p.stdout, stderr: p.stderr };
  }

  /** The JSON log lines (pino) written so far. */
  logs(): Record<string, unknown>[] {
    return this.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** Resolves with the first log line whose `msg` is `msg`; rejects if the process exits first. */
  async log(msg: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.logs().find((line) => line.msg === msg);
      if (found !== undefined) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `troupe exited (${this.child.exitCode}) before logging "${msg}":\n${this.stdout}\n${this.stderr}`,
        );
      }
      if (performance.now() > deadline)
        throw new Error(`no "${msg}" log in ${timeoutMs} ms:\n${this.stdout}\n${this.stderr}`);
      // Wake on the next output or exit, or after a while to check the deadline.
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.child.stdout!.off('data', wake);
          this.child.off('exit', wake);
          resolve();
        };
        // Real time on purpose: the child process runs on it; this only bounds how long we wait for its
        // output before checking the deadline again (no assertion follows a fixed sleep).
        const timer = setTimeout(wake, 250);
        this.child.stdout!.on('data', wake);
        this.child.on('exit', wake);
      });
    }
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 'SIGKILL');
  }
}
