/** What every harness does to end a child process it started. */
import type { ChildProcess } from 'node:child_process';

/** Sends `signal` to `child` unless it has exited already, and resolves once it has exited. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await exited;
}
