/**
 * Deterministic simulation of a whole cluster in one process: every node a real `createNode` on
 * the simulated network, every clock a view of one scheduler, every random draw from the plan's
 * seed. The same plan and seed give the same history, byte for byte.
 */

import type { Journal } from '../../../memory/index.js';
import { inMemoryJournal } from '../../../memory/index.js';
import { TroupeError } from '../../../protocols/index.js';
import {
  type ActorSystem,
  type Clock,
  createNode,
  type KindOptions,
  type Random,
  seededRandom,
  sleep,
  type TreeNode,
} from '../../../runtime/index.js';
import { crashActor, localActor } from '../../../runtime/internal.js';
import { withDeadline } from '../../../supervisors/index.js';
import { type Checker, runCheckers, type Verdict, worst } from '../checkers/index.js';
import { type History, type HistoryRecorder, historyRecorder } from '../history/index.js';
import { type Fault, faultEnd, type Plan, type PlanInput, parsePlan, schedule } from '../plan/index.js';
import { type JournalFaults, simJournal } from './journal.js';
import { type NetworkStats, SimNetwork } from './network.js';
import { type NodeClock, SimScheduler } from './scheduler.js';

/** What a workload's code sees of the running simulation. */
export interface SimContext {
  readonly plan: Plan;
  /** The workload's own random source (from the seed). */
  readonly random: Random;
  /** The simulation's clock (global, unskewed). */
  readonly clock: Clock;
  readonly history: HistoryRecorder;
  /** The shared journal, unfaulted: for final reads. */
  readonly journal: Journal;
  /** True once the run's duration is over: clients stop issuing operations. */
  readonly stopped: boolean;
  /** A running node to send through, picked at random (undefined when none runs). */
  pickNode(): ActorSystem | undefined;
  /** The model faults in force, for a scripted model to consult. */
  readonly modelFault: ModelFaultState;
  /** Waits on the simulation's clock. */
  sleep(ms: number): Promise<void>;
  /**
   * `work`, or a rejection with `ERR_ASK_TIMEOUT` after `ms` on the simulation's clock: a client's
   * own deadline, which holds even when the node it went through was killed or paused (whose
   * timers then never fire, or late).
   */
  within<T>(work: Promise<T>, ms: number): Promise<T>;
}

/** The model fault in force, if any. */
export interface ModelFaultState {
  current: Extract<Fault, { kind: 'model' }> | undefined;
}

/**
 * A workload: what every node hosts, and the clients that drive it. One workload object may serve
 * several runs (`checkChaos`'s seeds, `shrink`'s tries): what a run keeps (the work its clients
 * started, say) belongs with that run's context, not in the workload's closure, so that each run
 * starts afresh and the same seed gives the same history.
 */
export interface Workload {
  readonly name: string;
  /** The kinds of named actors every node registers, built on that node's view of the journal. */
  kinds(journal: Journal, ctx: SimContext): Readonly<Record<string, KindOptions>>;
  /**
   * Called on every node as it starts (and starts again after a crash), with its view of the
   * journal: spawns the node's own actors (a contract net's bidders, say), which die with the node.
   */
  boot?(system: ActorSystem, journal: Journal, ctx: SimContext): void;
  /** Number of concurrent clients. */
  readonly clients: number;
  /** One client: issues operations (recorded in `ctx.history`) until `ctx.stopped`. */
  client(ctx: SimContext, process: number): Promise<void>;
  /** After the faults heal and the clients stop: final reads. */
  finish?(ctx: SimContext): Promise<void>;
  /** The checkers that judge its history. */
  checkers(plan: Plan): readonly Checker[];
  /**
   * Where a node process of a run on real processes builds the same workload from (the built-in
   * workloads set it). Without it, such a run needs one in its options.
   */
  readonly origin?: WorkloadOrigin;
}

/**
 * How another process builds a workload: `module` (a path or a `file:` URL) and its export `export`,
 * a {@link Workload}, or a function called with `options` (plain JSON) that returns one.
 */
export interface WorkloadOrigin {
  readonly module: string;
  readonly export: string;
  readonly options?: unknown;
}

