#!/usr/bin/env node
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../protocols/index.js';

/** Where the CLI writes; tests pass their own. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const processIo: CliIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

const HELP = `troupe: an actor-model runtime for AI agents

Usage:
  troupe <command>

Commands:
  errors           List the error catalogue: every error code and what it means
  help             Show this help

Options:
  -h, --help       Show this help
  -v, --version    Print the version
`;

/**
 * Runs the `troupe` command line with `argv` (the arguments after the program name) and returns
 * the exit code: 0 on success, 2 for an unknown command or option.
 *
 * @example
 * ```ts
 * process.exitCode = main(process.argv.slice(2));
 * ```
 */
export function main(argv: readonly string[], io: CliIo = processIo): number {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '-h':
    case '--help':
      io.out(HELP);
      return 0;
    case '-v':
    case '--version':
      io.out(`${packageVersion()}\n`);
      return 0;
    case 'errors':
      if (rest.length > 0) return usageError(io, `"troupe errors" takes no arguments (got "${rest[0]}")`);
      io.out(errorTable());
      return 0;
    default:
      return usageError(
        io,
        command.startsWith('-') ? `unknown option "${command}"` : `unknown command "${command}"`,
      );
  }
}

function usageError(io: CliIo, message: string): number {
  io.err(`troupe: ${message}\nRun "troupe --help" for the commands.\n`);
  return 2;
}

/** The error catalogue as an aligned two-column table, descriptions wrapped. */
function errorTable(width = 100): string {
  const entries = Object.entries(ERROR_CODES);
  const codeWidth = Math.max('CODE'.length, ...entries.map(([code]) => code.length));
  const textWidth = Math.max(30, width - codeWidth - 2);
  const indent = ' '.repeat(codeWidth + 2);
  const lines = [`${'CODE'.padEnd(codeWidth)}  MEANING`];
  for (const [code, meaning] of entries) {
    const wrapped = wrap(meaning, textWidth);
    lines.push(`${code.padEnd(codeWidth)}  ${wrapped[0] ?? ''}`);
    for (const more of wrapped.slice(1)) lines.push(indent + more);
  }
  lines.push('', `${entries.length} codes; see docs/errors.md for causes and remedies.`);
  return `${lines.join('\n')}\n`;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line.length > 0 && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line.length === 0 ? word : `${line} ${word}`;
    }
  }
  if (line.length > 0) lines.push(line);
  return lines;
}

/** The version in this package's package.json, found by walking up from this file (src or dist). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'troupe' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // No package.json here (or not ours): keep walking up.
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    // npm links bins through symlinks, so compare real paths.
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) process.exitCode = main(process.argv.slice(2));
