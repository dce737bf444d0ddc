/**
 * The bank: accounts are named persistent actors (`@account/<id>`), transfers are sagas (debit,
 * then credit; a failed credit puts the money back) run by the workflow engine on whichever node
 * placement picks. Under every fault the total is constant (counting money in flight in sagas not
 * yet ended), every saga is all or nothing, no step completes twice and no effect applies twice.
 */
import { z } from 'zod';
import { persistentBehavior } from '../../../memory/index.js';
import { ask, defineProtocol, TroupeError } from '../../../protocols/index.js';
import { type ActorSystem, sleep } from '../../../runtime/index.js';
import { askStep, saga, workflowEngine } from '../../../societies/index.js';
import {
  type Checker,
  invariant,
  noDuplicateEffects,
  sagaAtomicity,
  singleActivation,
  workflowStepsOnce,
} from '../checkers/index.js';
import type { History } from '../history/index.js';
import type { SimContext, Workload } from '../sim/simulate.js';
import { clientLoop } from '../sim/workloads.js';
import { perRun } from './per-run.js';

const Account = defineProtocol('chaos.bank.account', {
  withdraw: ask(z.object({ amount: z.number().int().positive(), commandId: z.string() }), z.boolean()),
  deposit: ask(z.object({ amount: z.number().int().positive(), commandId: z.string() }), z.boolean()),
  balance: ask(z.object({}), z.number()),
});

/** Every account opens with this much. */
const OPENING = 100;

interface TransferInput {
  readonly from: string;
  readonly to: string;
  readonly amount: number;
}

/** Options of {@link bankWorkload}. */
export interface BankWorkloadOptions {
  /** Accounts. Defaults to 5. */
  readonly accounts?: number;
  /** Concurrent clients. Defaults to 4. */
  readonly clients?: number;
  /** Pause between a client's transfers, up to. Defaults to 400 ms. */
  readonly thinkMs?: number;
  /**
   * Account `a<accounts-1>` refuses deposits, so transfers to it fail at the credit and must be
   * compensated. Defaults to true.
   */
  readonly frozenAccount?: boolean;
  /** A deliberately broken saga whose debit's compensation does nothing (money vanishes). */
  readonly broken?: 'no-compensation';
}

