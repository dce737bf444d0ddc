/**
 * A chaos plan on real processes: one OS process per plan node (a cluster node on a real NATS and
 * a real Postgres journal, hosting the workload's named actors), the workload's clients in the
 * runner's process calling them over NATS, and faults by real means: kill -9 or a crash and a
 * restart, SIGSTOP/SIGCONT, the NATS server and Postgres stopped and started again; actors crashed,
 * the journal made slow or absent, the model faults put in force and a node's wall clock skewed,
 * through the node's own commands. Network faults (partitions,
 * delay, loss, duplication, reordering) are played in the net lab (Linux network namespaces, root):
 * each node in a namespace of its own and the NATS server in another, so that a partition cuts the
 * minority side off the server. Where the lab cannot run they are skipped, and the history and the
 * summary say why. The history and the checkers are the simulation's (the entries the nodes'
 * workloads add to the log come back on their stdout), so `summary`, `htmlReport` and the CLI read
 * a real run as they read a simulated one.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { rmSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { type Journal, postgresJournal, type StoredEvent } from '../../../memory/index.js';
import { TroupeError } from '../../../protocols/index.js';
import {
  type ActorSystem,
  exponential,
  realClock,
  retrying,
  seededRandom,
  sleep,
} from '../../../runtime/index.js';
import { historyRecorder, type LogEntry } from '../history/index.js';
import { describeFault, type Fault, faultEnd, type Plan, type PlanInput } from '../plan/index.js';
import {
  judged,
  type ModelFaultState,
  planned,
  type RunOptions,
  type RunResult,
  type SimContext,
  type WorkloadOrigin,
  within,
} from '../sim/simulate.js';
import { type NetFault, type NetLab, netLabUnavailable, openNetLab } from './netlab.js';
import { NodeProcess } from './process.js';
import { callGateway, remoteNode } from './remote.js';
import { NatsServer, natsServerBinary, PostgresServer, postgresBinaries } from './servers.js';
import { type ControlCommand, META, NODE_ENV } from './wire.js';

/** A partition or a network fault of a plan. */
export type NetworkFault = Extract<Fault, { kind: 'partition' | 'network' }>;

/** The net lab's host of the NATS server (a plan node of that name pushes it aside). */
const NATS_HOST = 'nats-server';

/**
 * Options of {@link runReal}. `heartbeatMs` defaults to 250 ms. Aborting `signal` heals no fault
 * and makes no final read: the node processes, the servers and the net lab the run started are
 * stopped, and then the run rejects with the signal's reason.
 */
export interface RealRunOptions extends RunOptions {
  /** How node processes build the workload. Defaults to the workload's own `origin`. */
  readonly origin?: WorkloadOrigin;
  /** Told the time now and then (about every second). */
  readonly onProgress?: (elapsedMs: number, totalMs: number) => void;
  /** Told what happens: servers and nodes started, each fault applied, healed or skipped. */
  readonly onEvent?: (line: string) => void;
  /** A NATS server to use (and restart for `nats-restart`) instead of a private one. It is not disposed. */
  readonly nats?: NatsServer;
  /** A Postgres to use (and restart) instead of a private one; each run gets a database of its own. */
  readonly postgres?: PostgresServer;
  /**
   * Where partitions and network faults are played: `netlab` (network namespaces, when the schedule
   * has such faults and the lab can run here; needs root) or `off` (skipped). Defaults to `netlab`.
   */
  readonly network?: 'netlab' | 'off';
  /** Missed heartbeats before a node is down. Defaults to 4. */
  readonly downAfterMissed?: number;
  /** How long a node may take to start. Defaults to 30 s. */
  readonly nodeStartMs?: number;
  /** Log level of the node processes (their stderr). Defaults to `warn`. */
  readonly nodeLogLevel?: string;
}

/** What a run on real processes produced: a simulation's result, with what was skipped. */
export interface RealResult extends RunResult {
  /** Faults of the schedule that were not applied, with why (also in the history, as nemesis `info`). */
  readonly skipped: readonly { readonly fault: Fault; readonly reason: string }[];
  readonly stats: {
    /** From the start of the run (after setup) to its end, ms. */
    readonly wallMs: number;
    /** Starting the servers and the nodes, ms. */
    readonly setupMs: number;
    /** Node processes started, restarts included. */
    readonly nodeStarts: number;
  };
}

