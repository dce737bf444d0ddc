/**
 * One node of a run on real processes: the program each node process runs. It starts a cluster
 * node the way `troupe node` does (`startClusterNode`: the Postgres journal, the NATS transport,
 * membership), hosting the kinds of the workload named by its environment (see `wire.ts`), and
 * adds what the runner drives it with: a gateway on NATS through which the runner's clients call
 * named actors, and commands on stdin (crash an actor, crash the process, journal faults, a skewed
 * wall clock, model faults).
 * Every event it appends carries its node, fencing token and time, for the checkers.
 */
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import type { Journal } from '../../../memory/index.js';
import { TroupeError } from '../../../protocols/index.js';
import { type Clock, realClock, seededRandom, sleep } from '../../../runtime/index.js';
import { defineNodeConfig, resolveNodeConfig } from '../../node/config.js';
import { startClusterNode } from '../../node/start.js';
import { historyRecorder } from '../history/index.js';
import { parsePlan } from '../plan/index.js';
import { journalView } from '../sim/journal.js';
import {
  glob,
  type ModelFaultState,
  type SimContext,
  type Workload,
  type WorkloadOrigin,
} from '../sim/simulate.js';
import {
  type ControlCommand,
  type GatewayReply,
  type GatewayRequest,
  gatewaySubject,
  LOG,
  META,
  NODE_ENV,
  READY,
} from './wire.js';

const env = process.env;
const need = (name: string): string => {
  const value = env[name];
  if (value === undefined || value === '') throw new Error(`chaos node: ${name} is not set`);
  return value;
};
const cluster = need(NODE_ENV.cluster);
const node = need(NODE_ENV.node);
const servers = need(NODE_ENV.nats).split(',');
const origin = JSON.parse(need(NODE_ENV.workload)) as WorkloadOrigin;

const imported = (await import(
  /^[a-z]+:/.test(origin.module) ? origin.module : pathToFileURL(origin.module).href
)) as Record<string, unknown>;
const exported = imported[origin.export];
const workload = (typeof exported === 'function' ? exported(origin.options) : exported) as Workload;
if (typeof workload?.kinds !== 'function')
  throw new Error(`chaos node: ${origin.module} export ${origin.export} is not a workload`);

const plan = parsePlan(need(NODE_ENV.plan));

/**
 * The node's clock: the real one, with a wall clock the runner can skew (`clock-skew`). Monotonic
 * time, and so every timer, is left alone: a skewed host's clock is a wrong time of day, not a fast
 * or slow second.
 */
let skewMs = 0;
const nodeClock: Clock = { ...realClock, wallNow: () => realClock.wallNow() + skewMs };
/** The run's start on the host's clock (the runner says, `epoch`); until then, this process's. */
let epoch = realClock.wallNow();
/** The harness's time, as the runner counts it: ms since the run started, on the host's clock. */
const runClock: Clock = { ...realClock, now: () => realClock.wallNow() - epoch };
/** The model fault in force, for the workload's scripted model (the runner says, `model`). */
const modelFault: ModelFaultState = { current: undefined };

/**
 * What the workload's node-side code sees of the run: the plan, the run's time, the model fault in
 * force, and a history whose log entries go to the runner (on stdout); other operations a node
 * records stay in the node (the runner's clients keep the history).
 */
function nodeContext(journal: Journal): SimContext {
  const history = historyRecorder(() => runClock.now());
  history.logged = (entry) => {
    process.stdout.write(`${LOG} ${JSON.stringify(entry)}\n`);
  };
  return {
    plan,
    random: seededRandom(plan.seed),
    clock: runClock,
    history,
    journal,
    stopped: false,
    pickNode: () => undefined,
    modelFault,
    sleep: (ms) => sleep(ms),
    within: (work) => work,
  };
}

const journalFaults = { outage: false, latencyMs: 0 };
const crashes: RegExp[] = [];

/** The node's journal with the faults in force and the checkers' metadata on every append. */
function chaosJournal(journal: Journal): Journal {
  const gate = async <T>(call: () => Promise<T>): Promise<T> => {
    if (journalFaults.latencyMs > 0) await sleep(journalFaults.latencyMs);
    if (journalFaults.outage)
      throw new TroupeError(
        'ERR_JOURNAL_UNAVAILABLE',
        `the journal is unreachable (chaos outage), seen from ${node}`,
      );
    return call();
  };
  return journalView(journal, {
    gate,
    append: (stream, events, options) =>
      journal.append(
        stream,
        events.map((event) => ({
          ...event,
          metadata: {
            ...event.metadata,
            [META.node]: node,
            [META.time]: realClock.wallNow(),
            ...(options?.fence === undefined ? {} : { [META.fence]: options.fence }),
          },
        })),
        options,
      ),
    closes: true,
  });
}

