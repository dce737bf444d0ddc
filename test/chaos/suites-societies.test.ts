/**
 * Suites against the societies and the agents, in simulation with many seeds. The contract net
 * (managers as named actors, bidders on every node) under bidder crashes, node kills, pauses,
 * partitions and network loss: no task awarded or done twice, no award to a bidder that did not
 * bid, what clients are told agrees with the journal, every task settled after the heal; a contract
 * net without the journal's claim, and one that skips the call for proposals, are caught.
 */
import { checkChaos, contractNetWorkload, historyJson, type PlanInput, simulate } from 'troupe/chaos';
import { describe, expect, it } from 'vitest';

// Whole simulated runs: tens to hundreds of ms of CPU each, more on a loaded machine.
const LONG = 120_000;

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

function contractPlan(seed: number): PlanInput {
  return {
    name: 'contract-net',
    seed,
    durationMs: 20_000,
    healMs: 5000,
    nodes: NODES,
    workload: { name: 'contract-net' },
    faults: {
      count: 6,
      kinds: ['crash-actor', 'crash-node', 'partition', 'pause-node', 'network'],
      actorPattern: 'troupe://sim/*/bidder',
    },
  };
}

const CONTRACT_CHECKERS = [
  'contract: awarded at most once',
  'noDuplicateEffects',
  'contract: awards only to bidders',
  'contract: outcomes agree with the journal',
  'contract: every task settled after the heal',
  'singleActivation',
];

describe('contract net: managers and bidders spread over the nodes', () => {
  it(
    'awards and does every task at most once, only to bidders, and settles every task, for many seeds',
    async () => {
      const results = await checkChaos(contractPlan(1), {
        workload: contractNetWorkload(),
        seeds: [1, 2, 3, 4, 5, 6, 7, 8],
        strict: true,
      });
      const outcomes = new Set<string>();
      let crashedBidders = 0;
      for (const r of results) {
        expect(r.verdicts.map((v) => [v.checker, v.verdict])).toEqual(
          CONTRACT_CHECKERS.map((c) => [c, 'ok']),
        );
        for (const op of r.history.ops)
          if (op.process !== 'nemesis' && op.type !== 'invoke') outcomes.add(op.type);
        crashedBidders += r.history.log.filter(
          (e) => e.type === 'actor-crashed' && /\/bidder$/.test((e.data as { address: string }).address),
        ).length;
      }
      // Tasks were awarded, some failed, some answers were lost in the faults (and settled later).
      expect(outcomes).toEqual(new Set(['ok', 'fail', 'info']));
      expect(crashedBidders).toBeGreaterThan(0);
    },
    LONG,
  );

  it(
    'gives the same history, byte for byte, for the same seed',
    async () => {
      const a = await simulate(contractPlan(4), { workload: contractNetWorkload() });
      const b = await simulate(contractPlan(4), { workload: contractNetWorkload() });
      expect(a.history.ops.length).toBeGreaterThan(40);
      expect(historyJson(b.history)).toBe(historyJson(a.history));
    },
    LONG,
  );

  it(
    'catches bidders that work without claiming the task: a slow winner and the next-best both do it',
    async () => {
      const r = await simulate(contractPlan(1), { workload: contractNetWorkload({ broken: 'no-claim' }) });
      const byName = Object.fromEntries(r.verdicts.map((v) => [v.checker, v]));
      expect(byName['contract: awarded at most once']!.verdict).toBe('violated');
      expect(byName['contract: awarded at most once']!.message).toMatch(
        /went to troupe:\/\/sim\/n\d\/bidder and/,
      );
      expect(byName.noDuplicateEffects!.verdict).toBe('violated');
      expect(byName['contract: outcomes agree with the journal']!.verdict).toBe('violated');
      expect(byName['contract: outcomes agree with the journal']!.ops.length).toBeGreaterThan(0);
    },
    LONG,
  );

  it(
    'catches a manager that awards without a call for proposals',
    async () => {
      const r = await simulate(contractPlan(2), { workload: contractNetWorkload({ broken: 'no-call' }) });
      const verdict = r.verdicts.find((v) => v.checker === 'contract: awards only to bidders')!;
      expect(verdict.verdict).toBe('violated');
      expect(verdict.message).toMatch(/no recorded bid in that round/);
      expect(verdict.entries!.length).toBeGreaterThan(0);
    },
    LONG,
  );
});
