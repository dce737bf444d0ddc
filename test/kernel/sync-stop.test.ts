/**
 * The stop and restart paths that finish synchronously when there is nothing to wait for (no handler
 * in flight, no children that must be waited for, no hook that returns a promise) keep the contracts
 * of the paths that wait: a stop resolves only once the actor has stopped, a subtree stops last
 * started first, watchers hear the reason, restarts are counted. A property checks the stop order of
 * random subtrees that mix both kinds of children. Replay a failure with FC_SEED=<seed>.
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { type ActorRef, ask, type Behavior, behavior, defineProtocol, tell } from '../../index.js';
import { settle } from '../../runtime/testkit/index.js';
import { propertySeed, seeded } from '../harness/fast-check.js';
import { closeSystemsAfterEach, makeSystem, rejection, within } from './helpers.js';

closeSystemsAfterEach();

const SEED = propertySeed(20261206);

const Quit = defineProtocol('syncstop.quit', {
  quit: tell(z.object({})),
  spawnThenQuit: tell(z.object({})),
  boom: tell(z.object({})),
  add: tell(z.object({})),
  get: ask(z.object({}), z.number()),
});

const Watch = defineProtocol('syncstop.watch', { watch: tell(z.object({})) });
const Leave = defineProtocol('syncstop.leave', { quit: tell(z.object({})) });

/** An actor without hooks: every stop of it can finish synchronously. */
function quitter(order: string[]) {
  return behavior({
    protocols: [Quit],
    initialState: () => 0,
    handlers: {
      quit: (_b, ctx) => {
        order.push('asked');
        void ctx.stop().then(() => order.push('resolved'));
      },
      spawnThenQuit: (_b, ctx) => {
        ctx.spawn(quitter(order), { name: 'child' });
        order.push('asked');
        void ctx.stop().then(() => order.push('resolved'));
      },
      boom: () => {
        throw new Error('boom');
      },
      add: (_b, ctx) => {
        ctx.state++;
      },
      get: (_b, ctx) => ctx.state,
    },
  });
}

describe('stops and restarts with nothing to wait for', () => {
  it('resolves a stop asked in a handler only once the actor has stopped', async () => {
    const order: string[] = [];
    const { system } = makeSystem();
    system.events$.subscribe((e) => {
      if (e.type === 'actor-stopped') order.push(`stopped ${e.reason}`);
    });
    const ref = system.spawn(quitter(order));
    ref.tell('quit', {});
    await within(settle(system), 1000, 'settle');
    expect(order).toEqual(['asked', 'stopped normal', 'resolved']);
    expect((await rejection(ref.ask('get', {}))).code).toBe('ERR_ACTOR_STOPPED');
  });

  it('stops a child spawned before the stop first, and resolves after both', async () => {
    const order: string[] = [];
    const { system } = makeSystem();
    system.events$.subscribe((e) => {
      if (e.type === 'actor-stopped') order.push(`stopped ${e.address.split('/').pop()} ${e.reason}`);
    });
    const ref = system.spawn(quitter(order), { name: 'parent' });
    ref.tell('spawnThenQuit', {});
    await within(settle(system), 1000, 'settle');
    expect(order).toEqual(['asked', 'stopped child shutdown', 'stopped parent normal', 'resolved']);
    expect(system.tree().children).toEqual([]);
  });

  it('resolves the stop only after a child spawned after it, whose postStop waits, has stopped', async () => {
    const order: string[] = [];
    const { system } = makeSystem();
    system.events$.subscribe((e) => {
      if (e.type === 'actor-stopped') order.push(`stopped ${e.address.split('/').pop()}`);
    });
    const slowChild = behavior({
      protocols: [Watch],
      handlers: { watch: () => {} },
      postStop: async () => {
        await Promise.resolve();
        order.push('child postStop');
      },
    });
    const parent = behavior({
      protocols: [Leave],
      handlers: {
        quit: (_b, ctx) => {
          void ctx.stop().then(() => order.push('resolved'));
          ctx.spawn(slowChild, { name: 'late' });
        },
      },
    });
    system.spawn(parent, { name: 'parent' }).tell('quit', {});
    await within(settle(system), 1000, 'settle');
    await vi.waitFor(() => expect(order).toContain('resolved'));
    expect(order).toEqual(['child postStop', 'stopped late', 'stopped parent', 'resolved']);
  });

  it('tells watchers the normal reason, before and after the actor has stopped', async () => {
    const reasons: string[] = [];
    const { system } = makeSystem({}, false);
    const target = system.spawn(quitter([]));
    const watcher = () =>
      behavior({
        protocols: [Watch],
        handlers: { watch: (_b, ctx) => ctx.watch(target) },
        terminated: (_ref, reason) => {
          reasons.push(reason.kind);
        },
      });
    system.spawn(watcher()).tell('watch', {});
    await within(settle(system), 1000, 'settle');
    target.tell('quit', {});
    await within(settle(system), 1000, 'settle');
    // Watching an actor that has stopped already: it is told at once, with the reason it stopped for.
    system.spawn(watcher()).tell('watch', {});
    await vi.waitFor(() => expect(reasons).toEqual(['normal', 'normal']));
  });

  it('restarts a crashed actor with fresh state and counts each restart', async () => {
    const { system } = makeSystem({}, false);
    const ref = system.spawn(quitter([]));
    for (let i = 0; i < 3; i++) {
      ref.tell('add', {});
      ref.tell('boom', {});
    }
    ref.tell('add', {});
    expect(await within(ref.ask('get', {}), 1000, 'get')).toBe(1);
    expect(system.tree().children[0]?.restarts).toBe(3);
  });
});

