/**
 * The contract net: a manager per task (the named actor `@manager/<task>`) announces it to the
 * bidder of every node it sees up (`troupe://<cluster>/<node>/bidder`), ranks the bids and awards
 * the task with the society's `contractNet`. The bidders live on the nodes and die with them; they
 * are crashed and partitioned away. Every bid is recorded in the journal before it is answered, and
 * the award is settled in the journal before it has effects: an awarded bidder claims the task (the
 * first event of `award-<task>`, appended at expected version 0) before it works, and a manager
 * whose round failed abandons the task the same way. So a late award, a slow winner given up for
 * dead, or a manager that crashed and announced the task again never gets the task done twice.
 */
import { z } from 'zod';
import type { Journal } from '../../../memory/index.js';
import { ask, defineProtocol, TroupeError } from '../../../protocols/index.js';
import { type ActorSystem, behavior, sleep } from '../../../runtime/index.js';
import { activationFence } from '../../../runtime/internal.js';
import { ContractorProtocol, contractNet } from '../../../societies/index.js';
import { type Checker, invariant, noDuplicateEffects, singleActivation } from '../checkers/index.js';
import { type History, type LogEntry, type Op, outcome, pairs } from '../history/index.js';
import type { SimContext, Workload } from '../sim/simulate.js';
import { clientLoop } from '../sim/workloads.js';
import { perRun } from './per-run.js';

const settled = z.discriminatedUnion('status', [
  z.object({ status: z.literal('awarded'), winner: z.string(), round: z.string() }),
  z.object({ status: z.literal('failed'), reason: z.string() }),
]);
type Settled = z.infer<typeof settled>;

const Manager = defineProtocol('chaos.contract-net.manager', {
  /** Announces the task (unless it was settled already) and answers how it ended. */
  settle: ask(z.object({ task: z.string() }), settled),
});

/** Options of {@link contractNetWorkload}. */
export interface ContractNetWorkloadOptions {
  /** Concurrent clients, each announcing tasks one after another. Defaults to 3. */
  readonly clients?: number;
  /** Pause between a client's tasks, up to. Defaults to 400 ms. */
  readonly thinkMs?: number;
  /** How likely a bidder is to bid (else it refuses). Defaults to 0.8. */
  readonly bidProbability?: number;
  /** How long bidders have to bid. Defaults to 800 ms. */
  readonly deadlineMs?: number;
  /** How long an awarded bidder has to deliver before the next-best bid gets the task. Defaults to 1200 ms. */
  readonly executeTimeoutMs?: number;
  /** A task's work takes from 200 ms up to this. Defaults to 1600 ms (so some winners are too slow). */
  readonly maxWorkMs?: number;
  /** Every announced task must be settled within this after the faults heal. Defaults to 20,000 ms. */
  readonly livenessMs?: number;
  /**
   * A deliberately broken contract net, for showing that the checkers catch it: `no-claim` bidders
   * work on every award without claiming the task in the journal, and the manager reports what its
   * round said (a slow winner given up for dead and the next-best both do the task); `no-call`
   * managers skip the call for proposals and award the task to their own node's bidder;
   * `forgetful` managers announce the task again each time they are asked, whatever the journal
   * says of it.
   */
  readonly broken?: 'no-claim' | 'no-call' | 'forgetful';
}

/** The first event of `award-<task>`: who got the task, or why nobody did. */
type Decision =
  | { readonly type: 'claimed'; readonly data: { readonly bidder: string; readonly round: string } }
  | { readonly type: 'abandoned'; readonly data: { readonly round: string; readonly reason: string } };

