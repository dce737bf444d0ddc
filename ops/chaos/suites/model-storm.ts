/**
 * Agents under model storms: agents on every node (journal-backed conversations, budgets of tokens
 * and cost) call one provider through each node's guarded port (breaker, retries honouring
 * `Retry-After`, a deadline per attempt). The provider is scripted: during a `model` fault it
 * answers 429 with `Retry-After`, 500, hangs past the deadline, sends a malformed body or streams
 * slowly, as the fault says. Nodes are killed and partitioned meanwhile. Checked: the breakers open
 * during a storm, the budgets hold, no run is lost (every run ends answered or failed with a typed
 * error; one cut off by a crash is run again and ends), and retries wait as long as `Retry-After`
 * asked.
 *
 * The budgets are the cluster's, as a budget service would keep them: an agent's spend outlives its
 * node. Each answer the provider gives is journalled first (stream `spend-<node>-<i>`), and a node
 * that boots with a book that does not know its agents yet (a node process started again, in a run
 * on real processes) charges it what they spent before its agents take any call.
 */
import {
  AgentProtocol,
  agent,
  guardedModel,
  type ModelPort,
  type ModelRequest,
  type ModelResponse,
  type UsageLedger,
  usageLedger,
} from '../../../agents/index.js';
import { type Journal, type StoredEvent, streamPages } from '../../../memory/index.js';
import { TroupeError } from '../../../protocols/index.js';
import { type ActorSystem, exponential, retrying, sleep } from '../../../runtime/index.js';
import { type Budgets, createBudgets } from '../../../supervisors/index.js';
import { type Checker, invariant } from '../checkers/index.js';
import { faultWindows, type History, type LogEntry, type Op, outcome, pairs } from '../history/index.js';
import type { SimContext, Workload } from '../sim/simulate.js';
import { perRun } from './per-run.js';

/** The scripted provider's name, priced by the usage ledger. */
const MODEL = 'sim:model';
/** Its price, for cost budgets: $ per million tokens. */
const PRICE = { inputPerMillion: 3, outputPerMillion: 15 };

/** Options of {@link modelStormWorkload}. */
export interface ModelStormWorkloadOptions {
  /** Concurrent clients, each running one agent run after another. Defaults to 10. */
  readonly clients?: number;
  /** Agents per node. Defaults to 2. */
  readonly agentsPerNode?: number;
  /** Pause between a client's runs, up to. Defaults to 100 ms. */
  readonly thinkMs?: number;
  /**
   * The budget of tokens of each node's first agent over the run; the second has four times as
   * much, and so on (so some agents run out and others keep calling). Defaults to 2000.
   */
  readonly tokenBudget?: number;
  /** The budget of cost of each node's first agent, in US dollars, scaled the same. Defaults to $0.02. */
  readonly costBudgetUsd?: number;
  /** Deadline of each model attempt. Defaults to 2000 ms. */
  readonly attemptTimeoutMs?: number;
  /** The breaker of each node's port: calls in its window before it may open. Defaults to 3. */
  readonly volumeThreshold?: number;
  /** The breaker's window (short: storms last seconds). Defaults to 2000 ms. */
  readonly windowMs?: number;
  /**
   * A deliberately broken setup, for showing that the checkers catch it: `no-breaker` guards
   * without a breaker; `no-budget` agents without budgets; `ignore-retry-after` a port that drops
   * the provider's `Retry-After`, so retries come too early.
   */
  readonly broken?: 'no-breaker' | 'no-budget' | 'ignore-retry-after';
}