/** A subtree: each node's postStop is absent, synchronous or asynchronous. */
interface Plan {
  readonly hook: 'none' | 'sync' | 'async';
  readonly children: readonly Plan[];
}
const planArb: fc.Arbitrary<Plan> = fc.letrec<{ node: Plan }>((tie) => ({
  node: fc.record({
    hook: fc.constantFrom('none' as const, 'sync' as const, 'async' as const),
    children: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constant([]),
      fc.array(tie('node'), { maxLength: 4 }),
    ),
  }),
})).node;

const Build = defineProtocol('syncstop.build', { build: tell(z.object({})) });

/** Every node's name, in the order a stop of the whole subtree must end them: children last started first. */
function stopOrder(plan: Plan, name: string): string[] {
  const out: string[] = [];
  for (let i = plan.children.length - 1; i >= 0; i--)
    out.push(...stopOrder(plan.children[i]!, `${name}-${i}`));
  out.push(name);
  return out;
}

function node(plan: Plan, name: string, log: string[]): Behavior<typeof Build, undefined> {
  const postStop =
    plan.hook === 'none'
      ? undefined
      : plan.hook === 'sync'
        ? () => {
            log.push(`postStop ${name}`);
          }
        : async () => {
            await Promise.resolve();
            log.push(`postStop ${name}`);
          };
  return behavior({
    protocols: [Build],
    handlers: {
      build: (_b, ctx) => {
        plan.children.forEach((child, i) => {
          const childName = `${name}-${i}`;
          ctx.spawn(node(child, childName, log), { name: childName }).tell('build', {});
        });
      },
    },
    ...(postStop === undefined ? {} : { postStop }),
  });
}

/** The log a stop of the whole subtree must leave: each postStop, then its actor's stop, last started first. */
function expectedLog(plan: Plan): string[] {
  const hooked = (p: Plan, name: string): string[] => [
    ...p.children.flatMap((c, i) => hooked(c, `${name}-${i}`)),
    ...(p.hook === 'none' ? [] : [name]),
  ];
  const withHook = new Set(hooked(plan, 'n'));
  return stopOrder(plan, 'n').flatMap((name) =>
    withHook.has(name) ? [`postStop ${name}`, `stopped ${name}`] : [`stopped ${name}`],
  );
}

/** Builds the subtree, stops it from the top and returns what the hooks and the event stream logged. */
async function stopLog(plan: Plan): Promise<string[]> {
  const log: string[] = [];
  const { system } = makeSystem();
  system.events$.subscribe((e) => {
    if (e.type === 'actor-stopped') log.push(`stopped ${e.address.split('/').pop()}`);
  });
  const root: ActorRef<typeof Build> = system.spawn(node(plan, 'n', log), { name: 'n' });
  root.tell('build', {});
  await within(settle(system), 2000, 'settle');
  await within(system.stop(root), 2000, 'the stop');
  await system.close();
  return log;
}

describe('the stop of a subtree', () => {
  it('ends every actor last started first, each after its postStop, whether it waits or not', async () => {
    await fc.assert(
      fc.asyncProperty(planArb, async (plan) => {
        expect(await stopLog(plan)).toEqual(expectedLog(plan));
      }),
      seeded('subtree stop order', SEED, 60),
    );
  }, 60_000);

  it('catches a subtree stopped first started first (the check is not vacuous)', async () => {
    const plan: Plan = {
      hook: 'none',
      children: [
        { hook: 'none', children: [] },
        { hook: 'sync', children: [] },
        { hook: 'none', children: [] },
      ],
    };
    const log = await stopLog(plan);
    expect(log).toEqual(expectedLog(plan));
    // The same stops in start order, as a kernel that got the order wrong would log them.
    const wrong = [...log.slice(0, -1)].reverse().concat(log.slice(-1));
    expect(wrong).not.toEqual(expectedLog(plan));
  });
});