/** The bank workload (see the module's description). */
export function bankWorkload(options: BankWorkloadOptions = {}): Workload {
  const accounts = options.accounts ?? 5;
  const clients = options.clients ?? 4;
  const thinkMs = options.thinkMs ?? 400;
  const frozen = options.frozenAccount === false ? undefined : `a${accounts - 1}`;
  const accountOf = (system: ActorSystem, id: string) => system.actorOf('account', id, Account);
  const transfer = saga<TransferInput>({
    name: 'transfer',
    input: z.object({ from: z.string(), to: z.string(), amount: z.number().int().positive() }),
    compensation: { attempts: 20 },
    steps: [
      {
        name: 'debit',
        // A debit whose reply was lost must be asked again until it answers: failing it would leave
        // the money withdrawn with nothing to compensate (a failed step is not compensated).
        retry: { attempts: 12, backoff: { baseMs: 100, maxMs: 2000, jitter: 0.2 } },
        timeoutMs: 3000,
        run: async (ctx) => {
          const done = await askStep<TransferInput>(
            (c) => accountOf(c.system, ctx.input.from),
            'withdraw',
            (c) => ({ amount: c.input.amount, commandId: c.idempotencyKey }),
            { timeoutMs: 1000 },
          )(ctx);
          if (done !== true) throw new TroupeError('ERR_ILLEGAL_STATE', 'insufficient funds');
          return true;
        },
        compensate: async (ctx) => {
          if (options.broken === 'no-compensation') return undefined;
          await accountOf(ctx.system, ctx.input.from).ask(
            'deposit',
            { amount: ctx.input.amount, commandId: ctx.idempotencyKey },
            { timeoutMs: 1000, signal: ctx.signal },
          );
          return undefined;
        },
      },
      {
        name: 'credit',
        retry: { attempts: 12, backoff: { baseMs: 100, maxMs: 2000, jitter: 0.2 } },
        timeoutMs: 3000,
        run: async (ctx) => {
          const done = await accountOf(ctx.system, ctx.input.to).ask(
            'deposit',
            { amount: ctx.input.amount, commandId: ctx.idempotencyKey },
            { timeoutMs: 1000, signal: ctx.signal },
          );
          if (done !== true) throw new TroupeError('ERR_ILLEGAL_STATE', 'the account refuses deposits');
          return true;
        },
      },
    ],
  });
  // The client side of one run: its engine on the run's journal, and the sagas its clients started.
  const clientSide = perRun((ctx) => ({
    engine: workflowEngine({ journal: ctx.journal, workflows: [transfer] }),
    started: [] as string[],
  }));
  return {
    name: 'bank',
    clients,
    origin: { module: import.meta.url, export: 'bankWorkload', options },
    kinds(journal) {
      const account = persistentBehavior({
        protocols: [Account],
        journal,
        persistenceId: ({ name }) => `account-${name}`,
        // `applied`: the command ids that moved money, so a redelivered command (its reply was lost)
        // answers what it answered the first time instead of judging the balance again.
        initialState: () => ({ balance: OPENING, applied: {} as Record<string, true> }),
        events: {
          withdrawn: z.object({ amount: z.number(), commandId: z.string() }),
          deposited: z.object({ amount: z.number(), commandId: z.string() }),
        },
        apply: {
          withdrawn: (s, { amount, commandId }) => ({
            balance: s.balance - amount,
            applied: { ...s.applied, [commandId]: true as const },
          }),
          deposited: (s, { amount, commandId }) => ({
            balance: s.balance + amount,
            applied: { ...s.applied, [commandId]: true as const },
          }),
        },
        commands: {
          withdraw: ({ amount, commandId }, ctx) => {
            if (ctx.state.applied[commandId] === true) return { reply: () => true };
            return ctx.state.balance >= amount
              ? { events: [{ type: 'withdrawn' as const, data: { amount, commandId } }], reply: () => true }
              : { reply: () => false };
          },
          deposit: ({ amount, commandId }, ctx) => {
            if (ctx.state.applied[commandId] === true) return { reply: () => true };
            return ctx.self.address.endsWith(`/${frozen}`)
              ? { reply: () => false }
              : { events: [{ type: 'deposited' as const, data: { amount, commandId } }], reply: () => true };
          },
          balance: () => ({ reply: (s) => s.balance }),
        },
      });
      const engine = workflowEngine({ journal, workflows: [transfer], passivateAfterMs: 600_000 });
      return { account: { behavior: account, passivateAfterMs: 600_000 }, [engine.kindName]: engine.kind };
    },
    async client(ctx: SimContext, process: number) {
      const { engine, started } = clientSide(ctx);
      let n = 0;
      await clientLoop(ctx, thinkMs, async (node) => {
        const from = `a${Math.floor(ctx.random() * accounts)}`;
        let to = `a${Math.floor(ctx.random() * accounts)}`;
        if (to === from) to = `a${(Number(from.slice(1)) + 1) % accounts}`;
        const amount = 1 + Math.floor(ctx.random() * 30);
        const id = `t${process}-${n++}`;
        const h = ctx.history.invoke(
          process,
          'transfer',
          { id, from, to, amount },
          { key: id, node: node.node },
        );
        try {
          const handle = await ctx.within(
            engine.start(node, transfer, id, { from, to, amount }, { askTimeoutMs: 1000 }),
            1500,
          );
          started.push(id);
          const controller = new AbortController();
          const outcome = await ctx
            .within(handle.result({ signal: controller.signal, askTimeoutMs: 1000 }), 40_000)
            .finally(() => controller.abort());
          if (outcome.ok) h.ok(true);
          else h.fail(outcome.error.message);
        } catch (error) {
          h.info(TroupeError.is(error) ? error.code : String(error));
        }
      });
    },
    async finish(ctx) {
      // Wait for every saga started to end (they resume on a survivor), asking through a node
      // that runs now, within a bound.
      const { engine, started } = clientSide(ctx);
      for (const id of started) {
        const node = ctx.pickNode();
        if (node === undefined) break;
        const handle = engine.handle(node, id);
        const controller = new AbortController();
        await ctx
          .within(handle.result({ signal: controller.signal, askTimeoutMs: 1000 }), 30_000)
          .catch(() => {})
          .finally(() => controller.abort());
      }
      await sleep(0, { clock: ctx.clock });
    },
    checkers(): readonly Checker[] {
      return [
        invariant('bank total constant', totalConstant(accounts)),
        sagaAtomicity(),
        workflowStepsOnce(),
        noDuplicateEffects(),
        singleActivation(),
      ];
    },
  };
}

/** The total of every balance, plus what is in flight in sagas not ended, equals what was opened. */
function totalConstant(accounts: number) {
  return (history: History) => {
    let delta = 0;
    const debited = new Map<string, number>();
    const settled = new Set<string>();
    const amounts = new Map<string, number>();
    for (const e of history.log) {
      const data = e.data as { amount?: number; step?: string; input?: TransferInput };
      if (e.stream.startsWith('account-')) {
        if (e.type === 'withdrawn') delta -= data.amount!;
        if (e.type === 'deposited') delta += data.amount!;
      } else if (e.type === 'workflow-started') amounts.set(e.stream, data.input?.amount ?? 0);
      else if (e.type === 'step-completed' && data.step === 'debit')
        debited.set(e.stream, amounts.get(e.stream) ?? 0);
      else if (
        (e.type === 'step-completed' && data.step === 'credit') ||
        (e.type === 'step-compensated' && data.step === 'debit')
      )
        settled.add(e.stream);
      else if (e.type === 'workflow-failed' || e.type === 'workflow-completed') settled.add(e.stream);
    }
    let inFlight = 0;
    for (const [stream, amount] of debited) if (!settled.has(stream)) inFlight += amount;
    const total = accounts * OPENING + delta;
    return total + inFlight === accounts * OPENING
      ? true
      : `total ${total} + ${inFlight} in flight != ${accounts * OPENING} opened`;
  };
}
