/**
 * Built-in workloads: registers and counters on named persistent actors, checked for
 * linearizability, single activation, duplicate effects and liveness after the faults heal.
 */
import { z } from 'zod';
import { persistentBehavior } from '../../../memory/index.js';
import { ask, defineProtocol, TroupeError } from '../../../protocols/index.js';
import type { ActorSystem } from '../../../runtime/index.js';
import {
  type Checker,
  counterModel,
  linearizable,
  livenessAfterHeal,
  noDuplicateEffects,
  registerModel,
  singleActivation,
} from '../checkers/index.js';
import type { SimContext, Workload } from './simulate.js';

const Register = defineProtocol('chaos.register', {
  read: ask(z.object({}), z.number().nullable()),
  write: ask(z.object({ value: z.number(), commandId: z.string() }), z.null()),
  cas: ask(
    z.object({ expected: z.number().nullable(), next: z.number(), commandId: z.string() }),
    z.boolean(),
  ),
  add: ask(z.object({ amount: z.number(), commandId: z.string() }), z.number()),
});

/** Options of {@link registerWorkload}. */
export interface RegisterWorkloadOptions {
  /** Concurrent clients. Defaults to 5. */
  readonly clients?: number;
  /** Keys. Defaults to 4. */
  readonly keys?: number;
  /** Pause between a client's operations, up to. Defaults to 200 ms. */
  readonly thinkMs?: number;
  /** Timeout of each operation. Defaults to 1000 ms. */
  readonly timeoutMs?: number;
  /** `register` (read, write, cas) or `counter` (add, read). Defaults to `register`. */
  readonly model?: 'register' | 'counter';
  /**
   * A deliberately broken register, for showing that the checkers catch it: `stale-read` answers
   * reads from a copy refreshed only every fifth read; `ack-before-write` acknowledges writes
   * without persisting them.
   */
  readonly broken?: 'stale-read' | 'ack-before-write';
}

/**
 * A register (or counter) per key, each a named persistent actor (`@register/<key>`) that appends
 * with its lease's fencing token. Clients read, write and compare-and-set through random running
 * nodes; an error or a timeout is `info` (it may have happened), a refused cas is `fail`.
 */