/** The contract-net workload (see the module's description). */
export function contractNetWorkload(options: ContractNetWorkloadOptions = {}): Workload {
  const clients = options.clients ?? 3;
  const thinkMs = options.thinkMs ?? 400;
  const bidProbability = options.bidProbability ?? 0.8;
  const deadlineMs = options.deadlineMs ?? 800;
  const executeTimeoutMs = options.executeTimeoutMs ?? 1200;
  const maxWorkMs = options.maxWorkMs ?? 1600;
  const livenessMs = options.livenessMs ?? 20_000;
  const broken = options.broken;
  // A settle answers within a round: the bids, two awards, and the journal's writes around them.
  const askMs = deadlineMs + 2 * executeTimeoutMs + 2000;
  // The tasks still to settle, per run (a workload may serve several).
  const unsettled = perRun((): string[] => []);

  /** Appends `event` as the first event of `award-<task>`, or reads the one that was first. */
  const decide = async (journal: Journal, task: string, event: Decision): Promise<Decision> => {
    try {
      await journal.append(`award-${task}`, [event], { expectedVersion: 0 });
      return event;
    } catch (error) {
      if (!TroupeError.is(error, 'ERR_JOURNAL_CONFLICT')) throw error;
      return (await readDecision(journal, task))!;
    }
  };

  const bidder = (journal: Journal) =>
    behavior({
      protocols: [ContractorProtocol],
      handlers: {
        propose: async ({ round, task }, ctx) => {
          const id = taskId(task);
          if (ctx.system.random() >= bidProbability) return { bid: false as const, reason: 'no capacity' };
          const cost = 10 + Math.floor(ctx.system.random() * 90);
          const me = ctx.self.address;
          // The bid is in the journal before the manager hears it.
          await journal.append(`bids-${id}`, [{ type: 'bid', data: { task: id, round, bidder: me, cost } }], {
            messageId: `${round}|${me}`,
          });
          return { bid: true as const, cost };
        },
        award: async ({ round, task }, ctx) => {
          const id = taskId(task);
          const me = ctx.self.address;
          if (broken !== 'no-claim') {
            const decision = await decide(journal, id, { type: 'claimed', data: { bidder: me, round } });
            if (decision.type !== 'claimed' || decision.data.bidder !== me)
              return {
                ok: false as const,
                error: {
                  code: 'ERR_ILLEGAL_STATE',
                  message:
                    decision.type === 'claimed'
                      ? `task ${id} went to ${decision.data.bidder} already`
                      : `task ${id} was abandoned: ${decision.data.reason}`,
                },
              };
          }
          const work = 200 + Math.floor(ctx.system.random() * (maxWorkMs - 200));
          await sleep(work, { clock: ctx.system.clock, signal: ctx.signal });
          // The task's effect: once per bidder (a redelivered award is a duplicate here), and the
          // claim makes it once per task.
          await journal.append(
            `done-${ctx.system.node}`,
            [{ type: 'executed', data: { task: id, round, bidder: me } }],
            {
              messageId: id,
            },
          );
          return { ok: true as const, result: { by: me } };
        },
      },
    });

  const manager = (journal: Journal) =>
    behavior({
      protocols: [Manager],
      handlers: {
        settle: async ({ task }, ctx): Promise<Settled> => {
          const fence = activationFence(ctx);
          const stream = `task-${task}`;
          const before = await journal.readStream(stream);
          const ended = before.find((e) => e.type === 'ended');
          if (ended !== undefined && broken !== 'forgetful') return ended.data as Settled;
          let result: Settled;
          const known =
            broken === 'no-claim' || broken === 'forgetful' ? undefined : await readDecision(journal, task);
          if (known !== undefined) result = fromDecision(known);
          else {
            const round = `${task}-r${before.length + 1}`;
            await journal.append(stream, [{ type: 'announced', data: { round } }], { fence });
            const system = ctx.system;
            const round$ =
              broken === 'no-call'
                ? await awardHere(system, task, round, executeTimeoutMs)
                : await contractNet({
                    system,
                    members: () => bidders(system),
                    task: { id: task },
                    round,
                    deadlineMs,
                    executeTimeoutMs,
                    maxAwards: 2,
                  });
            if (broken === 'no-claim')
              result =
                round$.status === 'awarded'
                  ? { status: 'awarded', winner: round$.winner!, round }
                  : { status: 'failed', reason: round$.error?.message ?? 'failed' };
            else {
              const reason = round$.error?.message ?? `round ${round} ended without a claim`;
              result = fromDecision(
                await decide(journal, task, { type: 'abandoned', data: { round, reason } }),
              );
            }
          }
          await journal.append(stream, [{ type: 'ended', data: result }], { fence, messageId: 'ended' });
          return result;
        },
      },
    });

  const settle = async (ctx: SimContext, system: ActorSystem, task: string, process: number, f: string) => {
    const h = ctx.history.invoke(process, f, task, { key: task, node: system.node });
    try {
      const result = await ctx.within(
        system.actorOf('manager', task, Manager).ask('settle', { task }, { timeoutMs: askMs }),
        askMs + 50,
      );
      if (result.status === 'awarded') h.ok({ winner: result.winner, round: result.round });
      else h.fail(result.reason);
      return true;
    } catch (error) {
      h.info(TroupeError.is(error) ? error.code : String(error));
      return false;
    }
  };

  return {
    name: 'contract-net',
    clients,
    origin: { module: import.meta.url, export: 'contractNetWorkload', options },
    kinds(journal) {
      return { manager: { behavior: manager(journal), passivateAfterMs: 600_000 } };
    },
    boot(system, journal) {
      system.spawn(bidder(journal), { name: 'bidder' });
    },
    async client(ctx, process) {
      const pending: string[] = [];
      let n = 0;
      await clientLoop(ctx, thinkMs, async (node) => {
        // A task whose settle did not answer is asked again before a new one is announced.
        const again = pending.shift();
        const task = again ?? `t${process}-${n++}`;
        if (!(await settle(ctx, node, task, process, again === undefined ? 'announce' : 'settle')))
          pending.push(task);
      });
      unsettled(ctx).push(...pending);
    },
    async finish(ctx) {
      for (const task of unsettled(ctx).splice(0)) {
        for (let attempt = 0; attempt < 6; attempt++) {
          const node = ctx.pickNode();
          if (node === undefined) break;
          if (await settle(ctx, node, task, clients, 'settle')) break;
        }
      }
    },
    checkers(): readonly Checker[] {
      return [
        invariant('contract: awarded at most once', awardedOnce),
        noDuplicateEffects({
          effectOf: (e) => (e.type === 'executed' ? `task ${(e.data as { task: string }).task}` : undefined),
        }),
        invariant('contract: awards only to bidders', awardsOnlyToBidders),
        invariant('contract: outcomes agree with the journal', outcomesAgree),
        invariant('contract: every task settled after the heal', settledAfterHeal(livenessMs)),
        invariant('contract: no round after the task was decided', noRoundAfterDecision),
        singleActivation(),
      ];
    },
  };
}