/** The model-storm workload (see the module's description). */
export function modelStormWorkload(options: ModelStormWorkloadOptions = {}): Workload {
  const clients = options.clients ?? 10;
  const perNode = options.agentsPerNode ?? 2;
  const thinkMs = options.thinkMs ?? 100;
  const tokenBudget = options.tokenBudget ?? 2000;
  const costBudgetUsd = options.costBudgetUsd ?? 0.02;
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 2000;
  const volumeThreshold = options.volumeThreshold ?? 3;
  const windowMs = options.windowMs ?? 2000;
  const broken = options.broken;
  const askMs = 6000;
  const limitsOf = (i: number) => {
    const scale = 1 + 3 * i;
    return { tokens: tokenBudget * scale, costUsd: costBudgetUsd * scale };
  };
  // What one simulated run shares between its nodes (a workload may serve several runs): one book
  // of budgets for the cluster, as a budget service would keep (an agent's spend outlives its
  // node), the usage ledger, and the runs still to settle.
  const stateOf = perRun(
    (): RunState => ({
      budgets: createBudgets(),
      ledger: usageLedger({ prices: { [MODEL]: PRICE } }),
      known: new Set(),
      logged: 0,
      unsettled: [],
    }),
  );

  const provider = (system: ActorSystem, journal: Journal, ctx: SimContext): ModelPort => ({
    name: MODEL,
    async complete(request: ModelRequest, call): Promise<ModelResponse> {
      const started = ctx.clock.now();
      const who = request.system ?? '?';
      const key = `${who}|${request.messages.length}|${lastUser(request)}`;
      const log = (data: Record<string, unknown>) =>
        ctx.history.logged({
          stream: `model-${system.node}`,
          version: ++stateOf(ctx).logged,
          type: 'model-call',
          data: { agent: who, key, started, ...data },
          time: ctx.clock.now(),
          node: system.node,
        });
      const clock = system.clock;
      const signal = call?.signal;
      const fault = ctx.modelFault.current;
      const hit = fault !== undefined && system.random() < fault.probability;
      const waitOr = async (ms: number) => {
        try {
          await sleep(ms, { clock, ...(signal === undefined ? {} : { signal }) });
        } catch (error) {
          // The attempt's deadline (the breaker counts it), or the caller gave up (it does not).
          log({ outcome: TroupeError.is(error, 'ERR_CALL_TIMEOUT') ? 'timeout' : 'cancelled' });
          throw error;
        }
      };
      if (hit && fault.mode === '429') {
        await waitOr(20);
        log({ outcome: '429', retryAfterMs: fault.retryAfterMs });
        throw new TroupeError('ERR_MODEL_HTTP', `${MODEL} answered 429 Too Many Requests`, {
          details: {
            status: 429,
            ...(broken === 'ignore-retry-after' ? {} : { retryAfterMs: fault.retryAfterMs }),
          },
        });
      }
      if (hit && fault.mode === '500') {
        await waitOr(50);
        log({ outcome: '500' });
        throw new TroupeError('ERR_MODEL_HTTP', `${MODEL} answered 500 Internal Server Error`, {
          details: { status: 500 },
        });
      }
      if (hit && fault.mode === 'hang') {
        await waitOr(600_000);
        log({ outcome: 'hang' });
        throw new TroupeError('ERR_MODEL_UNREACHABLE', `${MODEL} never answered`);
      }
      if (hit && fault.mode === 'malformed') {
        await waitOr(50);
        log({ outcome: 'malformed' });
        throw new TroupeError('ERR_MODEL_MALFORMED', `${MODEL} sent a body that is not a completion`);
      }
      // A slow stream takes from half the deadline to twice it.
      const latency =
        hit && fault.mode === 'slow-stream'
          ? Math.floor(attemptTimeoutMs * (0.5 + 1.5 * system.random()))
          : 100 + Math.floor(system.random() * 300);
      await waitOr(latency);
      const inputTokens = Math.ceil(JSON.stringify(request).length / 4);
      const outputTokens = 20 + Math.floor(system.random() * 60);
      const costUsd = (inputTokens * PRICE.inputPerMillion + outputTokens * PRICE.outputPerMillion) / 1e6;
      const spent = { tokens: inputTokens + outputTokens, costUsd };
      try {
        await journal.append(spendStream(who), [{ type: 'spent', data: spent }]);
      } catch (error) {
        // An answer that cannot be metered is not given: the agent never sees it.
        log({ outcome: 'unmetered' });
        throw error;
      }
      log({ outcome: 'ok', ...spent });
      return {
        text: `done: ${lastUser(request)}`,
        toolCalls: [],
        stopReason: 'end',
        usage: { inputTokens, outputTokens },
        model: MODEL,
      };
    },
  });

  /** The stream of what the agent at `address` (`troupe://<cluster>/<node>/agent-<i>`) spent. */
  const spendStream = (address: string) => `spend-${address.split('/').slice(-2).join('-')}`;

  /**
   * Gives the agent at `address` its budgets in the run's book: when the book does not know it yet,
   * charged first with what it spent before (its node started again); retried while the journal
   * cannot be read. Resolves false when the node stopped meanwhile.
   */
  const budgetOf = (system: ActorSystem, journal: Journal, state: RunState, address: string, i: number) =>
    retrying(
      async () => {
        const events: StoredEvent[] = [];
        for await (const page of streamPages(journal, spendStream(address))) events.push(...page);
        if (state.known.has(address)) return true;
        // A scope without limits takes any charge; the limits follow.
        state.budgets.limit(address, {});
        for (const e of events) {
          const spent = e.data as { tokens: number; costUsd: number };
          state.budgets.reserve(address, spent).settle(spent);
        }
        state.budgets.limit(address, limitsOf(i));
        state.known.add(address);
        return true;
      },
      {
        attempts: Number.POSITIVE_INFINITY,
        backoff: exponential({ baseMs: 500, maxMs: 500 }),
        retryable: () => system.status.tag === 'running',
        clock: system.clock,
        random: system.random,
      },
    ).catch(() => false);

  const runOnce = async (ctx: SimContext, run: Run, process: number, f: string) => {
    const node = ctx.pickNode();
    if (node === undefined) return false;
    const address = `troupe://${node.name}/${run.agent}`;
    const h = ctx.history.invoke(process, f, { agent: address }, { key: run.id, node: node.node });
    try {
      const result = await ctx.within(
        node
          .ref(address, AgentProtocol)
          // Each try says which it is: a run asked again is a new request, not a retry of the last.
          .ask('run', { input: `task ${run.id} try ${++run.tries}`, runId: run.id }, { timeoutMs: askMs }),
        askMs + 50,
      );
      if (result.ok) h.ok({ steps: result.steps });
      else h.fail(result.error.code);
      return true;
    } catch (error) {
      h.info(TroupeError.is(error) ? error.code : String(error));
      return false;
    }
  };

  return {
    name: 'model-storm',
    clients,
    origin: { module: import.meta.url, export: 'modelStormWorkload', options },
    kinds() {
      return {};
    },
    boot(system, journal, ctx) {
      const state = stateOf(ctx);
      const { budgets, ledger } = state;
      const events = system.events$.subscribe((e) => {
        if (e.type !== 'breaker-transition') return;
        ctx.history.logged({
          stream: `breaker-${system.node}`,
          version: ++stateOf(ctx).logged,
          type: 'breaker-transition',
          data: { breaker: e.breaker, from: e.from, to: e.to },
          time: ctx.clock.now(),
          node: system.node,
        });
      });
      system.closed().then(() => events.unsubscribe());
      const model = guardedModel(provider(system, journal, ctx), {
        system,
        timeoutMs: attemptTimeoutMs,
        retry: { attempts: 3, backoff: exponential({ baseMs: 200, maxMs: 2000, jitter: true }) },
        breaker:
          broken === 'no-breaker'
            ? false
            : { volumeThreshold, errorThresholdPercentage: 50, resetTimeoutMs: 3000, windowMs },
      });
      const spawn = (i: number, address: string) =>
        system.spawn(
          agent({
            model,
            instructions: address,
            maxTokens: 100,
            maxHistory: 4,
            journal,
            persistenceId: () => `agent-${system.node}-${i}`,
            usage: ledger,
            ...(broken === 'no-budget' ? {} : { budgets }),
          }),
          { name: `agent-${i}` },
        );
      for (let i = 0; i < perNode; i++) {
        const address = `troupe://${system.name}/${system.node}/agent-${i}`;
        // An agent takes calls once its budgets are known (at once when the book knows it).
        if (state.known.has(address)) spawn(i, address);
        else
          void budgetOf(system, journal, state, address, i).then((known) => {
            if (known && system.status.tag === 'running') spawn(i, address);
          });
      }
    },
    async client(ctx, process) {
      const pending: Run[] = [];
      let n = 0;
      let retryTurn = false;
      while (!ctx.stopped) {
        await ctx.sleep(1 + Math.floor(ctx.random() * thinkMs));
        if (ctx.stopped) break;
        // A run whose answer was lost (its agent's node died, a partition) is run again, every other
        // turn: a client whose runs' agent is down for a while keeps calling the others meanwhile.
        retryTurn = !retryTurn;
        const again = retryTurn ? pending.shift() : undefined;
        const nodes = ctx.plan.nodes;
        const run = again ?? {
          id: `r${process}-${n++}`,
          tries: 0,
          agent: `${nodes[Math.floor(ctx.random() * nodes.length)]!}/agent-${Math.floor(ctx.random() * perNode)}`,
        };
        if (!(await runOnce(ctx, run, process, again === undefined ? 'run' : 'rerun'))) pending.push(run);
      }
      stateOf(ctx).unsettled.push(...pending);
    },
    async finish(ctx) {
      for (const run of stateOf(ctx).unsettled.splice(0)) {
        for (let attempt = 0; attempt < 6; attempt++) if (await runOnce(ctx, run, clients, 'rerun')) break;
      }
    },
    checkers(): readonly Checker[] {
      return [
        invariant('agents: breakers open during storms', breakersOpen(volumeThreshold, windowMs)),
        invariant('agents: budgets hold', budgetsHold(tokenBudget, costBudgetUsd)),
        invariant('agents: no run lost', noRunLost),
        invariant('agents: retries honour Retry-After', retriesHonourRetryAfter),
      ];
    },
  };
}

