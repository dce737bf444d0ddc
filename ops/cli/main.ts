#!/usr/bin/env node
/** The `troupe` command line, on commander: every command has `--help`. */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ERROR_CODES, type ErrorCode, TroupeError } from '../../protocols/index.js';
import { removeClusterState } from '../../runtime/index.js';
import { registerChaos } from './chaos.js';
import { errorTable, explain, packageVersion } from './errors.js';
import { registerIntrospection } from './introspect.js';
import { type CliIo, describeError, type ExitCode, processIo } from './io.js';
import { registerNode } from './node.js';

export type { CliIo, ExitCode } from './io.js';

/**
 * Runs the `troupe` command line with `argv` (the arguments after the program name) and resolves
 * to the exit code: 0 on success, 1 when a command failed, 2 for a usage error (an unknown command,
 * option or code, a bad config).
 *
 * @example
 * ```ts
 * process.exitCode = await main(process.argv.slice(2));
 * ```
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<ExitCode> {
  let code: ExitCode = 0;
  const program = buildProgram(io, (exit) => {
    code = exit;
  });
  if (argv.length === 0) {
    io.out(program.helpInformation());
    return 0;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version "errors" are how commander ends after printing them.
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help'
      ) {
        return 0;
      }
      return 2;
    }
    io.err(`troupe: ${describeError(error)}\n`);
    return TroupeError.is(error, 'ERR_INVALID_CONFIG') ? 2 : 1;
  }
  return code;
}

function buildProgram(io: CliIo, exit: (code: ExitCode) => void): Command {
  const program = new Command('troupe')
    .description('troupe: an actor-model runtime for AI agents')
    .version(packageVersion(), '-v, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    .helpCommand('help [command]', 'show help for a command')
    .configureOutput({
      writeOut: io.out,
      writeErr: io.err,
      outputError: (text, write) =>
        write(`troupe: ${text.replace(/^error: /, '')}Run "troupe --help" for the commands.\n`),
    })
    .exitOverride()
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      `
Examples:
  troupe errors ERR_ASK_TIMEOUT
  troupe node --config ./troupe.config.js
  troupe members --nats nats://127.0.0.1:4222 --cluster shop
  troupe tree --nats nats://127.0.0.1:4222 --cluster shop --node node-a
  troupe dashboard --nats nats://127.0.0.1:4222 --cluster shop --port 8080
  troupe cluster remove shop --servers nats://127.0.0.1:4222
  troupe chaos run plan.json --seed 7 --simulate --out chaos-out
  troupe chaos run plan.json --seed 7 --out chaos-out   (on real processes)

"troupe <command> --help" describes a command and its options.
`,
    );

  program
    .command('errors')
    .description('list the error catalogue, or what one code means, what raises it and what to do about it')
    .argument('[code]', 'one error code, e.g. ERR_ASK_TIMEOUT')
    .action((code: string | undefined) => {
      if (code === undefined) {
        io.out(errorTable());
        return;
      }
      if (!(code in ERROR_CODES)) {
        program.error(`no error code "${code}" in the catalogue; "troupe errors" lists them\n`, {
          exitCode: 2,
          code: 'troupe.unknownCode',
        });
      }
      io.out(explain(code as ErrorCode));
    });

  const cluster = program.command('cluster').description("manage a cluster's state on NATS");
  cluster
    .command('remove')
    .description(
      "remove a stopped cluster's state (its KV buckets <prefix>_members and <prefix>_leases) from a shared NATS",
    )
    .argument('<cluster>', 'the cluster name')
    .option('--servers <url>', 'NATS URL (defaults to NATS_URL, then nats://127.0.0.1:4222)')
    .option('--prefix <prefix>', 'the subject prefix its nodes were given (defaults to troupe.<cluster>)')
    .option('--force', 'remove it even while members are up')
    .action(async (name: string, options: { servers?: string; prefix?: string; force?: boolean }) => {
      const servers = options.servers ?? process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
      try {
        const { removed } = await removeClusterState({
          servers,
          cluster: name,
          ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
          force: options.force === true,
        });
        io.out(
          removed.length === 0
            ? `cluster "${name}" has no state on ${servers}\n`
            : `removed ${removed.join(' and ')} from ${servers}\n`,
        );
      } catch (error) {
        io.err(`troupe: ${describeError(error)}\n`);
        exit(1);
      }
    });

  registerNode(program, io, exit);
  registerIntrospection(program, io, exit);
  registerChaos(program, io, exit);
  return program;
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
