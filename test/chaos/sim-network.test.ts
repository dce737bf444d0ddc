/**
 * The simulated network's view of the cluster store under partitions: served by the side that holds
 * a majority of the nodes (or, with none, the side of the first node), unreachable from the others,
 * and one-way partitions cut what cannot travel both ways.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SimNetwork } from '../../ops/chaos/sim/network.js';
import { SimScheduler } from '../../ops/chaos/sim/scheduler.js';
import { seededRandom } from '../../runtime/index.js';
import { propertySeed, seeded } from '../harness/fast-check.js';

const SEED = propertySeed(Date.now() % 2 ** 31);

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

function network(nodes = NODES) {
  return new SimNetwork(new SimScheduler(), seededRandom(1), nodes);
}

describe('the simulated cluster store under partitions', () => {
  it('answers only the majority side of a symmetric partition', () => {
    const net = network();
    expect(NODES.every((n) => net.storeReachable(n))).toBe(true);
    net.partitions.add({
      sides: [
        ['n1', 'n2'],
        ['n3', 'n4', 'n5'],
      ],
      oneWay: false,
    });
    expect(NODES.filter((n) => net.storeReachable(n))).toEqual(['n3', 'n4', 'n5']);
  });

  it('with no majority, answers the side of the first node', () => {
    const net = network(['a', 'b', 'c', 'd']);
    net.partitions.add({
      sides: [
        ['c', 'd'],
        ['a', 'b'],
      ],
      oneWay: false,
    });
    expect(['a', 'b', 'c', 'd'].filter((n) => net.storeReachable(n))).toEqual(['a', 'b']);
  });

  it('one-way: the first side cannot ask it, nor hear it when the first side holds it', () => {
    const minorityMuted = network();
    minorityMuted.partitions.add({ sides: [['n1'], ['n2', 'n3', 'n4', 'n5']], oneWay: true });
    expect(NODES.filter((n) => minorityMuted.storeReachable(n))).toEqual(['n2', 'n3', 'n4', 'n5']);
    const majorityMuted = network();
    majorityMuted.partitions.add({
      sides: [
        ['n2', 'n3', 'n4'],
        ['n1', 'n5'],
      ],
      oneWay: true,
    });
    expect(NODES.filter((n) => majorityMuted.storeReachable(n))).toEqual(['n2', 'n3', 'n4']);
  });

  it('nodes outside every side reach it', () => {
    const net = network();
    net.partitions.add({ sides: [['n1'], ['n2']], oneWay: false });
    expect(NODES.filter((n) => net.storeReachable(n))).toEqual(['n1', 'n3', 'n4', 'n5']);
  });

  it('never answers two sides of a partition of the whole cluster: whoever reaches it shares one side (property)', () => {
    const partition = fc
      .tuple(
        fc.oneof(fc.shuffledSubarray(NODES, { minLength: 2 }), fc.shuffledSubarray(NODES, { minLength: 5 })),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
      )
      .filter(([nodes, cut]) => cut < nodes.length)
      .map(([nodes, cut, oneWay]) => ({ sides: [nodes.slice(0, cut), nodes.slice(cut)], oneWay }));
    fc.assert(
      fc.property(partition, ({ sides, oneWay }) => {
        const net = network();
        net.partitions.add({ sides, oneWay });
        const reach = NODES.filter((n) => net.storeReachable(n));
        const sidesReached = new Set(
          reach.flatMap((n) => sides.flatMap((side, i) => (side.includes(n) ? [i] : []))),
        );
        // (A partition of some nodes only leaves the rest joined to both sides, and the store with them.)
        if (sides.flat().length === NODES.length) expect(sidesReached.size).toBeLessThanOrEqual(1);
        // Nodes outside the partition still reach it; a majority side always does.
        for (const n of NODES) if (!sides.flat().includes(n)) expect(reach).toContain(n);
        for (const side of sides)
          if (side.length * 2 > NODES.length && !oneWay) expect(reach).toEqual(expect.arrayContaining(side));
      }),
      seeded('store reachability', SEED, 200),
    );
  });
});
