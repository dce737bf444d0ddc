/**
 * A pool of worker hosts: keys spread over the hosts, each key has its own actor (spawned on its
 * first message), the pool's actors are in the parent's tree, and a host that dies comes back.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type ActorSystem,
  createSystem,
  type IsolationPool,
  isolationPool,
  type SystemEvent,
  TroupeError,
} from '../../index.js';
import { Calc } from './fixtures/protocols.js';

const module = new URL('./fixtures/calc.ts', import.meta.url);
const spec = { protocols: [Calc], module, export: 'calculator' } as const;

describe('an isolation pool', () => {
  let system: ActorSystem;
  let pool: IsolationPool<typeof Calc>;
  const events: SystemEvent[] = [];

  beforeAll(async () => {
    system = createSystem({ name: 'pool', deadLetterLog: () => {} });
    system.events$.subscribe((e) => events.push(e));
    pool = await isolationPool(system, spec, { name: 'calcs', hosts: 2, cpuBudgetMs: 1000 });
  }, 90_000);
  afterAll(() => system.close());

  it('spreads keys over its hosts, one actor per key', async () => {
    const keys = Array.from({ length: 24 }, (_, i) => `user-${i}`);
    const perHost = [0, 0];
    for (const key of keys) perHost[pool.hostOf(key)]!++;
    expect(perHost[0]).toBeGreaterThan(4);
    expect(perHost[1]).toBeGreaterThan(4);
    for (const [i, key] of keys.entries()) pool.actor(key).tell('add', { n: i });
    const totals = await Promise.all(keys.map((key) => pool.actor(key).ask('total', {})));
    expect(totals).toEqual(keys.map((_, i) => i));
    expect(pool.actor('user-3').address).toBe(
      `troupe://pool/local.calcs.host-${pool.hostOf('user-3')}/user-3`,
    );
    // The same key is the same actor: its state carries on.
    pool.actor('user-3').tell('add', { n: 10 });
    expect(await pool.actor('user-3').ask('total', {})).toBe(13);
    // Keys that are not names still make actors.
    expect(await pool.actor('a/b $c').ask('fib', { n: 10 })).toBe(55);
  });

  it('shows its hosts and their actors in the tree', async () => {
    await vi.waitFor(() => {
      const node = system.tree().children.find((c) => c.name === 'calcs')!;
      expect(node.children.map((c) => c.name)).toEqual(['host-0', 'host-1']);
      const actors = node.children.flatMap((host) => host.children.map((c) => c.name));
      expect(actors).toContain('user-3');
      expect(actors.length).toBeGreaterThanOrEqual(24);
    });
  });

  it('refuses a body that cannot cross at send', () => {
    expect(() => pool.actor('user-1').tell('add', { n: (() => 1) as unknown as number })).toThrow(
      expect.objectContaining({ code: 'ERR_NOT_CLONEABLE' }),
    );
  });

  it('restarts a host that blocks past its budget; the other host keeps answering', async () => {
    const spinner = 'user-5';
    const host = pool.hostOf(spinner);
    const other = Array.from({ length: 24 }, (_, i) => `user-${i}`).find((k) => pool.hostOf(k) !== host)!;
    pool.actor(spinner).tell('spin', {});
    expect(await pool.actor(other).ask('fib', { n: 15 })).toBe(610);
    await vi.waitFor(
      () =>
        expect(
          events.some(
            (e) =>
              e.type === 'actor-crashed' &&
              e.address.endsWith(`calcs/host-${host}`) &&
              TroupeError.is(e.error, 'ERR_CPU_BUDGET') &&
              // It names the key's actor and its message, not only the host.
              e.error.details?.address === pool.actor(spinner).address &&
              e.error.details?.messageType === 'test.calc.spin',
          ),
        ).toBe(true),
      { timeout: 30_000 },
    );
    // A fresh actor for the key on the restarted host.
    expect(await pool.actor(spinner).ask('total', {}, { timeoutMs: 60_000 })).toBe(0);
  }, 90_000);

  it('rejects a bad export at start', async () => {
    await expect(
      isolationPool(system, { ...spec, export: 'notABehavior' }, { name: 'bad', hosts: 1, standby: false }),
    ).rejects.toSatisfy((e) => TroupeError.is(e, 'ERR_NOT_A_BEHAVIOR'));
  }, 60_000);
});