/** A run a client asks for: its id, its agent (`<node>/agent-<i>`), how many times it was asked. */
interface Run {
  readonly id: string;
  readonly agent: string;
  tries: number;
}

interface RunState {
  readonly budgets: Budgets;
  readonly ledger: UsageLedger;
  /** The agents the book has budgets for. */
  readonly known: Set<string>;
  /** Entries this workload added to the history's log. */
  logged: number;
  readonly unsettled: Run[];
}

function lastUser(request: ModelRequest): string {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const m = request.messages[i]!;
    if (m.role === 'user') return m.content;
  }
  return '';
}

interface ModelCall {
  readonly agent: string;
  readonly key: string;
  readonly started: number;
  readonly outcome: string;
  readonly retryAfterMs?: number;
  readonly tokens?: number;
  readonly costUsd?: number;
}

/** Failures that a breaker counts (a hang counts once the attempt's deadline aborted it). */
const COUNTED = new Set(['429', '500', 'hang', 'malformed', 'timeout']);

/**
 * During each storm (a `model` fault that fails every call), a node's breaker opens once its rule
 * is surely met: at a failed call, when the storm's failures on that node surely in the breaker's
 * window reach its volume and outnumber everything else the window may hold (the successes of the
 * window and a bucket more, and the calls in flight), the breaker is open or half-open by then, or
 * opened since the storm began.
 */
