/**
 * One stream, many declarers: `TroupeEvents` is extended by module augmentation (here an
 * application's own events), `publish` is typed by it and stamps `at`, and consumers narrow on `type`.
 * Defects are events: while nobody subscribes, a published event that carries an `Error`, and a
 * kernel defect (`hook-failed`), go to `deadLetterLog` like crashes (rate-limited), not to the console.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { behavior, defineProtocol, type SystemEventOf, tell } from '../../index.js';
import { SimulatedClock } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, makeSystem } from './helpers.js';

declare module '../../runtime/index.js' {
  interface TroupeEvents {
    'order-shipped': { readonly order: number };
    'order-lost': { readonly order: number; readonly error: Error };
  }
}

closeSystemsAfterEach();

describe('published events', () => {
  it('are typed by the augmented TroupeEvents, stamped with the system clock, and narrowed on type', () => {
    const clock = new SimulatedClock();
    const { system, events } = makeSystem({ clock });
    clock.advance(250);
    system.publish({ type: 'order-shipped', order: 7 });
    const shipped = events.filter((e): e is SystemEventOf<'order-shipped'> => e.type === 'order-shipped');
    expect(shipped).toEqual([{ type: 'order-shipped', at: clock.now(), order: 7 }]);
    const orders: number[] = [];
    for (const event of events) if (event.type === 'order-shipped') orders.push(event.order);
    expect(orders).toEqual([7]);
    // @ts-expect-error the kernel's own events are emitted by the system, never published
    system.publish({ type: 'actor-started', address: 'troupe://x/local/a' });
    // @ts-expect-error the fields are those the declaration gives
    system.publish({ type: 'order-shipped', order: 'seven' });
  });

  it('that carry an Error go to the log while nobody subscribes, up to the limit; the others are dropped', () => {
    const lines: string[] = [];
    const { system } = makeSystem(
      { deadLetterLog: (line) => lines.push(line), deadLetterLogLimit: 2 },
      false,
    );
    for (let order = 1; order <= 4; order++) {
      system.publish({ type: 'order-shipped', order });
      system.publish({ type: 'order-lost', order, error: new Error(`order ${order} fell off the truck`) });
    }
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain('troupe: order-lost {"order":1}: Error: order 1 fell off the truck');
    expect(lines[0]).toMatch(/\n\s+at .*published-events\.test\.ts/);
    expect(lines[1]).toContain('troupe: order-lost {"order":2}: Error: order 2 fell off the truck');
    expect(lines[2]).toBe('troupe: 2 defects logged; further ones go only to subscribers of events$');
  });

  it('with a subscriber, a defect is an event only', () => {
    const lines: string[] = [];
    const { system, events } = makeSystem({ deadLetterLog: (line) => lines.push(line) });
    const error = new Error('lost');
    system.publish({ type: 'order-lost', order: 1, error });
    expect(events).toMatchObject([{ type: 'order-lost', order: 1, error }]);
    expect(lines).toEqual([]);
  });
});

describe('kernel defects nobody subscribes to', () => {
  it('reach the log sink with their stack instead of the console', async () => {
    const lines: string[] = [];
    const { system } = makeSystem({ deadLetterLog: (line) => lines.push(line) }, false);
    const Work = defineProtocol('defects.work', { run: tell(z.object({})) });
    const ref = system.spawn(
      behavior({
        protocols: [Work],
        handlers: { run: () => {} },
        postStop: () => {
          throw new Error('cleanup bug');
        },
      }),
      { name: 'worker' },
    );
    await system.stop(ref);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`troupe: a hook of ${ref.address} failed: Error: cleanup bug`);
    expect(lines[0]).toMatch(/\n\s+at /);
  });
});