/** The bidders of the nodes `system` counts up, itself included. */
function bidders(system: ActorSystem) {
  return system
    .members()
    .filter((m) => m.state === 'up')
    .map((m) => system.ref(`troupe://${system.name}/${m.node}/bidder`, ContractorProtocol));
}

/** The broken manager's shortcut: the task straight to the bidder of its own node, nobody asked to bid. */
async function awardHere(
  system: ActorSystem,
  task: string,
  round: string,
  timeoutMs: number,
): Promise<{ status: 'awarded' | 'failed'; winner?: string; error?: { message: string } }> {
  const here = system.ref(`troupe://${system.name}/${system.node}/bidder`, ContractorProtocol);
  const done = await here
    .ask('award', { round, task: { id: task }, price: 0 }, { timeoutMs })
    .catch(() => undefined);
  return done?.ok === true
    ? { status: 'awarded', winner: here.address }
    : { status: 'failed', error: { message: 'the bidder here did not deliver' } };
}

function taskId(task: unknown): string {
  return String((task as { id?: unknown } | null)?.id);
}

async function readDecision(journal: Journal, task: string): Promise<Decision | undefined> {
  const [first] = await journal.readStream(`award-${task}`, { limit: 1 });
  return first === undefined ? undefined : ({ type: first.type, data: first.data } as Decision);
}

function fromDecision(d: Decision): Settled {
  return d.type === 'claimed'
    ? { status: 'awarded', winner: d.data.bidder, round: d.data.round }
    : { status: 'failed', reason: d.data.reason };
}

interface TaskFacts {
  readonly bidders: Set<string>;
  readonly entries: LogEntry[];
  readonly ended: Map<string, LogEntry>;
  executed: boolean;
}

/** What the log says of each task: who claimed or did it, and how its managers said it ended. */
function facts(history: History): Map<string, TaskFacts> {
  const out = new Map<string, TaskFacts>();
  const of = (task: string) => {
    let f = out.get(task);
    if (f === undefined) {
      f = { bidders: new Set(), entries: [], ended: new Map(), executed: false };
      out.set(task, f);
    }
    return f;
  };
  for (const e of history.log) {
    const data = e.data as { task?: string; bidder?: string; status?: string; winner?: string };
    if (e.type === 'claimed' && e.stream.startsWith('award-')) {
      const f = of(e.stream.slice('award-'.length));
      f.bidders.add(data.bidder!);
      f.entries.push(e);
    } else if (e.type === 'executed') {
      const f = of(data.task!);
      f.bidders.add(data.bidder!);
      f.entries.push(e);
      f.executed = true;
    } else if (e.type === 'ended' && e.stream.startsWith('task-')) {
      const f = of(e.stream.slice('task-'.length));
      f.ended.set(JSON.stringify(e.data), e);
      if (data.status === 'awarded') f.bidders.add(data.winner!);
    }
  }
  return out;
}