interface RunNode {
  readonly name: string;
  proc: NodeProcess | undefined;
  booting: Promise<void> | undefined;
}

/**
 * Runs `plan` on real processes with `workload` and judges the history. Needs `nats-server` and
 * PostgreSQL (Debian's packages) unless `nats` and `postgres` are given.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad plan or a workload without an origin;
 * `ERR_ILLEGAL_STATE` when a server is not installed or the cluster does not form; the reason of
 * `signal` when it aborts (once everything the run started is stopped).
 * @example
 * ```ts
 * const result = await runReal({ name: 'reg', seed: 1, durationMs: 15_000, nodes: ['a', 'b', 'c'],
 *   workload: { name: 'register' }, faults: [{ kind: 'crash-node', at: 3000, durationMs: 2000, node: 'b' }] },
 *   { workload: registerWorkload(), onProgress: (ms) => console.error(`${ms} ms`) });
 * console.log(summary(result));
 * ```
 */
export async function runReal(planInput: PlanInput | Plan, options: RealRunOptions): Promise<RealResult> {
  const setupStarted = performance.now();
  const { plan, faults } = planned(planInput, options);
  const workload = options.workload;
  const origin = options.origin ?? workload.origin;
  if (origin === undefined)
    throw new TroupeError(
      'ERR_INVALID_OPTION',
      `workload "${workload.name}" has no origin: node processes cannot build it (give \`origin\`: its module and export)`,
      { details: { field: 'origin' } },
    );
  const say = options.onEvent ?? (() => {});
  const heartbeatMs = options.heartbeatMs ?? 250;
  options.signal?.throwIfAborted();
  const { signal, release } = manyListeners(options.signal);
  // Steps that end by themselves in a few seconds (a server's start, a connection) are let finish
  // and then the signal is looked at, so that whatever a step started is in `cleanup` when it throws.
  const checkpoint = () => signal?.throwIfAborted();
  const cleanup: (() => Promise<unknown>)[] = [];
  const nodes = new Map<string, RunNode>(
    plan.nodes.map((name) => [name, { name, proc: undefined, booting: undefined }]),
  );
  let nodeStarts = 0;
  // A runner that dies leaves nothing behind: a running node sees its stdin close and exits, but a
  // paused one cannot, and servers wait for ever; the runner's exit kills them (an uncaught error,
  // or a second Ctrl-C, ends the process without the cleanup below). It is unhooked last.
  // Servers are known from their spawn on, so that one still starting dies too, and their stores
  // from their making on, so that none is left in the temporary directory.
  const servers = new Set<ChildProcess>();
  const onProcess = (child: ChildProcess) => {
    servers.add(child);
    child.once('exit', () => servers.delete(child));
  };
  const stores: string[] = [];
  const onDirectory = (dir: string) => void stores.push(dir);
  const killAll = () => {
    const pids = [
      ...[...nodes.values()].map((n) => (n.proc?.state === 'dead' ? undefined : n.proc?.pid)),
      ...[...servers].map((child) => child.pid),
    ];
    for (const pid of pids) {
      try {
        if (pid !== undefined) process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    // Removed already when the run ended normally; a killed server's files may still be closing.
    for (const dir of stores) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
      } catch {
        // Left for the system's temporary directory cleaner.
      }
    }
  };
  process.once('exit', killAll);
  try {
    if (options.nats === undefined && natsServerBinary() === undefined)
      throw new TroupeError('ERR_ILLEGAL_STATE', 'nats-server is not installed (Debian package nats-server)');
    if (options.postgres === undefined && postgresBinaries() === undefined)
      throw new TroupeError('ERR_ILLEGAL_STATE', 'PostgreSQL is not installed (Debian package postgresql)');
    let networkSkip: string | undefined;
    let lab: NetLab | undefined;
    const natsHost = plan.nodes.includes(NATS_HOST) ? `${NATS_HOST}-${plan.nodes.length}` : NATS_HOST;
    if (faults.some((f) => f.kind === 'partition' || f.kind === 'network')) {
      const reason = netLabUnavailable();
      if (options.network === 'off') networkSkip = "network faults are off (network: 'off')";
      else if (options.nats !== undefined)
        networkSkip = 'the NATS server given in the options runs outside the net lab';
      else if (reason !== undefined) networkSkip = `the net lab cannot run here: ${reason}`;
      else {
        const opened = await openNetLab({ nodes: [natsHost, ...plan.nodes], uplink: true, seed: plan.seed });
        lab = opened;
        cleanup.push(() => opened.close());
        checkpoint();
        say(`net lab: ${plan.nodes.length} node namespace(s) and one for the NATS server`);
      }
    }
    const starting = [
      options.nats ??
        NatsServer.start(
          lab === undefined
            ? { onProcess, onDirectory }
            : { prefix: lab.exec(natsHost), host: '0.0.0.0', onProcess, onDirectory },
        ),
      options.postgres ?? PostgresServer.start({ onProcess, onDirectory }),
    ] as const;
    // One server may start while the other fails: the one that started is disposed all the same.
    if (options.nats === undefined)
      cleanup.push(async () => (await Promise.resolve(starting[0]).catch(() => undefined))?.dispose());
    if (options.postgres === undefined)
      cleanup.push(async () => (await Promise.resolve(starting[1]).catch(() => undefined))?.dispose());
    const [nats, postgres] = await Promise.all(starting);
    // In the lab, everything reaches the NATS server at its host's address (the runner through the
    // uplink, which no fault touches), and Postgres through its Unix socket.
    const natsUrl = lab === undefined ? nats.url : `nats://${lab.address(natsHost)}:${nats.port}`;
    say(`nats-server on ${natsUrl}, postgres on port ${postgres.port}`);
    checkpoint();

    const runId = randomBytes(4).toString('hex');
    const cluster = `chaos-${runId}`;
    const journalUrl = await createDatabase(postgres.url, `chaos_${runId}`);
    checkpoint();
    const nodeJournalUrl =
      lab === undefined || postgres.socketDir === undefined
        ? journalUrl
        : `postgres://postgres@localhost:${postgres.port}${new URL(journalUrl).pathname}?host=${postgres.socketDir}`;
    const journal: Journal = await postgresJournal({ connectionString: journalUrl, poolSize: 2 });
    cleanup.push(() => journal.close());
    const nc: NatsConnection = await connect({
      servers: natsUrl,
      name: `troupe-chaos runner ${cluster}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    cleanup.push(() => nc.close());
    checkpoint();

    let journalFault: ControlCommand = { cmd: 'journal', outage: false, latencyMs: 0 };
    // What a node started (or started again) during the run is told at once: the run's start, the
    // faults in force that it plays itself (the journal's, the model's, its clock's skew).
    let wall0: number | undefined;
    const modelFault: ModelFaultState = { current: undefined };
    const skews = new Map<string, number>();
    // The entries the nodes' workloads add to the checkers' log.
    const nodeLog: LogEntry[] = [];
    const launch = async (n: RunNode): Promise<void> => {
      const deadline = performance.now() + (options.nodeStartMs ?? 30_000);
      for (let attempt = 1; ; attempt++) {
        signal?.throwIfAborted();
        try {
          nodeStarts++;
          const proc = await NodeProcess.start({
            node: n.name,
            prefix: lab?.exec(n.name) ?? [],
            readyTimeoutMs: Math.max(1000, deadline - performance.now()),
            onLog: (entry) => nodeLog.push(entry),
            ...(signal === undefined ? {} : { signal }),
            env: {
              [NODE_ENV.cluster]: cluster,
              [NODE_ENV.node]: n.name,
              [NODE_ENV.nats]: natsUrl,
              [NODE_ENV.journal]: nodeJournalUrl,
              [NODE_ENV.workload]: JSON.stringify(origin),
              [NODE_ENV.plan]: JSON.stringify(plan),
              [NODE_ENV.heartbeatMs]: String(heartbeatMs),
              [NODE_ENV.downAfterMissed]: String(options.downAfterMissed ?? 4),
              [NODE_ENV.logLevel]: options.nodeLogLevel ?? 'warn',
            },
          });
          n.proc = proc;
          if (journalFault.cmd === 'journal' && (journalFault.outage || journalFault.latencyMs > 0))
            proc.command(journalFault);
          if (wall0 !== undefined) proc.command({ cmd: 'epoch', wallMs: wall0 });
          if (modelFault.current !== undefined) proc.command({ cmd: 'model', fault: modelFault.current });
          const skew = skews.get(n.name) ?? 0;
          if (skew !== 0) proc.command({ cmd: 'clock', skewMs: skew });
          return;
        } catch (error) {
          // A node cannot start while NATS or Postgres is down (a fault): try again until the deadline.
          if (performance.now() > deadline || signal?.aborted === true) throw error;
          say(`node ${n.name} did not start (attempt ${attempt}), trying again: ${firstLine(error)}`);
          await sleep(500, signal);
        }
      }
    };
    const boot = (n: RunNode): Promise<void> => {
      n.booting ??= launch(n).finally(() => {
        n.booting = undefined;
      });
      return n.booting;
    };
    cleanup.push(async () => {
      await Promise.allSettled([...nodes.values()].map((n) => n.booting));
      await Promise.all([...nodes.values()].map((n) => n.proc?.kill()));
    });
    await Promise.all([...nodes.values()].map(boot));
    await formed(nc, cluster, plan.nodes, 30_000, signal);
    say(`${plan.nodes.length} node process(es) up in cluster ${cluster}`);

    const t0 = performance.now();
    const runStart = realClock.wallNow();
    wall0 = runStart;
    const elapsed = () => Math.round(performance.now() - t0);
    const history = historyRecorder(elapsed);
    const seeds = seededRandom(plan.seed);
    const draw = () => Math.floor(seeds() * 2 ** 31);
    const workloadRandom = seededRandom(draw());
    const pickRandom = seededRandom(draw());
    const running = () =>
      plan.nodes.filter(
        (name) => nodes.get(name)!.proc?.state === 'running' && nodes.get(name)!.booting === undefined,
      );
    const skipped: { fault: Fault; reason: string }[] = [];
    let stopped = false;

    const ctx: SimContext = {
      plan,
      random: workloadRandom,
      clock: realClock,
      history,
      journal,
      get stopped() {
        return stopped;
      },
      pickNode(): ActorSystem | undefined {
        const live = running();
        if (live.length === 0) return undefined;
        return remoteNode(nc, cluster, live[Math.floor(pickRandom() * live.length)]!);
      },
      modelFault,
      sleep: (ms) => sleep(ms, signal),
      within: (work, ms) => within(realClock, work, ms, signal),
    };

    const broadcast = (command: ControlCommand, only?: string) => {
      for (const n of nodes.values()) if (only === undefined || only === n.name) n.proc?.command(command);
    };
    broadcast({ cmd: 'epoch', wallMs: runStart });

    /**
     * Sets a node's skew and says how far off its wall clock now reads, as its gateway tells it (the
     * command goes down stdin and the read over NATS: a read may come first, so it is read again a
     * few times until it agrees, within 250 ms of round trip).
     */
    const skew = async (node: string, skewMs: number) => {
      skews.set(node, skewMs);
      broadcast({ cmd: 'clock', skewMs }, node);
      let off: number | undefined;
      const disagrees = new Error('the node clock disagrees');
      const read = await retrying(
        async () => {
          const sent = realClock.wallNow();
          const wall = (await callGateway(nc, cluster, node, { op: 'clock' }, 2000)) as number;
          off = Math.round(wall - (sent + realClock.wallNow()) / 2);
          if (Math.abs(off - skewMs) >= 250) throw disagrees;
          return `reads ${off} ms off`;
        },
        {
          attempts: 5,
          backoff: exponential({ baseMs: 50, maxMs: 50 }),
          retryable: (e) => e === disagrees,
          signal,
        },
      ).catch((error: unknown) =>
        error === disagrees ? `reads ${off} ms off` : `unread: ${firstLine(error)}`,
      );
      say(`clock of ${node} set ${skewMs} ms off; it ${read}`);
    };

    const cannot = (fault: Fault): string | undefined => {
      switch (fault.kind) {
        case 'partition':
        case 'network':
          return networkSkip;
        case 'nats-restart':
          return options.nats !== undefined && !options.nats.running
            ? 'the NATS server is not running'
            : undefined;
        case 'postgres-restart':
          return postgres.restartable
            ? undefined
            : 'Postgres is an external server (DATABASE_URL): it is not restarted';
        default:
          return undefined;
      }
    };

    const apply = async (fault: Fault): Promise<(() => Promise<void>) | undefined> => {
      switch (fault.kind) {
        case 'crash-node': {
          const n = nodes.get(fault.node)!;
          await n.booting?.catch(() => {});
          const proc = n.proc;
          if (proc !== undefined && proc.state !== 'dead') {
            if (fault.signal === 'kill' || proc.state === 'paused') proc.signal('SIGKILL');
            else {
              proc.command({ cmd: 'crash' });
              const crashed = await Promise.race([
                proc.exited().then(() => true),
                sleep(3000).then(() => false),
              ]);
              if (!crashed) proc.signal('SIGKILL');
            }
            await proc.exited();
            if (n.proc === proc) n.proc = undefined;
          }
          if (fault.durationMs === undefined) return undefined;
          return async () => {
            if (n.proc === undefined || n.proc.state === 'dead') await boot(n);
          };
        }
        case 'pause-node': {
          const n = nodes.get(fault.node)!;
          const proc = n.proc;
          if (proc === undefined || proc.state !== 'running') return undefined;
          proc.signal('SIGSTOP');
          return async () => {
            if (proc.state === 'paused') proc.signal('SIGCONT');
          };
        }
        case 'nats-restart':
          await nats.stop();
          return () => nats.restart();
        case 'postgres-restart':
          await postgres.stop();
          return () => postgres.restart();
        case 'crash-actor':
          broadcast({ cmd: 'crash-actor', pattern: fault.pattern }, fault.node);
          return undefined;
        case 'clock-skew': {
          await skew(fault.node, (skews.get(fault.node) ?? 0) + fault.skewMs);
          return () => skew(fault.node, (skews.get(fault.node) ?? 0) - fault.skewMs);
        }
        case 'model': {
          modelFault.current = fault;
          broadcast({ cmd: 'model', fault });
          return async () => {
            if (modelFault.current !== fault) return;
            modelFault.current = undefined;
            broadcast({ cmd: 'model', fault: null });
          };
        }
        case 'journal': {
          journalFault = {
            cmd: 'journal',
            outage: fault.mode === 'outage',
            latencyMs: fault.mode === 'slow' ? fault.latencyMs : 0,
          };
          broadcast(journalFault);
          return async () => {
            journalFault = { cmd: 'journal', outage: false, latencyMs: 0 };
            broadcast(journalFault);
          };
        }
        case 'partition':
        case 'network': {
          const heals: (() => Promise<void>)[] = [];
          try {
            for (const labFault of inLab(fault, natsHost, plan.nodes)) heals.push(await lab!.apply(labFault));
          } catch (error) {
            for (const heal of heals) await heal();
            throw error;
          }
          return async () => {
            for (const heal of heals) await heal();
          };
        }
        default:
          return undefined;
      }
    };

    const playFault = async (fault: Fault): Promise<void> => {
      const node = 'node' in fault ? fault.node : undefined;
      const { kind, at: _at, ...value } = fault;
      const skip = (reason: string) => {
        skipped.push({ fault, reason });
        history.nemesis('info', kind, value, node, reason);
        say(`${describeFault(fault)} skipped: ${reason}`);
      };
      const reason = cannot(fault);
      if (reason !== undefined) return skip(reason);
      history.nemesis('invoke', kind, value, node);
      say(`${describeFault(fault)} (applied at ${elapsed()} ms)`);
      let undo: (() => Promise<void>) | undefined;
      try {
        undo = await apply(fault);
      } catch (error) {
        // Recorded as started: close the window, then say why it was not applied.
        history.nemesis('ok', kind, value, node);
        return skip(`it could not be applied: ${(error as Error).message}`);
      }
      const end = faultEnd(fault);
      // An interrupted run heals nothing (a healed crash would start a node again): cleanup stops it all.
      if (end > fault.at) await sleep(Math.max(0, end - elapsed()), signal);
      try {
        await undo?.();
      } catch (error) {
        say(`@${elapsed()} ms healing ${fault.kind} failed: ${(error as Error).message}`);
      }
      history.nemesis('ok', kind, value, node);
      if (end > fault.at)
        say(`@${elapsed()} ms healed ${fault.kind}${node === undefined ? '' : ` on ${node}`}`);
    };

    const played = faults.map((fault) => sleep(fault.at, signal).then(() => playFault(fault)));
    // An interrupted run rejects them all at once; the cleanup below waits for them.
    for (const play of played) play.catch(() => {});
    // Before the servers stop: a fault being applied or healed (a server restarting, a node
    // starting) ends first, and no later one starts, so nothing is started after the cleanup.
    cleanup.push(async () => {
      stopped = true;
      await Promise.allSettled(played);
    });
    const clients = Array.from({ length: workload.clients }, (_, i) =>
      workload.client(ctx, i).catch(() => {}),
    );
    // Real time on purpose: progress is shown to a person watching a real run.
    const progress = setInterval(
      () => options.onProgress?.(Math.min(elapsed(), plan.durationMs), plan.durationMs),
      1000,
    );
    cleanup.push(async () => clearInterval(progress));
    await sleep(plan.durationMs, signal);
    clearInterval(progress);
    options.onProgress?.(plan.durationMs, plan.durationMs);
    stopped = true;
    await Promise.all(clients);
    // Every fault heals (crashed nodes come back) before the final reads.
    await Promise.all(played);
    await Promise.all([...nodes.values()].map((n) => n.booting?.catch(() => {})));
    const limit = plan.healMs + 60_000;
    const finished = await Promise.race([
      Promise.resolve(workload.finish?.(ctx)).then(
        () => true,
        () => true,
      ),
      sleep(limit, signal).then(() => false),
    ]);
    if (!finished) say(`the workload's final reads did not end within ${limit} ms`);
    // Work the nodes still do on their own (sagas the clients stopped waiting for) lands in the
    // journal: let it settle (no new event for a second), within the heal time.
    const settleUntil = performance.now() + plan.healMs;
    let version = -1;
    for (let quiet = 0; quiet < 2 && performance.now() < settleUntil; ) {
      await sleep(500, signal);
      const now = await lastPosition(journal).catch(() => version);
      quiet = now === version ? quiet + 1 : 0;
      version = now;
    }
    const durationMs = elapsed();
    const wallMs = performance.now() - t0;
    await Promise.all([...nodes.values()].map((n) => n.proc?.kill()));
    // The journal's events in commit order, then the nodes' own entries by time.
    const log = [
      ...(await readLog(journal, runStart)),
      ...nodeLog.sort((a, b) => (a.time ?? 0) - (b.time ?? 0)),
    ];
    checkpoint();
    return {
      ...judged(plan, faults, options, { durationMs, ops: history.ops, log }),
      skipped,
      stats: { wallMs, setupMs: t0 - setupStarted, nodeStarts },
    };
  } finally {
    for (const task of cleanup.reverse()) await task().catch(() => {});
    process.off('exit', killAll);
    release();
  }
}

/**
 * A signal that follows `outer`, for the run's every client, fault and wait to listen to at once
 * (past the ten listeners after which Node warns of a leak); `release` stops following.
 */
function manyListeners(outer: AbortSignal | undefined): {
  signal: AbortSignal | undefined;
  release: () => void;
} {
  if (outer === undefined) return { signal: undefined, release: () => {} };
  const inner = new AbortController();
  setMaxListeners(0, inner.signal);
  const follow = () => inner.abort(outer.reason);
  outer.addEventListener('abort', follow, { once: true });
  return { signal: inner.signal, release: () => outer.removeEventListener('abort', follow) };
}

/** Waits until every node sees every node up. */
async function formed(
  nc: NatsConnection,
  cluster: string,
  names: readonly string[],
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  for (;;) {
    signal?.throwIfAborted();
    const views = await Promise.all(
      names.map((node) =>
        callGateway(nc, cluster, node, { op: 'members' }, 2000).then(
          (members) => members as string[],
          (error: unknown) => [`(${(error as Error).message})`],
        ),
      ),
    );
    if (views.every((members) => names.every((n) => members.includes(n)))) return;
    last = views.map((members, i) => `${names[i]} sees ${members.join(', ')}`).join('; ');
    if (performance.now() > deadline)
      throw new TroupeError('ERR_ILLEGAL_STATE', `the cluster did not form within ${timeoutMs} ms: ${last}`);
    await sleep(200, signal);
  }
}

/** A database of the run's own on the server of `url`; resolves with its URL. */
async function createDatabase(url: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const out = new URL(url);
  out.pathname = `/${name}`;
  return out.toString();
}

/** How far the journal's global log goes (its events counted). */
async function lastPosition(journal: Journal): Promise<number> {
  let count = 0;
  let batch: StoredEvent[] = await journal.readAll({ limit: 1000 });
  while (batch.length > 0) {
    count += batch.length;
    batch = await journal.readAll({ after: batch.at(-1)!.checkpoint, limit: 1000 });
  }
  return count;
}

/** Every event of the journal, in commit order, as the checkers' log. */
async function readLog(journal: Journal, wall0: number): Promise<LogEntry[]> {
  const log: LogEntry[] = [];
  let batch: StoredEvent[] = await journal.readAll({ limit: 1000 });
  while (batch.length > 0) {
    for (const e of batch) {
      const meta = e.metadata;
      const fence = meta[META.fence];
      const node = meta[META.node];
      const time = meta[META.time];
      log.push({
        stream: e.stream,
        version: e.version,
        type: e.type,
        data: e.data,
        ...(e.messageId === undefined ? {} : { messageId: e.messageId }),
        ...(typeof fence === 'number' ? { fence } : {}),
        ...(typeof time === 'number' ? { time: time - wall0 } : {}),
        ...(typeof node === 'string' ? { node } : {}),
      });
    }
    batch = await journal.readAll({ after: batch.at(-1)!.checkpoint, limit: 1000 });
  }
  return log;
}

/**
 * A plan's network fault as the net lab's faults. Nodes talk through the NATS server, so a fault
 * between nodes is one between nodes and the server: a partition puts the server on its largest
 * side (the first of equals), cutting the others off; a network fault from `from` to `to` acts on
 * the way in (`from` to the server) and the way out (the server to `to`), each leg with half the
 * delay and jitter and the loss and duplication that make up the whole over two legs; reordering on
 * the way in. Messages from `from` to nodes outside `to` meet the first leg too: an approximation.
 */
export function inLab(fault: NetworkFault, natsHost: string, nodes: readonly string[]): NetFault[] {
  if (fault.kind === 'partition') {
    const sides = fault.sides.map((side) => [...side]);
    const largest = sides.reduce((best, side, i) => (side.length > sides[best]!.length ? i : best), 0);
    sides[largest]!.push(natsHost);
    return [{ kind: 'partition', sides, oneWay: fault.oneWay }];
  }
  const half = (p: number) => 1 - Math.sqrt(1 - p);
  const leg = {
    kind: 'network' as const,
    delayMs: Math.round(fault.delayMs / 2),
    jitterMs: Math.round(fault.jitterMs / 2),
    drop: half(fault.drop),
    duplicate: half(fault.duplicate),
  };
  return [
    { ...leg, from: fault.from ?? nodes, to: [natsHost], reorder: fault.reorder },
    { ...leg, from: [natsHost], to: fault.to ?? nodes, reorder: 0 },
  ];
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error)
    .split('\n')
    .filter((line, i) => i === 0 || /Error|error:/.test(line))
    .slice(0, 3)
    .join(' | ');
}
