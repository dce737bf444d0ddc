/**
 * Properties (fast-check, seed printed on failure): consistent hashing moves at most about 2/n of
 * the keys when one of n members joins or leaves, and the same check catches a modulo hash; topics
 * deliver every publication to every live subscriber exactly once, in each publisher's order.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type ActorRef,
  type ActorSystem,
  consistentHash,
  createNode,
  inProcessNetwork,
  type RoutingStrategy,
} from '../../index.js';
import { propertySeed, seeded } from '../harness/fast-check.js';
import { listener, News } from './helpers.js';

const refsOf = (ids: readonly string[]) => ids.map((id) => ({ address: `troupe://p/n/${id}` }) as ActorRef);

/** Where `strategy` puts each key among `members`. */
function placement(
  strategy: RoutingStrategy,
  members: readonly ActorRef[],
  keys: readonly string[],
): string[] {
  return keys.map(
    (key) =>
      members[strategy.pick(members, { type: undefined, body: undefined, key }, { random: () => 0 })]!
        .address,
  );
}

const KEYS = Array.from({ length: 1000 }, (_, i) => `key-${i}`);

/**
 * The property: for n members and one more joining (or one of n+1 leaving), at most 2/n of the keys
 * change member, and every key that moves goes to the newcomer (or comes from the one that left).
 */
function movesFewKeys(strategy: () => RoutingStrategy) {
  return fc.property(
    fc.uniqueArray(fc.stringMatching(/^[a-z0-9]{1,8}$/), { minLength: 3, maxLength: 24 }),
    fc.nat(),
    (ids, which) => {
      const before = refsOf(ids.slice(0, -1));
      const after = refsOf(ids);
      const newcomer = after.at(-1)!.address;
      const n = before.length;
      const a = placement(strategy(), before, KEYS);
      const b = placement(strategy(), after, KEYS);
      const moved = KEYS.filter((_, i) => a[i] !== b[i]);
      if (moved.length > (2 / n) * KEYS.length) return false;
      if (!moved.every((k) => b[KEYS.indexOf(k)] === newcomer)) return false;
      // One of the n+1 leaves: only its keys move.
      const gone = after[which % after.length]!.address;
      const left = after.filter((m) => m.address !== gone);
      const c = placement(strategy(), left, KEYS);
      return KEYS.every((_, i) => b[i] === gone || c[i] === b[i]);
    },
  );
}

/** A broken strategy for the checker: hash modulo n, which moves most keys when n changes. */
function moduloHash(): RoutingStrategy {
  return {
    kind: 'consistent-hash',
    pick(members, message, _context) {
      let h = 0;
      for (const ch of message.key ?? '') h = (h * 31 + ch.charCodeAt(0)) >>> 0;
      return members.length === 0 ? -1 : h % members.length;
    },
  };
}

describe('consistent hashing', () => {
  it('moves at most about 2/n of the keys when one of n members joins or leaves', () => {
    const seed = propertySeed(20261205);
    fc.assert(
      movesFewKeys(() => consistentHash()),
      seeded('consistent hash moves', seed, 60),
    );
  });

  it('the same check fails on a modulo hash', () => {
    const result = fc.check(movesFewKeys(moduloHash), { seed: propertySeed(7), numRuns: 60 });
    expect(result.failed).toBe(true);
  });
});

const open: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

describe('topics', () => {
  it('deliver every publication to every live subscriber exactly once, in each publisher’s order', async () => {
    const seed = propertySeed(1205);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        // Per subscriber: its node (mod the node count) and whether it stops before the publications.
        fc.array(fc.record({ node: fc.nat(), stops: fc.boolean() }), { maxLength: 8 }),
        // Per publication: its publishing node (mod the node count).
        fc.array(fc.nat(), { minLength: 1, maxLength: 30 }),
        async (nodeCount, subscriberPlan, publications) => {
          const network = inProcessNetwork();
          const systems: ActorSystem[] = [];
          for (let i = 0; i < nodeCount; i++) {
            const system = await createNode({
              name: 'prop',
              node: `n${i}`,
              transport: network.transport(),
              deadLetterLog: () => {},
            });
            systems.push(system);
            open.push(system);
          }
          const topics = systems.map((s) => s.topic('t', News));
          const subscribers = subscriberPlan.map(({ node, stops }) => {
            const at = node % nodeCount;
            const ref = systems[at]!.spawn(listener);
            topics[at]!.subscribe(ref, 'news');
            return { ref, at, stops };
          });
          for (const s of subscribers) if (s.stops) await systems[s.at]!.stop(s.ref);
          // Every node knows which others have live subscribers before anything is published.
          const withSubscribers = (i: number) =>
            [...new Set(subscribers.filter((s) => !s.stops && s.at !== i).map((s) => `n${s.at}`))].sort();
          for (let i = 0; i < nodeCount; i++) {
            await vi.waitFor(() => expect(topics[i]!.nodes()).toEqual(withSubscribers(i)));
          }
          const sent = publications.map((p, i) => ({ at: p % nodeCount, n: (p % nodeCount) * 1000 + i }));
          for (const { at, n } of sent) topics[at]!.publish({ n });
          const live = subscribers.filter((s) => !s.stops);
          for (const s of live) {
            await vi.waitFor(async () =>
              expect((await s.ref.ask('seen', {})).length).toBeGreaterThanOrEqual(sent.length),
            );
          }
          for (const s of live) {
            const seen = await s.ref.ask('seen', {});
            expect([...seen].sort((x, y) => x - y)).toEqual(sent.map((x) => x.n).sort((x, y) => x - y));
            for (let node = 0; node < nodeCount; node++) {
              const fromNode = seen.filter((n) => Math.floor(n / 1000) === node);
              expect(fromNode).toEqual(sent.filter((x) => x.at === node).map((x) => x.n));
            }
          }
          await Promise.all(systems.map((s) => s.close()));
        },
      ),
      seeded('topics exactly once', seed, 25),
    );
  });
});
