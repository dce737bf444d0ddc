/**
 * Routers: each strategy over a static list and over a group, broadcast, and scatter-gather with a
 * silent member and a failing member reported.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  behavior,
  byCapability,
  consistentHash,
  createSystem,
  defineProtocol,
  leastBusy,
  randomly,
  roundRobin,
  router,
  seededRandom,
  tell,
} from '../../index.js';
import { sleep } from '../../runtime/index.js';
import { SimulatedClock } from '../../runtime/testkit/index.js';
import { Work, worker } from './helpers.js';

const open: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

function system(options: Parameters<typeof createSystem>[0] = {}): ActorSystem {
  const s = createSystem({ name: 'rt', deadLetterLog: () => {}, ...options });
  open.push(s);
  return s;
}

function workers(s: ActorSystem, names: string[]) {
  return names.map((name) => s.spawn(worker(name), { name }));
}

describe('routers', () => {
  it('round-robin takes each member in turn', async () => {
    const s = system();
    const pool = router(workers(s, ['a', 'b', 'c']), roundRobin());
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(await pool.ask('whoami', {}));
    expect(seen).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('random draws from the system’s random source by default: a seeded system routes repeatably', async () => {
    const draw = async (seed: number, strategy = randomly()) => {
      const s = system({ name: `rt${seed}`, random: seededRandom(seed) });
      const pool = router(workers(s, ['a', 'b', 'c']), strategy);
      const out: string[] = [];
      for (let i = 0; i < 30; i++) out.push(await pool.ask('whoami', {}));
      return out;
    };
    const first = await draw(42);
    expect(await draw(42)).toEqual(first);
    expect(new Set(first)).toEqual(new Set(['a', 'b', 'c']));
    expect(await draw(43)).not.toEqual(first);
    // An explicit source wins over the system's.
    expect(await draw(43, randomly(seededRandom(9)))).toEqual(await draw(44, randomly(seededRandom(9))));
  });

  it('consistent hash sends a key to the same member, from the message or the given key', async () => {
    const s = system();
    const refs = workers(s, ['a', 'b', 'c', 'd']);
    const pool = router(refs, consistentHash({ key: (_type, body) => (body as { key?: string }).key ?? '' }));
    const owners = new Map<string, string>();
    for (let i = 0; i < 40; i++) owners.set(`user-${i}`, await pool.ask('whoami', { key: `user-${i}` }));
    for (const [key, owner] of owners) {
      expect(await pool.ask('whoami', { key })).toBe(owner);
      expect(pool.pick({ key })?.address).toBe(refs.find((r) => r.address.endsWith(`/${owner}`))!.address);
    }
    expect(new Set(owners.values()).size).toBeGreaterThan(1);
    const keyless = router(refs, consistentHash());
    expect(() => keyless.tell('job', { id: 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
  });

  it('least busy prefers the member with the fewest messages waiting', async () => {
    const clock = new SimulatedClock();
    const s = system({ clock });
    const Slow = defineProtocol('prim.slow', { job: tell(z.object({ id: z.number() })) });
    const slow = behavior({
      protocols: [Slow],
      // A job that never ends while the simulated clock stands still: the mailboxes stay as filled.
      handlers: { job: () => sleep(1000, { clock }) },
    });
    const refs = [s.spawn(slow), s.spawn(slow), s.spawn(slow)];
    const pool = router(refs, leastBusy());
    refs[0]!.tell('job', { id: 0 });
    refs[0]!.tell('job', { id: 0 });
    refs[1]!.tell('job', { id: 0 });
    await vi.waitFor(() => expect(s.tree().children.map((c) => c.mailboxSize)).toEqual([1, 0, 0]));
    expect(pool.pick()?.address).toBe(refs[2]!.address);
    pool.tell('job', { id: 1 });
    await vi.waitFor(() => expect(pool.pick()?.address).not.toBe(refs[2]!.address));
  });

  it('by capability picks the best-scoring member of the router, not of the whole system', async () => {
    const s = system();
    const Ask = defineProtocol('prim.cap', { job: tell(z.object({})) });
    const able = (name: string, score: number) =>
      s.spawn(
        behavior({ protocols: [Ask], capabilities: { research: score }, handlers: { job: () => {} } }),
        { name },
      );
    const best = able('best', 9);
    const good = able('good', 5);
    const none = able('none', 0);
    const pool = router([good, none], byCapability({ capability: 'research' }));
    expect(pool.pick()?.address).toBe(good.address);
    expect(s.route({ capability: 'research' })?.address).toBe(best.address);
    expect(router([none], byCapability({ capability: 'research' })).pick()).toBeUndefined();
    expect(() => router([none], byCapability({ capability: 'research' })).tell('job', {})).toThrow(
      expect.objectContaining({ code: 'ERR_NO_ROUTE' }),
    );
  });

  it('broadcast tells every member; a router over a group follows the group', async () => {
    const s = system();
    const [a, b, c] = workers(s, ['a', 'b', 'c']);
    s.groups.join('pool', a!);
    s.groups.join('pool', b!);
    const pool = router({ system: s, group: 'pool', protocol: Work }, roundRobin());
    expect(pool.broadcast('job', { id: 1 })).toBe(2);
    s.groups.join('pool', c!);
    await s.stop(a!);
    expect(pool.broadcast('job', { id: 2 })).toBe(2);
    expect(await b!.ask('count', {})).toBe(2);
    expect(await c!.ask('count', {})).toBe(1);
    s.groups.leave('pool', b!);
    s.groups.leave('pool', c!);
    await expect(pool.ask('whoami', {})).rejects.toMatchObject({ code: 'ERR_NO_ROUTE' });
  });

  it('scatter-gather reports a silent member and a failing member with its typed error', async () => {
    const s = system();
    const ok1 = s.spawn(worker('ok1'));
    const ok2 = s.spawn(worker('ok2'));
    const silent = s.spawn(worker('quiet', 'silent'));
    const failing = s.spawn(worker('broken', 'fail'));
    const pool = router([ok1, silent, failing, ok2]);
    const all = await pool.scatter('answer', { q: 'x' }, { timeoutMs: 100 });
    expect(all.complete).toBe(false);
    expect(all.replies.map((r) => r.reply).sort()).toEqual(['ok1:x', 'ok2:x']);
    expect(all.silent.map((m) => m.address)).toEqual([silent.address]);
    expect(all.failures.map((f) => [f.member.address, f.error.code])).toEqual([
      [failing.address, 'ERR_ACTOR_CRASHED'],
    ]);
    expect(all.pending).toEqual([]);

    const first = await pool.scatter('answer', { q: 'y' }, { timeoutMs: 5000, want: { first: 1 } });
    expect(first.complete).toBe(true);
    expect(first.replies).toHaveLength(1);
    // Every member is accounted for, in exactly one place.
    const accounted = [
      ...first.replies.map((r) => r.member),
      ...first.failures.map((f) => f.member),
      ...first.silent,
      ...first.pending,
    ].map((m) => m.address);
    expect(accounted.sort()).toEqual([ok1, silent, failing, ok2].map((m) => m.address).sort());

    // A quorum of 3 cannot be met once two of four have failed or gone silent.
    const quorum = await pool.scatter('answer', { q: 'z' }, { timeoutMs: 100, want: { quorum: 3 } });
    expect(quorum.complete).toBe(false);
    expect(quorum.replies).toHaveLength(2);
    // A majority (3 of 4) could still come from the silent member: it is waited for, to the deadline.
    const majority = await pool.scatter(
      'answer',
      { q: 'w' },
      { timeoutMs: 150, want: { quorum: 'majority' } },
    );
    expect(majority.complete).toBe(false);
    expect(majority.silent.map((m) => m.address)).toEqual([silent.address]);
    const two = await pool.scatter('answer', { q: 'u' }, { timeoutMs: 5000, want: { quorum: 2 } });
    expect(two.complete).toBe(true);
    expect(two.replies.map((r) => r.reply).sort()).toEqual(['ok1:u', 'ok2:u']);
    expect(two.pending.map((m) => m.address)).toContain(silent.address);
    await expect(pool.scatter('answer', { q: 'v' }, { timeoutMs: 0 })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
    });
  });
});