/** What a run of a plan is given, in simulation ({@link simulate}) or on real processes (`runReal`). */
export interface RunOptions {
  readonly workload: Workload;
  /** Checkers besides the workload's. */
  readonly checkers?: readonly Checker[];
  /** Run this schedule instead of the plan's (shrinking). */
  readonly faults?: readonly Fault[];
  /** Heartbeat of every node. */
  readonly heartbeatMs?: number;
  /**
   * Aborting it ends the run early (Ctrl-C at the command line): the run stops what it started and
   * rejects with the signal's reason.
   */
  readonly signal?: AbortSignal;
}

/** What a run of a plan produced, in simulation or on real processes: its history, judged. */
export interface RunResult {
  readonly history: History;
  readonly verdicts: readonly Verdict[];
  readonly verdict: 'ok' | 'violated' | 'unknown';
  readonly schedule: readonly Fault[];
}

/** Options of {@link simulate}. `heartbeatMs` defaults to 500 ms. */
export interface SimulateOptions extends RunOptions {
  /** Told the simulated time now and then (about every simulated second). */
  readonly onProgress?: (simulatedMs: number, totalMs: number) => void;
}

/** What a simulated run produced. */
export interface SimResult extends RunResult {
  readonly stats: {
    readonly network: NetworkStats;
    readonly timers: number;
    readonly wallMs: number;
    readonly simulatedMs: number;
  };
}

interface SimNode {
  readonly name: string;
  clock: NodeClock;
  system: ActorSystem | undefined;
  incarnation: number;
}

/**
 * Runs `plan` in simulation with `workload` and judges the history.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad plan; the reason of `signal` when it aborts.
 * @example
 * ```ts
 * const result = await simulate({ name: 'reg', seed: 1, durationMs: 30_000, nodes: ['a', 'b', 'c'],
 *   workload: { name: 'register' }, faults: { count: 5, kinds: ['partition', 'crash-node'] } },
 *   { workload: registerWorkload() });
 * console.log(result.verdict);
 * ```
 */
