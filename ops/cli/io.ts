/** What every command of the CLI writes to, and how it says an error. */
import { TroupeError } from '../../protocols/index.js';

/** Where the CLI writes; tests pass their own. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Whether `err` is a terminal (progress is drawn in place there). Defaults to false. */
  readonly errIsTty?: boolean;
}

export const processIo: CliIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  errIsTty: process.stderr.isTTY === true,
};

/** What a command's action resolves to: its exit code. */
export type ExitCode = number;

/** An error as one line: its code, then its message. */
export function describeError(error: unknown): string {
  return `${TroupeError.is(error) ? `${error.code}: ` : ''}${error instanceof Error ? error.message : String(error)}`;
}