function breakersOpen(volumeThreshold: number, windowMs: number) {
  return (history: History) => {
    const bucket = windowMs / 10;
    const calls = history.log.filter((e) => e.type === 'model-call');
    const transitions = history.log.filter((e) => e.type === 'breaker-transition');
    const bad: LogEntry[] = [];
    const messages: string[] = [];
    let storms = 0;
    let judged = 0;
    for (const w of faultWindows(history)) {
      const fault = w.value as { mode?: string; probability?: number };
      if (w.f !== 'model' || fault.mode === 'slow-stream' || (fault.probability ?? 1) < 1) continue;
      storms++;
      const due = new Map<string, LogEntry>();
      for (const e of calls) {
        const t = e.time ?? 0;
        const call = e.data as ModelCall;
        if (call.started < w.start || t > w.end || !COUNTED.has(call.outcome) || due.has(e.node!)) continue;
        // Failures surely in the breaker's window at t (it turns lazily, on calls: a call counts in
        // the bucket of a call that started no earlier than itself), against everything that may be.
        const since = Math.max(w.start, t - windowMs + 2 * bucket);
        let failed = 0;
        let other = 0;
        for (const c of calls) {
          if (c.node !== e.node) continue;
          const { started, outcome: o } = c.data as ModelCall;
          const done = c.time ?? 0;
          if (started > t || done <= t - windowMs - bucket) continue;
          if (done > t) other++;
          else if (started >= since && COUNTED.has(o)) failed++;
          else if (o === 'ok') other++;
        }
        if (failed >= volumeThreshold && failed > other) due.set(e.node!, e);
      }
      for (const [node, e] of due) {
        judged++;
        const t = (e.time ?? 0) + 100;
        const mine = transitions.filter((x) => x.node === node && (x.time ?? 0) <= t);
        const state = (mine.at(-1)?.data as { to?: string } | undefined)?.to ?? 'closed';
        const opened = mine.some((x) => (x.time ?? 0) >= w.start && (x.data as { to: string }).to === 'open');
        if (state === 'closed' && !opened) {
          bad.push(e);
          messages.push(
            `${node}: the ${fault.mode} storm at ${w.start} ms failed enough calls by ${e.time} ms, and no breaker opened`,
          );
        }
      }
    }
    if (bad.length > 0) return { message: messages.join('; '), entries: bad };
    // Storms that gave no breaker enough failures to judge: undecided (the checker's throw is `unknown`).
    if (storms > 0 && judged === 0)
      throw new Error(`none of ${storms} storm(s) failed enough calls on one node to judge its breaker`);
    return true;
  };
}

