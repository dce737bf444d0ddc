#!/usr/bin/env node
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ERROR_CODES, type ErrorCode, TroupeError } from '../protocols/index.js';
import { removeClusterState } from '../runtime/index.js';

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
  errors <CODE>    What one code means, what raises it and what to do about it
  cluster remove <cluster> [--servers <url>] [--prefix <prefix>] [--force]
                   Remove a stopped cluster's state (its KV buckets <prefix>_members and
                   <prefix>_leases) from a shared NATS; --servers defaults to NATS_URL, then
                   nats://127.0.0.1:4222
  help             Show this help

Options:
  -h, --help       Show this help
  -v, --version    Print the version
`;

/**
 * Runs the `troupe` command line with `argv` (the arguments after the program name) and resolves
 * to the exit code: 0 on success, 1 when a command failed, 2 for an unknown command, option or code.
 *
 * @example
 * ```ts
 * process.exitCode = await main(process.argv.slice(2));
 * ```
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
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
      return errors(rest, io);
    case 'cluster':
      return cluster(rest, io);
    default:
      return usageError(
        io,
        command.startsWith('-') ? `unknown option "${command}"` : `unknown command "${command}"`,
      );
  }
}

function errors(args: readonly string[], io: CliIo): number {
  if (args.length === 0) {
    io.out(errorTable());
    return 0;
  }
  const [code, extra] = args;
  if (extra !== undefined) return usageError(io, `"troupe errors" takes at most one code (got "${extra}")`);
  if (!(code! in ERROR_CODES)) {
    return usageError(io, `no error code "${code}" in the catalogue; "troupe errors" lists them`);
  }
  io.out(explain(code as ErrorCode));
  return 0;
}

async function cluster(args: readonly string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parseClusterArgs>;
  try {
    parsed = parseClusterArgs(args);
  } catch (error) {
    return usageError(io, (error as Error).message);
  }
  const { positionals, values } = parsed;
  if (positionals[0] !== 'remove' || positionals.length !== 2) {
    return usageError(
      io,
      'usage: troupe cluster remove <cluster> [--servers <url>] [--prefix <prefix>] [--force]',
    );
  }
  const name = positionals[1]!;
  const servers = values.servers ?? process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
  try {
    const { removed } = await removeClusterState({
      servers,
      cluster: name,
      ...(values.prefix === undefined ? {} : { prefix: values.prefix }),
      force: values.force === true,
    });
    io.out(
      removed.length === 0
        ? `cluster "${name}" has no state on ${servers}\n`
        : `removed ${removed.join(' and ')} from ${servers}\n`,
    );
    return 0;
  } catch (error) {
    io.err(`troupe: ${TroupeError.is(error) ? `${error.code}: ` : ''}${(error as Error).message}\n`);
    return 1;
  }
}

function parseClusterArgs(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    allowPositionals: true,
    strict: true,
    options: { servers: { type: 'string' }, prefix: { type: 'string' }, force: { type: 'boolean' } },
  });
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
  lines.push(
    '',
    `${entries.length} codes; "troupe errors <CODE>" tells what raises one and what to do, as does`,
    errorsDoc(),
  );
  return `${lines.join('\n')}\n`;
}

/** One code: its meaning, what raises it and what to do, from the catalogue's document. */
function explain(code: ErrorCode, width = 100): string {
  const meaning = ERROR_CODES[code];
  const lines = [code, ...wrap(meaning, width - 2).map((line) => `  ${line}`)];
  const row = readFileSync(errorsDoc(), 'utf8')
    .split('\n')
    .find((line) => line.startsWith(`| \`${code}\` |`));
  // The row reads "| `CODE` | meaning **Raised by** ... **To do:** ... |".
  const rest = plain(row?.slice(row.indexOf('|', 2) + 1).replace(/\|\s*$/, '') ?? '')
    .replace(plain(meaning), '')
    .trim();
  const [raised = '', remedy] = rest.split(/\s*To do:\s*/);
  for (const [title, text] of [
    ['', raised],
    ['To do: ', remedy ?? ''],
  ] as const) {
    if (text === '') continue;
    lines.push('', ...wrap(`${title}${text}`, width));
  }
  return `${lines.join('\n')}\n`;
}

/** Markdown table text as plain text: no emphasis, no code marks, no escaped pipes. */
function plain(markdown: string): string {
  return markdown.replaceAll('**', '').replaceAll('`', '').replaceAll('\\|', '|').trim();
}

/** The catalogue's document, `docs/errors.md` of this package (shipped in it). */
function errorsDoc(): string {
  const root = packageRoot();
  const path = root === undefined ? undefined : join(root, 'docs', 'errors.md');
  if (path === undefined || !existsSync(path))
    throw new Error('docs/errors.md is missing from this copy of troupe');
  return path;
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

/** The version in this package's package.json. */
function packageVersion(): string {
  const root = packageRoot();
  return root === undefined ? 'unknown' : (readPackage(root)?.version ?? 'unknown');
}

/** This package's root: the nearest directory up from this file (src or dist) with its package.json. */
function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (readPackage(dir) !== undefined) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function readPackage(dir: string): { version: string } | undefined {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      name?: string;
      version?: string;
    };
    return pkg.name === 'troupe' && typeof pkg.version === 'string' ? { version: pkg.version } : undefined;
  } catch {
    return undefined; // No package.json here (or not ours): keep walking up.
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

if (isEntryPoint()) process.exitCode = await main(process.argv.slice(2));