/** No task goes to two bidders (claims, work done, managers' verdicts), nor ends two ways. */
function awardedOnce(history: History) {
  const bad: LogEntry[] = [];
  let first = '';
  for (const [task, f] of facts(history)) {
    if (f.bidders.size > 1 || f.ended.size > 1) {
      bad.push(...f.entries, ...f.ended.values());
      first ||= `task ${task} went to ${[...f.bidders].join(' and ')}${f.ended.size > 1 ? ', and ended two ways' : ''}`;
    }
  }
  return bad.length === 0 ? true : { message: first, entries: bad };
}

/** Every claim and every piece of work is by a bidder whose bid in that round was recorded before. */
function awardsOnlyToBidders(history: History) {
  const bids = new Map<string, number>();
  const bad: LogEntry[] = [];
  for (const e of history.log) {
    const data = e.data as { task?: string; round?: string; bidder?: string };
    const task = e.type === 'claimed' ? e.stream.slice('award-'.length) : data.task;
    const id = `${task}|${data.round}|${data.bidder}`;
    if (e.type === 'bid') bids.set(id, e.time ?? 0);
    else if ((e.type === 'claimed' && e.stream.startsWith('award-')) || e.type === 'executed') {
      if (!bids.has(id)) bad.push(e);
    }
  }
  return bad.length === 0
    ? true
    : {
        message: `${bad.length} award(s) to a bidder with no recorded bid in that round, first: ${JSON.stringify(bad[0]!.data)}`,
        entries: bad,
      };
}

/**
 * What clients were told agrees with the journal: an award names the bidder that claimed (or did)
 * the task; a failed task was never done.
 */
function outcomesAgree(history: History) {
  const all = facts(history);
  const bad: Op[] = [];
  for (const p of pairs(history.ops)) {
    const key = p.invoke.key;
    if (key === undefined || p.complete === undefined) continue;
    const f = all.get(key);
    if (outcome(p) === 'ok') {
      const winner = (p.complete.value as { winner: string }).winner;
      if (f === undefined || !f.bidders.has(winner)) bad.push(p.invoke, p.complete);
    } else if (outcome(p) === 'fail' && f?.executed === true) bad.push(p.invoke, p.complete);
  }
  return bad.length === 0
    ? true
    : { message: `${bad.length / 2} outcome(s) told to clients that the journal contradicts`, ops: bad };
}

/**
 * A manager that resumes (its host died, it was crashed) resumes from the journal: once the task's
 * award is decided, no manager announces it again.
 */
function noRoundAfterDecision(history: History) {
  const decided = new Map<string, number>();
  const bad: LogEntry[] = [];
  for (const e of history.log) {
    if (e.stream.startsWith('award-') && e.version === 1)
      decided.set(e.stream.slice('award-'.length), e.time ?? 0);
    else if (e.type === 'announced' && e.stream.startsWith('task-')) {
      const at = decided.get(e.stream.slice('task-'.length));
      if (at !== undefined) bad.push(e);
    }
  }
  return bad.length === 0
    ? true
    : {
        message: `${bad.length} round(s) announced after their task was decided, first ${bad[0]!.stream}`,
        entries: bad,
      };
}

/**
 * Liveness: every announced task ends, awarded or failed with a reason; one not settled before the
 * faults healed is settled within `withinMs` of the heal.
 */
function settledAfterHeal(withinMs: number) {
  return (history: History) => {
    let heal = 0;
    for (const op of history.ops)
      if (op.process === 'nemesis' && op.type === 'ok') heal = Math.max(heal, op.time);
    const byTask = new Map<string, { invoke: Op; done: Op | undefined }>();
    for (const p of pairs(history.ops)) {
      const key = p.invoke.key;
      if (key === undefined) continue;
      const entry = byTask.get(key) ?? { invoke: p.invoke, done: undefined };
      const o = outcome(p);
      if (entry.done === undefined && (o === 'ok' || o === 'fail')) entry.done = p.complete;
      byTask.set(key, entry);
    }
    const bad: Op[] = [];
    for (const { invoke, done } of byTask.values()) {
      if (done === undefined) bad.push(invoke);
      else if (done.type === 'fail' && (done.error ?? '') === '') bad.push(invoke, done);
      else if (done.time > Math.max(heal, invoke.time) + withinMs) bad.push(invoke, done);
    }
    return bad.length === 0
      ? true
      : {
          message: `${bad.filter((op) => op.type === 'invoke').length} of ${byTask.size} task(s) not settled within ${withinMs} ms of the heal at ${heal} ms`,
          ops: bad,
        };
  };
}
