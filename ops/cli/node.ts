/** `troupe node --config <module>`: runs one cluster node until a signal drains it. */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { TroupeError } from '../../protocols/index.js';
import { NODE_ENV_VARIABLES, resolveNodeConfig } from '../node/config.js';
import { startNodeOps } from '../node/ops.js';
import { type ClusterNode, startClusterNode } from '../node/start.js';
import type { CliIo, ExitCode } from './io.js';
import { SIGNAL_EXIT, STOP_SIGNALS as SIGNALS, type StopSignal } from './signals.js';

/** Adds `troupe node` to the program (as a subcommand, so it inherits the program's output and exit handling). */
export function registerNode(program: Command, io: CliIo, exit: (code: ExitCode) => void): void {
  const variables = Object.entries(NODE_ENV_VARIABLES)
    .map(([variable, field]) => `  ${variable.padEnd(26)} ${field}`)
    .join('\n');
  program
    .command('node')
    .description(
      'start a cluster node from a config module (default export: defineNodeConfig({...})); it joins the ' +
        'cluster, serves health, metrics and the dashboard on its ops port, and drains on SIGTERM/SIGINT ' +
        '(a second signal exits at once)',
    )
    .requiredOption('-c, --config <module>', 'the config module (.js, or .ts under tsx)')
    .addHelpText(
      'after',
      `\nEvery setting can come from the environment (it wins over the module):\n${variables}\n`,
    )
    .action(async (options: { config: string }) => {
      exit(await runNode(options.config, io));
    });
}

/** Loads the config, starts the node and its ops server, and resolves with the exit code once it has stopped. */
async function runNode(modulePath: string, io: CliIo): Promise<ExitCode> {
  let loaded: unknown;
  try {
    loaded = ((await import(pathToFileURL(resolve(modulePath)).href)) as { default?: unknown }).default;
  } catch (cause) {
    throw new TroupeError(
      'ERR_INVALID_CONFIG',
      `cannot load the config module ${modulePath}: ${String(cause)}`,
      {
        cause,
        details: { field: '' },
      },
    );
  }
  const config = resolveNodeConfig(loaded);
  let node: ClusterNode;
  try {
    node = await startClusterNode(config);
  } catch (error) {
    io.err(
      `troupe: the node could not start: ${TroupeError.is(error) ? `${error.code}: ` : ''}${String((error as Error)?.message ?? error)}\n`,
    );
    return 1;
  }
  const ops = await startNodeOps(node).catch(async (error: unknown) => {
    await node.close();
    throw error;
  });
  node.log.info(
    {
      nats: config.nats.servers,
      prefix: config.nats.prefix ?? `troupe.${config.cluster}`,
      journal: config.journal === undefined ? 'none' : config.journal.replace(/\/\/[^@/]*@/, '//***@'),
      ops: ops.url,
      kinds: [...Object.keys(typeof config.kinds === 'function' ? {} : (config.kinds ?? {}))],
    },
    'node started',
  );
  let signalled = false;
  let removeHandlers = () => {};
  const stopped = new Promise<ExitCode>((done) => {
    const onSignal = (signal: StopSignal) => {
      if (signalled) {
        node.log.warn({ signal }, 'second signal: exiting now');
        process.exit(SIGNAL_EXIT[signal]);
      }
      signalled = true;
      node.log.info({ signal }, 'signal: draining');
      node.drain().then(
        () => done(0),
        (error: unknown) => {
          node.log.error({ err: error }, 'drain failed');
          done(1);
        },
      );
    };
    for (const signal of SIGNALS) process.on(signal, onSignal);
    removeHandlers = () => {
      for (const signal of SIGNALS) process.off(signal, onSignal);
    };
    // A node that stops by itself (its top supervisor failed) ends the command too.
    void node.system.closed().then(async (error) => {
      if (signalled) return;
      await node.close();
      done(error === undefined ? 0 : 1);
    });
  });
  const code = await stopped;
  removeHandlers();
  return code;
}
