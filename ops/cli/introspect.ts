/** The introspection commands: `troupe members`, `tree`, `actors`, `events`, `stop`. */
import type { Command } from 'commander';
import type { CliIo, ExitCode } from './io.js';

export function registerIntrospection(_program: Command, _io: CliIo, _exit: (code: ExitCode) => void): void {}
