/**
 * Suites against the societies, in simulation with many seeds: the bank (accounts as named
 * persistent actors, transfers as sagas on the workflow engine) keeps its total under partitions,
 * node kills, pauses, network loss and journal faults, every saga all or nothing, every step
 * completed once; a saga whose compensation does nothing is caught.
 */

import { bankWorkload, checkChaos, historyJson, type PlanInput, simulate } from 'troupe/chaos';
import { describe, expect, it } from 'vitest';

const LONG = 180_000;

function bank(seed: number): PlanInput {
  return {
    name: 'bank',
    seed,
    durationMs: 20_000,
    healMs: 5000,
    nodes: ['n1', 'n2', 'n3', 'n4', 'n5'],
    workload: { name: 'bank' },
    faults: { count: 5, kinds: ['partition', 'crash-node', 'pause-node', 'network', 'journal'] },
  };
}

describe('bank: transfers as sagas', () => {
  it(
    'keeps the total, and every saga all or nothing, under faults, for many seeds',
    async () => {
      const results = await checkChaos(bank(1), {
        workload: bankWorkload(),
        seeds: [1, 2, 3, 4, 5],
        strict: true,
      });
      const outcomes = new Set<string>();
      for (const r of results) {
        expect(r.verdicts.map((v) => [v.checker, v.verdict])).toEqual([
          ['bank total constant', 'ok'],
          ['sagaAtomicity', 'ok'],
          ['workflowStepsOnce', 'ok'],
          ['noDuplicateEffects', 'ok'],
          ['singleActivation', 'ok'],
        ]);
        for (const op of r.history.ops) if (op.f === 'transfer') outcomes.add(op.type);
      }
      // Transfers both succeeded and were refused (compensated at the frozen account, or no funds).
      expect(outcomes).toContain('ok');
      expect(outcomes).toContain('fail');
    },
    LONG,
  );

  it(
    'catches a saga whose compensation does nothing: money vanishes',
    async () => {
      const r = await simulate(bank(1), { workload: bankWorkload({ broken: 'no-compensation' }) });
      expect(r.verdicts[0]).toMatchObject({ checker: 'bank total constant', verdict: 'violated' });
      expect(r.verdicts[0]!.message).toMatch(/!= 500 opened/);
    },
    LONG,
  );

  it(
    "starts every run afresh: a workload object run for a second seed gives that seed's history",
    async () => {
      // checkChaos and shrink run one workload object for several seeds and schedules: a run must
      // not see the sagas or the client engine of the run before it.
      const plan = (seed: number): PlanInput => ({
        ...bank(seed),
        durationMs: 8000,
        nodes: ['n1', 'n2', 'n3'],
      });
      const reused = bankWorkload();
      await simulate(plan(1), { workload: reused });
      const again = await simulate(plan(2), { workload: reused });
      const fresh = await simulate(plan(2), { workload: bankWorkload() });
      expect(fresh.history.ops.some((op) => op.f === 'transfer' && op.type === 'ok')).toBe(true);
      expect(historyJson(again.history)).toBe(historyJson(fresh.history));
    },
    LONG,
  );
});
