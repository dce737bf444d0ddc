/**
 * The simulated network's view of the cluster store under partitions: served by the side that holds
 * a majority of the nodes (or, with none, the side of the first node), unreachable from the others,
 * and one-way partitions cut what cannot travel both ways.
 */
import { describe, expect, it } from 'vitest';
import { SimNetwork } from '../../ops/chaos/sim/network.js';
import { SimScheduler } from '../../ops/chaos/sim/scheduler.js';
import { seededRandom } from '../../runtime/index.js';

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
});