/** Every agent's spend (calls the provider answered) stays within its budgets of tokens and cost. */
function budgetsHold(tokens: number, costUsd: number) {
  return (history: History) => {
    const spent = new Map<string, { tokens: number; costUsd: number; last: LogEntry }>();
    for (const e of history.log) {
      if (e.type !== 'model-call') continue;
      const call = e.data as ModelCall;
      if (call.outcome !== 'ok') continue;
      const s = spent.get(call.agent) ?? { tokens: 0, costUsd: 0, last: e };
      s.tokens += call.tokens ?? 0;
      s.costUsd += call.costUsd ?? 0;
      s.last = e;
      spent.set(call.agent, s);
    }
    // The agent `agent-<i>` of a node has 1 + 3i times the first one's budgets.
    const scale = (agent: string) => 1 + 3 * Number(/agent-(\d+)$/.exec(agent)?.[1] ?? 0);
    const over = [...spent].filter(
      ([agent, s]) => s.tokens > tokens * scale(agent) || s.costUsd > costUsd * scale(agent) + 1e-12,
    );
    if (over.length === 0) return true;
    const [agent, s] = over[0]!;
    return {
      message: `${over.length} agent(s) over budget, first ${agent}: ${s.tokens} of ${tokens * scale(agent)} tokens, $${s.costUsd.toFixed(5)} of $${costUsd * scale(agent)}`,
      entries: over.map(([, o]) => o.last),
    };
  };
}

/**
 * No run is lost: every run a client started was answered in the end (completed, or failed with a
 * typed `ERR_` code), and in the journal every run an agent began ends with `run-ended` (a run cut
 * off by a crash was run again, and that run ended).
 */
function noRunLost(history: History) {
  const bad: Op[] = [];
  const byRun = new Map<string, { first: Op; answered: boolean }>();
  for (const p of pairs(history.ops)) {
    const key = p.invoke.key;
    if (key === undefined) continue;
    const r = byRun.get(key) ?? { first: p.invoke, answered: false };
    const o = outcome(p);
    if (o === 'ok') r.answered = true;
    else if (o === 'fail') {
      if (/^ERR_[A-Z_]+$/.test(p.complete!.error ?? '')) r.answered = true;
      else bad.push(p.invoke, p.complete!);
    }
    byRun.set(key, r);
  }
  for (const r of byRun.values()) if (!r.answered) bad.push(r.first);
  // In the journal: the last word on each run of each agent is its end.
  const last = new Map<string, LogEntry>();
  for (const e of history.log) {
    if (!e.stream.startsWith('agent-')) continue;
    const data = e.data as { run?: string; message?: { role?: string } };
    if (e.type === 'run-ended' || (e.type === 'message' && data.message?.role === 'user'))
      last.set(`${e.stream}|${data.run}`, e);
  }
  const unended = [...last.values()].filter((e) => e.type !== 'run-ended');
  if (bad.length === 0 && unended.length === 0) return true;
  return {
    message: `${byRun.size} run(s): ${bad.filter((op) => op.type === 'invoke').length} never answered, ${unended.length} begun in the journal and never ended`,
    ops: bad,
    entries: unended,
  };
}

/** After a 429 with `Retry-After`, the same call is not tried again before that long has passed. */
function retriesHonourRetryAfter(history: History) {
  const waiting = new Map<string, { until: number; entry: LogEntry }>();
  const bad: LogEntry[] = [];
  let honoured = 0;
  for (const e of history.log) {
    if (e.type !== 'model-call') continue;
    const call = e.data as ModelCall;
    const id = `${e.node}|${call.key}`;
    const before = waiting.get(id);
    if (before !== undefined) {
      if (call.started < before.until) bad.push(before.entry, e);
      else honoured++;
      waiting.delete(id);
    }
    if (call.outcome === '429')
      waiting.set(id, { until: (e.time ?? 0) + (call.retryAfterMs ?? 0), entry: e });
  }
  if (bad.length === 0) return true;
  return {
    message: `${bad.length / 2} retr(ies) sooner than Retry-After asked (${honoured} waited), first: ${JSON.stringify((bad[1]!.data as ModelCall).key)}`,
    entries: bad,
  };
}