/** The node's one view of its journal, and the one context its workload sees. */
let shared: { view: Journal; ctx: SimContext } | undefined;
function forJournal(journal: Journal): { view: Journal; ctx: SimContext } {
  if (shared === undefined) {
    const view = chaosJournal(journal);
    shared = { view, ctx: nodeContext(view) };
  }
  return shared;
}

const config = resolveNodeConfig(
  defineNodeConfig({
    cluster,
    node,
    nats: { servers },
    journal: need(NODE_ENV.journal),
    logLevel: (env[NODE_ENV.logLevel] ?? 'warn') as 'warn',
    heartbeatMs: Number(env[NODE_ENV.heartbeatMs] ?? 250),
    downAfterMissed: Number(env[NODE_ENV.downAfterMissed] ?? 3),
    kinds: ({ journal }) => {
      const { view, ctx } = forJournal(journal!);
      return workload.kinds(view, ctx);
    },
    setup: (system, { journal }) => {
      const { view, ctx } = forJournal(journal!);
      workload.boot?.(system, view, ctx);
      system.use({
        name: 'chaos.crash-actor',
        receive(message, next) {
          const i = crashes.findIndex((pattern) => pattern.test(message.to));
          if (i === -1) return next();
          crashes.splice(i, 1);
          throw new Error(`chaos: crash-actor ${message.to}`);
        },
      });
    },
  }),
  {},
);
// Logs go to stderr: stdout carries the ready line only.
const log = pino({ level: config.logLevel, base: { cluster, node } }, pino.destination(2));
const started = await startClusterNode(config, { log, clock: nodeClock });
const system = started.system;

const nc = await connect({
  servers,
  name: `troupe-chaos gateway ${cluster}/${node}`,
  maxReconnectAttempts: -1,
  reconnectTimeWait: 250,
});
const encoder = new TextEncoder();
const failure = (error: unknown): GatewayReply => ({
  ok: false,
  code: TroupeError.is(error) ? error.code : 'ERR_REMOTE',
  message: error instanceof Error ? error.message : String(error),
});
nc.subscribe(gatewaySubject(cluster, node), {
  callback: (error, msg) => {
    if (error !== null) return;
    const answer = async (): Promise<GatewayReply> => {
      const request = msg.json<GatewayRequest>();
      switch (request.op) {
        case 'ask':
          return {
            ok: true,
            value: await system
              .actorOf(request.kind, request.key)
              .ask(request.type, request.body, { timeoutMs: request.timeoutMs }),
          };
        case 'tell':
          system.actorOf(request.kind, request.key).tell(request.type, request.body);
          return { ok: true };
        case 'ask-at':
          return {
            ok: true,
            value: await system
              .ref(request.address)
              .ask(request.type, request.body, { timeoutMs: request.timeoutMs }),
          };
        case 'tell-at':
          system.ref(request.address).tell(request.type, request.body);
          return { ok: true };
        case 'clock':
          return { ok: true, value: system.clock.wallNow() };
        case 'members':
          return {
            ok: true,
            value: system
              .members()
              .filter((m) => m.state === 'up')
              .map((m) => m.node),
          };
      }
    };
    answer().then(
      (reply) => msg.respond(encoder.encode(JSON.stringify(reply))),
      (e: unknown) => msg.respond(encoder.encode(JSON.stringify(failure(e)))),
    );
  },
});

createInterface({ input: process.stdin }).on('line', (line) => {
  let command: ControlCommand;
  try {
    command = JSON.parse(line) as ControlCommand;
  } catch {
    return;
  }
  switch (command.cmd) {
    case 'crash-actor':
      crashes.push(glob(command.pattern));
      return;
    case 'crash':
      // An uncaught error ends the process as a bug would: no drain, no hand-over.
      setImmediate(() => {
        throw new Error(`chaos: node ${node} crashes`);
      });
      return;
    case 'journal':
      journalFaults.outage = command.outage;
      journalFaults.latencyMs = command.latencyMs;
      return;
    case 'clock':
      skewMs = command.skewMs;
      return;
    case 'model':
      modelFault.current = command.fault ?? undefined;
      return;
    case 'epoch':
      epoch = command.wallMs;
      return;
  }
});
// The runner ends the process with a signal; a closed stdin (the runner died) ends it too.
process.stdin.on('end', () => process.exit(0));
process.stdout.write(`${READY} ${process.pid}\n`);
