/** Starts cluster nodes as child processes (test/cluster/node-process.ts) and drives them over IPC. */
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { stopChild } from './child.js';

const SCRIPT = join(import.meta.dirname, '..', 'cluster', 'node-process.ts');

export class NodeProcess {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(
    readonly node: string,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (message: { id?: number; ok?: boolean; value?: unknown; error?: string }) => {
      if (message.id === undefined) return;
      const waiter = this.waiting.get(message.id);
      this.waiting.delete(message.id);
      if (message.ok) waiter?.resolve(message.value);
      else waiter?.reject(Object.assign(new Error(message.error), { code: message.error }));
    });
    child.on('exit', () => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`node ${node} exited`));
      this.waiting.clear();
    });
  }

  /**
   * Starts a node; with `journalUrl` (Postgres) it also hosts persistent `bank` accounts. `script`
   * runs another node program taking the same arguments (a test's own kinds).
   */
  static async start(
    url: string,
    cluster: string,
    node: string,
    heartbeatMs = 1000,
    journalUrl?: string,
    script = SCRIPT,
  ): Promise<NodeProcess> {
    const args = [url, cluster, node, String(heartbeatMs), ...(journalUrl === undefined ? [] : [journalUrl])];
    const child = fork(script, args, {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`node ${node} exited with ${code} while starting`)));
    });
    return new NodeProcess(node, child);
  }

  call<T = unknown>(command: Record<string, unknown>): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...command, id });
    });
  }

  /** kill -9. */
  kill(): void {
    this.child.kill('SIGKILL');
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 'SIGTERM');
  }
}
