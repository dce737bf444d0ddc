/** Starting a cluster node from a resolved configuration: what `troupe node` runs. */
import type { Logger } from 'pino';
import { inMemoryJournal, type Journal, pgliteJournal, postgresJournal } from '../../memory/index.js';
import { TroupeError } from '../../protocols/index.js';
import { type ActorSystem, type Clock, createNode, natsTransport, realClock } from '../../runtime/index.js';
import { logSystem, troupeLogger } from '../logs/index.js';
import type { NodeContext, ResolvedNodeConfig } from './config.js';

/** A node started by {@link startClusterNode}. */
export interface ClusterNode {
  readonly system: ActorSystem;
  readonly config: ResolvedNodeConfig;
  readonly log: Logger;
  /** Hands the node's named actors over, lets mailboxes empty (up to `drainTimeoutMs`), then stops everything. */
  drain(): Promise<void>;
  /** Stops now. */
  close(): Promise<void>;
  /** Registers work to run after the system has stopped (last registered, first run). */
  onStopped(task: () => Promise<void> | void): void;
}

/** Options of {@link startClusterNode}. */
export interface StartClusterNodeOptions {
  /** Where logs go. Defaults to `troupeLogger` (pino, JSON on stdout) at the config's `logLevel`. */
  readonly log?: Logger;
  /** The environment given to the config's functions. Defaults to `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * The node's clock: every timer, deadline and timestamp of its system and journal. Defaults to the
   * real clock; the chaos runner gives a node process one whose wall clock it can skew.
   */
  readonly clock?: Clock;
}

/**
 * Opens the journal, connects to NATS, starts the node (it joins the cluster's membership even
 * without kinds, so operators see it), runs the config's `setup`, and logs what happens to it as
 * `logSystem` does (crashes, escalations and failures as errors; restarts, dead letters, open
 * breakers and unreachable members as warnings; members and the lifecycle as info), secrets redacted.
 *
 * @throws TroupeError `ERR_TRANSPORT` when NATS cannot be reached; `ERR_JOURNAL_UNAVAILABLE` when the
 * journal cannot; what `kinds` or `setup` throw.
 */
export async function startClusterNode(
  config: ResolvedNodeConfig,
  options: StartClusterNodeOptions = {},
): Promise<ClusterNode> {
  const log =
    options.log ??
    troupeLogger({ level: config.logLevel }).child({ cluster: config.cluster, node: config.node });
  const cleanup: (() => Promise<void> | void)[] = [];
  const runCleanup = async () => {
    for (const task of cleanup.splice(0).reverse()) {
      try {
        await task();
      } catch (error) {
        log.error({ err: error }, 'a shutdown step failed');
      }
    }
  };
  try {
    const clock = options.clock ?? realClock;
    const journal = await openJournal(config.journal, clock);
    if (journal !== undefined) cleanup.push(() => journal.close());
    const context: NodeContext = {
      cluster: config.cluster,
      node: config.node,
      journal,
      env: options.env ?? process.env,
    };
    const kinds = typeof config.kinds === 'function' ? config.kinds(context) : config.kinds;
    const transport = await natsTransport({
      servers: config.nats.servers,
      ...(config.nats.prefix === undefined ? {} : { prefix: config.nats.prefix }),
      ...(config.nats.user === undefined ? {} : { user: config.nats.user }),
      ...(config.nats.pass === undefined ? {} : { pass: config.nats.pass }),
      ...(config.nats.token === undefined ? {} : { token: config.nats.token }),
      connection: { name: `troupe ${config.cluster}/${config.node}` },
    });
    const system = await createNode({
      name: config.cluster,
      node: config.node,
      transport,
      ...(kinds === undefined ? {} : { kinds }),
      joinCluster: true,
      heartbeatMs: config.heartbeatMs,
      downAfterMissed: config.downAfterMissed,
      askTimeoutMs: config.askTimeoutMs,
      devChecks: false,
      clock,
      deadLetterLog: (line) => log.warn(line),
    });
    cleanup.push(logSystem(system, { logger: log }));
    await config.setup?.(system, context);
    let stopping: Promise<void> | undefined;
    const stop = (how: 'drain' | 'close') => {
      stopping ??= (async () => {
        log.info({ how }, how === 'drain' ? 'draining' : 'closing');
        if (how === 'drain') await system.drain({ timeoutMs: config.drainTimeoutMs });
        else await system.close();
        await runCleanup();
        log.info('stopped');
      })();
      return stopping;
    };
    return {
      system,
      config,
      log,
      drain: () => stop('drain'),
      close: () => stop('close'),
      onStopped: (task) => void cleanup.push(task),
    };
  } catch (error) {
    await runCleanup();
    throw error;
  }
}

async function openJournal(setting: string | undefined, clock: Clock): Promise<Journal | undefined> {
  if (setting === undefined) return undefined;
  if (setting === 'memory') return inMemoryJournal({ clock });
  if (setting.startsWith('pglite:'))
    return pgliteJournal({ dataDir: setting.slice('pglite:'.length), clock });
  if (/^postgres(ql)?:\/\//.test(setting)) return postgresJournal({ connectionString: setting, clock });
  throw new TroupeError('ERR_INVALID_CONFIG', `invalid config: journal: cannot open "${setting}"`, {
    details: { field: 'journal' },
  });
}