export async function simulate(planInput: PlanInput | Plan, options: SimulateOptions): Promise<SimResult> {
  // Real time only measures the harness's own speed (stats.wallMs); nothing simulated reads it.
  const started = performance.now();
  const { plan, faults } = planned(planInput, options);
  const signal = options.signal;
  signal?.throwIfAborted();
  const scheduler = new SimScheduler();
  // The scheduler yields to the event loop between its steps, so an abort is seen between two steps.
  const step = async (until: number) => {
    await scheduler.run(until);
    signal?.throwIfAborted();
  };
  const seeds = seededRandom(plan.seed);
  const draw = () => Math.floor(seeds() * 2 ** 31);
  const network = new SimNetwork(scheduler, seededRandom(draw()), plan.nodes);
  const workloadRandom = seededRandom(draw());
  const nodeSeed = draw();
  const journal = inMemoryJournal({ clock: scheduler, random: seededRandom(draw()) });
  const history = historyRecorder(() => scheduler.now());
  const journalFaults: JournalFaults = { outage: false, latencyMs: 0, connections: 0 };
  const modelFault: ModelFaultState = { current: undefined };
  let crashed = 0;
  const nodes = new Map<string, SimNode>();
  const pickRandom = seededRandom(draw());
  let stopped = false;

  const ctx: SimContext = {
    plan,
    random: workloadRandom,
    clock: scheduler,
    history,
    journal,
    get stopped() {
      return stopped;
    },
    pickNode() {
      const live = plan.nodes.filter((name) => {
        const n = nodes.get(name)!;
        return n.system !== undefined && n.clock.state === 'running';
      });
      if (live.length === 0) return undefined;
      return nodes.get(live[Math.floor(pickRandom() * live.length)]!)!.system;
    },
    modelFault,
    sleep: (ms) => sleep(ms, { clock: scheduler }),
    within: (work, ms) => within(scheduler, work, ms),
  };

  const boot = async (n: SimNode) => {
    n.incarnation++;
    n.clock = scheduler.nodeClock(n.name);
    const clock = n.clock;
    const view = simJournal(
      journal,
      n.name,
      clock,
      journalFaults,
      (e) => history.logged(e),
      () => scheduler.now(),
    );
    const system = await createNode({
      name: 'sim',
      node: n.name,
      transport: network.transport(n.name, clock),
      kinds: options.workload.kinds(view, ctx),
      clock,
      random: seededRandom(nodeSeed ^ hash(`${n.name}#${n.incarnation}`)),
      timeSlices: 'clock',
      heartbeatMs: options.heartbeatMs ?? 500,
      deadLetterLog: () => {},
      devChecks: false,
    });
    options.workload.boot?.(system, view, ctx);
    if (clock.state === 'running') n.system = system;
  };

  /** Waits for `work`, moving simulated time while it needs timers. */
  const drive = async <T>(work: Promise<T>): Promise<T> => {
    let done = false;
    const settled = work.finally(() => {
      done = true;
    });
    settled.catch(() => {});
    while (!done) await step(scheduler.now() + 10);
    return settled;
  };
  for (const name of plan.nodes) {
    const n: SimNode = { name, clock: scheduler.nodeClock(name), system: undefined, incarnation: 0 };
    nodes.set(name, n);
    await drive(boot(n));
  }

  const kill = (n: SimNode) => {
    n.clock.kill();
    network.detach(n.name);
    n.system = undefined;
  };

  const apply = (fault: Fault): (() => void) | undefined => {
    switch (fault.kind) {
      case 'crash-node': {
        const n = nodes.get(fault.node)!;
        kill(n);
        if (fault.durationMs === undefined) return undefined;
        // A node that cannot start (the cluster store unreachable) is started again a second later,
        // as a process manager would.
        const restart = () => {
          boot(n).catch(() => {
            n.clock.kill();
            network.detach(n.name);
            scheduler.setTimeout(restart, 1000);
          });
        };
        return restart;
      }
      case 'pause-node': {
        const n = nodes.get(fault.node)!;
        const clock = n.clock;
        clock.pause();
        return () => {
          clock.resume();
          network.resume(n.name);
        };
      }
      case 'partition': {
        const rule = { sides: fault.sides, oneWay: fault.oneWay };
        network.partitions.add(rule);
        return () => network.partitions.delete(rule);
      }
      case 'network': {
        const link = {
          from: fault.from === undefined ? undefined : new Set(fault.from),
          to: fault.to === undefined ? undefined : new Set(fault.to),
          delayMs: fault.delayMs,
          jitterMs: fault.jitterMs,
          drop: fault.drop,
          duplicate: fault.duplicate,
          reorder: fault.reorder,
        };
        network.links.add(link);
        return () => network.links.delete(link);
      }
      case 'nats-restart':
        network.natsDown = true;
        return () => {
          network.natsDown = false;
        };
      case 'postgres-restart':
        // The server goes down: calls in flight lose their connection, new ones are refused.
        journalFaults.outage = true;
        journalFaults.connections++;
        return () => {
          journalFaults.outage = false;
        };
      case 'journal':
        if (fault.mode === 'outage') journalFaults.outage = true;
        else journalFaults.latencyMs = fault.latencyMs;
        return () => {
          if (fault.mode === 'outage') journalFaults.outage = false;
          else journalFaults.latencyMs = 0;
        };
      case 'clock-skew': {
        const clock = nodes.get(fault.node)!.clock;
        clock.skewMs += fault.skewMs;
        return () => {
          clock.skewMs -= fault.skewMs;
        };
      }
      case 'model':
        modelFault.current = fault;
        return () => {
          if (modelFault.current === fault) modelFault.current = undefined;
        };
      case 'crash-actor':
        crashActors(fault);
        return undefined;
    }
  };

  /**
   * Crashes, now, every running actor whose address matches the fault's pattern (on its node, or on
   * every node), as if its handler had thrown: its supervisor decides. The node's root and the
   * runtime's own actors (`$` paths) are left alone. Each crash is an `actor-crashed` entry of the
   * log (stream `chaos-nemesis`).
   */
  const crashActors = (fault: Extract<Fault, { kind: 'crash-actor' }>) => {
    const pattern = glob(fault.pattern);
    for (const name of plan.nodes) {
      const n = nodes.get(name)!;
      const system = n.system;
      if (system === undefined || n.clock.state !== 'running') continue;
      if (fault.node !== undefined && fault.node !== name) continue;
      const hits: string[] = [];
      const walk = (t: TreeNode) => {
        if (t.kind !== 'guardian' && !t.address.includes('/$') && pattern.test(t.address))
          hits.push(t.address);
        for (const child of t.children) walk(child);
      };
      walk(system.tree());
      for (const address of hits) {
        const ref = localActor(system, address);
        if (ref === undefined) continue;
        crashActor(ref, new Error(`chaos: crash-actor ${fault.pattern}`));
        crashed++;
        history.logged({
          stream: 'chaos-nemesis',
          version: crashed,
          type: 'actor-crashed',
          data: { address },
          time: scheduler.now(),
          node: name,
        });
      }
    }
  };

  for (const fault of faults) {
    const node = 'node' in fault ? fault.node : undefined;
    const { kind, at: _at, ...value } = fault;
    scheduler.setTimeout(() => {
      history.nemesis('invoke', kind, value, node);
      const undo = apply(fault);
      const end = faultEnd(fault);
      const finish = () => {
        undo?.();
        history.nemesis('ok', kind, value, node);
      };
      if (end > fault.at) scheduler.setTimeout(finish, end - fault.at);
      else finish();
    }, fault.at);
  }

  const clients = Array.from({ length: options.workload.clients }, (_, i) =>
    options.workload.client(ctx, i).catch(() => {}),
  );
  const second = 1000;
  for (let t = second; t < plan.durationMs + second; t += second) {
    await step(Math.min(t, plan.durationMs));
    options.onProgress?.(scheduler.now(), plan.durationMs);
  }
  stopped = true;
  // After the run: every fault is over (crashed nodes come back), clients finish what they started.
  let finished = false;
  const tail = Promise.all(clients)
    .then(() => options.workload.finish?.(ctx))
    .finally(() => {
      finished = true;
    });
  const limit = plan.durationMs + plan.healMs + 60_000;
  while (!finished && scheduler.now() < limit) await step(scheduler.now() + 250);
  // A client whose call hangs past the limit leaves its operation in flight (`info`).
  if (finished) await tail;
  const end = scheduler.now();
  for (const n of nodes.values()) kill(n);
  return {
    ...judged(plan, faults, options, { durationMs: end, ops: history.ops, log: history.log }),
    stats: {
      network: network.stats,
      timers: scheduler.fired,
      wallMs: performance.now() - started,
      simulatedMs: end,
    },
  };
}

