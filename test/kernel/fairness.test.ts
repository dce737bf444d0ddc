import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type ActorRef, behavior, defineProtocol, tell } from '../../index.js';
import { settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, makeSystem } from './helpers.js';

closeSystemsAfterEach();

const Work = defineProtocol('fair.work', {
  work: tell(z.object({ n: z.number() })),
  spin: tell(z.object({ n: z.number() })),
});

/** Every handled message of every actor, in the order they ran. */
function worker(name: string, log: string[]) {
  return behavior({
    protocols: [Work],
    handlers: {
      work: ({ n }) => {
        log.push(`${name}${n}`);
      },
      spin: ({ n }, ctx) => {
        log.push(`${name}${n}`);
        if (n > 0) ctx.self.tell('spin', { n: n - 1 });
      },
    },
  });
}

describe('fairness between actors', () => {
  it('runs another actor after at most `throughput` messages of a flooded one', async () => {
    const log: string[] = [];
    const { system } = makeSystem({ throughput: 2 });
    const hot = system.spawn(worker('hot', log));
    const other = system.spawn(worker('other', log));
    for (let n = 0; n < 100; n++) hot.tell('work', { n });
    other.tell('work', { n: 0 });
    await settle(system);
    expect(log).toHaveLength(101);
    expect(log.indexOf('other0')).toBeLessThanOrEqual(2);
    expect(log.indexOf('other0')).toBeLessThan(log.indexOf('hot99'));
  });

  it('does not let an actor that keeps messaging itself starve the others', async () => {
    const log: string[] = [];
    const { system } = makeSystem({ throughput: 4 });
    const hot = system.spawn(worker('hot', log));
    const other = system.spawn(worker('other', log));
    hot.tell('spin', { n: 1000 });
    other.tell('work', { n: 0 });
    other.tell('work', { n: 1 });
    await settle(system);
    expect(log).toHaveLength(1003);
    expect(log.indexOf('other1')).toBeLessThan(log.indexOf('hot0'));
    expect(log.indexOf('other1')).toBeLessThan(20);
  });

  it('interleaves many flooded actors in turns', async () => {
    const log: string[] = [];
    const { system } = makeSystem({ throughput: 1 });
    const refs: ActorRef<typeof Work>[] = ['a', 'b', 'c'].map((name) => system.spawn(worker(name, log)));
    for (let n = 0; n < 3; n++) for (const ref of refs) ref.tell('work', { n });
    await settle(system);
    expect(log).toEqual(['a0', 'b0', 'c0', 'a1', 'b1', 'c1', 'a2', 'b2', 'c2']);
  });
});

describe('system messages go before user messages', () => {
  const Parent = defineProtocol('fair.parent', {
    step: tell(z.object({ n: z.number() })),
  });
  const Child = defineProtocol('fair.child', { boom: tell(z.object({})) });

  it('restarts a crashed child before the parent handles its next queued message', async () => {
    const log: string[] = [];
    let childRef: ActorRef<typeof Child> | undefined;
    const child = behavior({
      protocols: [Child],
      preStart: () => {
        log.push('child-start');
      },
      handlers: {
        boom: () => {
          log.push('child-boom');
          throw new Error('child failed');
        },
      },
    });
    const parent = behavior({
      protocols: [Parent],
      preStart: (ctx) => {
        childRef = ctx.spawn(child, { name: 'child' });
      },
      handlers: {
        step: ({ n }) => {
          log.push(`parent${n}`);
          if (n === 0) childRef!.tell('boom', {});
        },
      },
    });
    const { system } = makeSystem({ throughput: 1 });
    const ref = system.spawn(parent);
    await settle(system);
    for (let n = 0; n < 4; n++) ref.tell('step', { n });
    await settle(system);
    expect(log).toEqual([
      'child-start',
      'parent0',
      'child-boom',
      'child-start',
      'parent1',
      'parent2',
      'parent3',
    ]);
  });

  it('stops an actor at once: queued user messages are not handled but dead-lettered', async () => {
    const log: string[] = [];
    const { system, dead } = makeSystem();
    const ref = system.spawn(worker('w', log));
    for (let n = 0; n < 5; n++) ref.tell('work', { n });
    await system.stop(ref);
    expect(log).toEqual([]);
    expect(dead.map((d) => [d.body, d.reason])).toEqual(
      Array.from({ length: 5 }, (_, n) => [{ n }, 'actor-stopped']),
    );
  });

  it('handles no message queued behind a handler that stops its own actor', async () => {
    const Quit = defineProtocol('fair.quit', {
      quit: tell(z.object({})),
      work: tell(z.object({ n: z.number() })),
    });
    const log: string[] = [];
    const quitter = behavior({
      protocols: [Quit],
      handlers: {
        quit: (_b, ctx) => {
          log.push('quit');
          void ctx.stop();
        },
        work: ({ n }) => {
          log.push(`work${n}`);
        },
      },
    });
    const { system, dead } = makeSystem();
    const ref = system.spawn(quitter);
    ref.tell('work', { n: 0 });
    ref.tell('quit', {});
    ref.tell('work', { n: 1 });
    ref.tell('work', { n: 2 });
    await settle(system);
    expect(log).toEqual(['work0', 'quit']);
    expect(dead.map((d) => [d.messageType, d.body, d.reason])).toEqual([
      ['work', { n: 1 }, 'actor-stopped'],
      ['work', { n: 2 }, 'actor-stopped'],
    ]);
  });
});

describe('the time slice', () => {
  it('lets the event loop run while an actor keeps itself busy with slow handlers', async () => {
    const Busy = defineProtocol('fair.busy', { step: tell(z.object({ n: z.number() })) });
    let handled = 0;
    const spinFor = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until) {
        // A handler that blocks for `ms`, as CPU-bound work does.
      }
    };
    const { system } = makeSystem({ timeSliceMs: 5 });
    const ref = system.spawn(
      behavior({
        protocols: [Busy],
        handlers: {
          step: ({ n }, ctx) => {
            handled++;
            spinFor(1);
            if (n > 0) ctx.self.tell('step', { n: n - 1 });
          },
        },
      }),
    );
    ref.tell('step', { n: 2000 });
    // A timer due at once must run long before 2000 one-millisecond messages are through: within
    // the first turn (64 messages at most) and a few slices after it.
    const seenByTimer = await new Promise<number>((resolve) => setTimeout(() => resolve(handled), 0));
    expect(seenByTimer).toBeLessThan(200);
    await system.stop(ref);
  });
});
