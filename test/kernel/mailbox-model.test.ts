/**
 * A property test of one actor's mailbox against a reference model: handlers that send to
 * themselves (growing and wrapping the ring buffer while a message is being handled), stash the
 * current message, unstash everything, and switch between sync and async handling. Every message
 * must be handled in the model's order, none lost or duplicated. Replay a failure with FC_SEED=<seed>.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type ActorContext, ask, behavior, defineProtocol, tell } from '../../index.js';
import { settle } from '../../runtime/testkit/index.js';
import { propertySeed, seeded } from '../harness/fast-check.js';
import { closeSystemsAfterEach, makeSystem, within } from './helpers.js';

closeSystemsAfterEach();

const SEED = propertySeed(20261123);
const MAX_IDS = 80;

/** What a handler does, in order, when it handles a message (the first time, for `stash`). */
type Action = { kind: 'send'; count: number } | { kind: 'stash' } | { kind: 'unstash' };
interface Plan {
  /** Actions per message id; ids past the end do nothing. */
  readonly actions: readonly (readonly Action[])[];
  /** Ids whose handler is async (awaits once before acting). */
  readonly async: readonly boolean[];
  readonly initial: number;
}

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant('send' as const), count: fc.integer({ min: 1, max: 6 }) }),
  fc.constant({ kind: 'stash' as const }),
  fc.constant({ kind: 'unstash' as const }),
);
const planArb: fc.Arbitrary<Plan> = fc.record({
  actions: fc.array(fc.array(actionArb, { maxLength: 3 }), { minLength: MAX_IDS, maxLength: MAX_IDS }),
  async: fc.array(fc.boolean(), { minLength: MAX_IDS, maxLength: MAX_IDS }),
  initial: fc.integer({ min: 1, max: 12 }),
});

/** The reference: a FIFO queue, a stash put back in front, one message at a time. */
function model(plan: Plan): string[] {
  const log: string[] = [];
  const queue: number[] = [];
  let stash: number[] = [];
  const seen = new Set<number>();
  let next = 0;
  for (; next < plan.initial; next++) queue.push(next);
  queue.push(-1); // the final flush
  while (queue.length > 0) {
    const id = queue.shift()!;
    if (id === -1) {
      queue.unshift(...stash);
      stash = [];
      log.push('flush');
      continue;
    }
    const again = seen.has(id);
    seen.add(id);
    log.push(again ? `again:${id}` : `first:${id}`);
    if (again) continue;
    for (const action of plan.actions[id] ?? []) {
      if (action.kind === 'send') {
        for (let k = 0; k < action.count && next < MAX_IDS; k++) {
          // Sent to self: lands before the flush (the flush was queued last, but sends go to the tail).
          queue.push(next++);
        }
      } else if (action.kind === 'stash') {
        if (!stash.includes(id)) stash.push(id);
      } else {
        queue.unshift(...stash);
        stash = [];
      }
    }
  }
  return log;
}

const Loop = defineProtocol('mm.loop', {
  step: tell(z.object({ id: z.number() })),
  flush: tell(z.object({})),
  log: ask(z.object({}), z.array(z.string())),
});

interface LoopState {
  readonly log: string[];
  readonly seen: Set<number>;
  /** Ids stashed and not yet unstashed. */
  readonly stashed: Set<number>;
}

async function actual(plan: Plan): Promise<string[]> {
  const { system, dead } = makeSystem();
  let next = plan.initial;
  const act = (id: number, ctx: ActorContext<LoopState, typeof Loop>): void => {
    for (const action of plan.actions[id] ?? []) {
      if (action.kind === 'send') {
        for (let k = 0; k < action.count && next < MAX_IDS; k++) ctx.self.tell('step', { id: next++ });
      } else if (action.kind === 'stash') {
        if (!ctx.state.stashed.has(id)) {
          ctx.state.stashed.add(id);
          ctx.stash();
        }
      } else {
        ctx.state.stashed.clear();
        ctx.unstashAll();
      }
    }
  };
  const ref = system.spawn(
    behavior<typeof Loop, LoopState>({
      protocols: [Loop],
      initialState: () => ({ log: [], seen: new Set(), stashed: new Set() }),
      handlers: {
        step: ({ id }, ctx) => {
          const again = ctx.state.seen.has(id);
          ctx.state.seen.add(id);
          ctx.state.log.push(again ? `again:${id}` : `first:${id}`);
          if (again) return;
          // An async handler acts after an await: stash and unstash then work on the cell's copy.
          if (plan.async[id] === true) return Promise.resolve().then(() => act(id, ctx));
          act(id, ctx);
        },
        flush: (_b, ctx) => {
          ctx.state.stashed.clear();
          ctx.unstashAll();
          ctx.state.log.push('flush');
        },
        log: (_b, ctx) => ctx.state.log,
      },
    }),
    { mailbox: { capacity: 1000 } },
  );
  for (let id = 0; id < plan.initial; id++) ref.tell('step', { id });
  ref.tell('flush', {});
  await within(settle(system), 2000, 'settle');
  const log = await within(ref.ask('log', {}), 2000, 'log');
  expect(dead).toEqual([]);
  return [...log];
}

describe('the mailbox against a reference model', () => {
  it('handles every message once, in order, through self-sends, stash and unstash', async () => {
    await fc.assert(
      fc.asyncProperty(planArb, async (plan) => {
        expect(await actual(plan)).toEqual(model(plan));
      }),
      seeded('mailbox model', SEED, 200),
    );
  }, 60_000);
});
