/** How the command line meets SIGINT (Ctrl-C) and SIGTERM: the first one stops the work, a second exits at once. */
import type { CliIo, ExitCode } from './io.js';

/** The signals that end a command. */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** A signal that ends a command. */
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** The exit code of a command ended by a signal, as a shell reports it (128 + the signal's number). */
export const SIGNAL_EXIT: Record<StopSignal, ExitCode> = { SIGINT: 130, SIGTERM: 143 };

/**
 * Runs `work` with an AbortSignal that the first SIGINT or SIGTERM aborts, and resolves with its
 * result, or with the signal once `work` has ended after it (it stops what it started first). A
 * second signal exits the process at once with that signal's code. `what` names the work in the
 * line printed on the first signal.
 */
export async function untilSignal<T>(
  io: CliIo,
  what: string,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<{ readonly done: T } | { readonly interrupted: StopSignal }> {
  const controller = new AbortController();
  let received: StopSignal | undefined;
  const onSignal = (signal: StopSignal) => {
    if (received !== undefined) {
      io.err(`\n${signal} again: exiting now\n`);
      process.exit(SIGNAL_EXIT[signal]);
    }
    received = signal;
    io.err(
      `\n${signal}: interrupting the ${what} and stopping what it started (a second signal exits at once)\n`,
    );
    controller.abort(new Error(`the ${what} was interrupted by ${signal}`));
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  try {
    const done = await work(controller.signal);
    return received === undefined ? { done } : { interrupted: received };
  } catch (error) {
    // Whatever the work failed with after a signal (the reason, or a step cut short), it was interrupted.
    if (received !== undefined) return { interrupted: received };
    throw error;
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
  }
}