/** The run's plan, parsed, and its fault schedule (the options' or the plan's) in time order. */
export function planned(planInput: PlanInput | Plan, options: RunOptions): { plan: Plan; faults: Fault[] } {
  const plan = parsePlan(planInput);
  return { plan, faults: [...(options.faults ?? schedule(plan))].sort((a, b) => a.at - b.at) };
}

/** What a run recorded, as its history, judged by the workload's checkers and the options'. */
export function judged(
  plan: Plan,
  faults: readonly Fault[],
  options: RunOptions,
  recorded: Pick<History, 'durationMs' | 'ops' | 'log'>,
): RunResult {
  const history: History = {
    seed: plan.seed,
    plan: plan.name,
    workload: options.workload.name,
    nodes: plan.nodes,
    ...recorded,
  };
  const verdicts = runCheckers(history, [...options.workload.checkers(plan), ...(options.checkers ?? [])]);
  return { history, verdicts, verdict: worst(verdicts), schedule: faults };
}

/**
 * `work`, or a rejection with `ERR_ASK_TIMEOUT` after `ms` on `clock`: a client's own deadline,
 * which holds even when the node it went through was killed or paused (and then answers late or
 * never). An abort of `signal` rejects at once with its reason: an interrupted run waits for nothing.
 */
export function within<T>(clock: Clock, work: Promise<T>, ms: number, signal?: AbortSignal): Promise<T> {
  return withDeadline(() => work, {
    timeoutMs: ms,
    signal,
    clock,
    timeout: () => new TroupeError('ERR_ASK_TIMEOUT', `no answer within ${ms} ms (client side)`),
  });
}

/** An address pattern: `*` matches any run of characters. */
export function glob(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
}

function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