export function registerWorkload(options: RegisterWorkloadOptions = {}): Workload {
  const clients = options.clients ?? 5;
  const keys = options.keys ?? 4;
  const thinkMs = options.thinkMs ?? 200;
  const timeoutMs = options.timeoutMs ?? 1000;
  const model = options.model ?? 'register';
  const broken = options.broken;
  return {
    name: model,
    clients,
    origin: { module: import.meta.url, export: 'registerWorkload', options },
    kinds(journal) {
      // Shared by every activation of the process: what a broken cache would be.
      const stale = new Map<string, number | null>();
      let reads = 0;
      const behavior = persistentBehavior({
        protocols: [Register],
        journal,
        persistenceId: ({ name }) => `register-${name}`,
        initialState: () => ({ value: null as number | null, total: 0 }),
        events: { written: z.object({ value: z.number() }), added: z.object({ amount: z.number() }) },
        apply: {
          written: (s, { value }) => ({ ...s, value }),
          added: (s, { amount }) => ({ ...s, total: s.total + amount }),
        },
        commands: {
          read: (_b, ctx) => {
            if (broken === 'stale-read') {
              const name = ctx.self.address;
              if (!stale.has(name) || ++reads % 5 === 0) stale.set(name, ctx.state.value);
              const value = stale.get(name) ?? null;
              return { reply: (s) => (model === 'counter' ? s.total : value) };
            }
            return { reply: (s) => (model === 'counter' ? s.total : s.value) };
          },
          write: ({ value }) => {
            if (broken === 'ack-before-write') return { reply: () => null };
            return { events: [{ type: 'written' as const, data: { value } }], reply: () => null };
          },
          cas: ({ expected, next }, ctx) =>
            ctx.state.value === expected
              ? { events: [{ type: 'written' as const, data: { value: next } }], reply: () => true }
              : { reply: () => false },
          add: ({ amount }) => ({
            events: [{ type: 'added' as const, data: { amount } }],
            reply: (s) => s.total,
          }),
        },
      });
      return { register: { behavior, passivateAfterMs: 600_000 } };
    },
    async client(ctx: SimContext, process: number) {
      let n = 0;
      await clientLoop(ctx, thinkMs, async (node) => {
        const key = `k${Math.floor(ctx.random() * keys)}`;
        const ref = node.actorOf('register', key, Register);
        const commandId = `c${process}-${n++}`;
        const roll = ctx.random();
        const opts = { timeoutMs };
        if (model === 'counter') {
          if (roll < 0.6) {
            const amount = 1 + Math.floor(ctx.random() * 5);
            const h = ctx.history.invoke(process, 'add', amount, { key, node: node.node });
            await ctx.within(ref.ask('add', { amount, commandId }, opts), timeoutMs + 50).then(
              () => h.ok(),
              (e) => h.info(code(e)),
            );
          } else {
            const h = ctx.history.invoke(process, 'read', null, { key, node: node.node });
            await ctx.within(ref.ask('read', {}, opts), timeoutMs + 50).then(
              (v) => h.ok(v),
              (e) => h.info(code(e)),
            );
          }
        } else if (roll < 0.45) {
          const h = ctx.history.invoke(process, 'read', null, { key, node: node.node });
          await ctx.within(ref.ask('read', {}, opts), timeoutMs + 50).then(
            (v) => h.ok(v),
            (e) => h.info(code(e)),
          );
        } else if (roll < 0.85) {
          const value = process * 100_000 + n;
          const h = ctx.history.invoke(process, 'write', value, { key, node: node.node });
          await ctx.within(ref.ask('write', { value, commandId }, opts), timeoutMs + 50).then(
            () => h.ok(),
            (e) => h.info(code(e)),
          );
        } else {
          const expected = ctx.random() < 0.5 ? null : Math.floor(ctx.random() * (clients * 100_000));
          const next = process * 100_000 + n;
          const h = ctx.history.invoke(process, 'cas', [expected, next], { key, node: node.node });
          await ctx.within(ref.ask('cas', { expected, next, commandId }, opts), timeoutMs + 50).then(
            (swapped) => (swapped ? h.ok() : h.fail('no match')),
            (e) => h.info(code(e)),
          );
        }
      });
    },
    async finish(ctx) {
      // Every key read once more after the heal, for liveness.
      for (let k = 0; k < keys; k++) {
        const key = `k${k}`;
        for (let attempt = 0; attempt < 5; attempt++) {
          const node = ctx.pickNode();
          if (node === undefined) break;
          const h = ctx.history.invoke(clients, 'read', null, { key, node: node.node });
          const ok = await ctx
            .within(node.actorOf('register', key, Register).ask('read', {}, { timeoutMs }), timeoutMs + 50)
            .then(
              (v) => {
                h.ok(v);
                return true;
              },
              (e) => {
                h.info(code(e));
                return false;
              },
            );
          if (ok) break;
        }
      }
    },
    checkers(plan): readonly Checker[] {
      return [
        model === 'counter'
          ? linearizable({ model: counterModel() })
          : linearizable({ model: registerModel(null) }),
        singleActivation(),
        noDuplicateEffects(),
        livenessAfterHeal({ withinMs: plan.healMs }),
      ];
    },
  };
}

/**
 * A client's round of operations until the run stops: each after a pause of up to `thinkMs`,
 * through a running node picked at random (none while no node runs).
 */
export async function clientLoop(
  ctx: SimContext,
  thinkMs: number,
  operate: (node: ActorSystem) => Promise<void>,
): Promise<void> {
  while (!ctx.stopped) {
    await ctx.sleep(1 + Math.floor(ctx.random() * thinkMs));
    if (ctx.stopped) break;
    const node = ctx.pickNode();
    if (node === undefined) continue;
    await operate(node);
  }
}

function code(error: unknown): string {
  return TroupeError.is(error) ? error.code : String((error as Error)?.message ?? error);
}
