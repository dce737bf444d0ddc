/**
 * The deterministic simulation: five real nodes on the simulated network and clock, a register
 * workload on named persistent actors, faults from the seed. Same seed, same history byte for byte;
 * a correct register passes every checker under faults; a broken one is caught; a failing schedule
 * shrinks to the fault that matters.
 */
import { describe, expect, it } from 'vitest';

// Whole simulated runs: a few hundred ms of CPU each, more on a loaded machine.
const LONG = 120_000;

import {
  checkChaos,
  historyJson,
  invariant,
  type PlanInput,
  registerWorkload,
  shrink,
  simulate,
} from 'troupe/chaos';
import { TroupeError } from 'troupe/protocols';

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

function plan(seed: number, durationMs = 20_000): PlanInput {
  return {
    name: 'registers',
    seed,
    durationMs,
    healMs: 5000,
    nodes: NODES,
    workload: { name: 'register' },
    faults: {
      count: 6,
      kinds: ['partition', 'crash-node', 'pause-node', 'network', 'clock-skew', 'journal', 'crash-actor'],
      actorPattern: 'troupe://sim/@register/*',
    },
  };
}

describe('simulation', () => {
  it(
    'gives the same history, byte for byte, for the same seed (and another for another seed)',
    async () => {
      const a = await simulate(plan(11), { workload: registerWorkload() });
      const b = await simulate(plan(11), { workload: registerWorkload() });
      const c = await simulate(plan(12), { workload: registerWorkload() });
      expect(a.history.ops.length).toBeGreaterThan(200);
      expect(historyJson(b.history)).toBe(historyJson(a.history));
      expect(historyJson(c.history)).not.toBe(historyJson(a.history));
      // The faults happened: nemesis operations, and operations that timed out during them.
      expect(a.history.ops.filter((op) => op.process === 'nemesis').length).toBe(12);
    },
    LONG,
  );

  it(
    'keeps registers linearizable, writes fenced and keys live under faults, for many seeds',
    async () => {
      const results = await checkChaos(plan(1), { workload: registerWorkload(), seeds: [1, 2, 3, 4, 5, 6] });
      for (const r of results) {
        expect(r.verdicts.map((v) => [v.checker, v.verdict])).toEqual([
          ['linearizable(register)', 'ok'],
          ['singleActivation', 'ok'],
          ['noDuplicateEffects', 'ok'],
          ['livenessAfterHeal', 'ok'],
        ]);
      }
    },
    LONG,
  );

  it(
    'keeps counters linearizable (adds with command ids, redelivered or not)',
    async () => {
      const [r] = await checkChaos(plan(21), { workload: registerWorkload({ model: 'counter' }) });
      expect(r!.verdicts[0]).toMatchObject({ checker: 'linearizable(counter)', verdict: 'ok' });
    },
    LONG,
  );

  it(
    'catches a register that reads from a stale copy, and one that acknowledges before writing',
    async () => {
      const stale = await simulate(plan(3), { workload: registerWorkload({ broken: 'stale-read' }) });
      expect(stale.verdicts[0]).toMatchObject({ checker: 'linearizable(register)', verdict: 'violated' });
      expect(stale.verdicts[0]!.ops.length).toBeGreaterThan(0);
      const early = await simulate(plan(3), { workload: registerWorkload({ broken: 'ack-before-write' }) });
      expect(early.verdict).toBe('violated');
    },
    LONG,
  );

  it(
    'reports a failure with its seed and a shrunk schedule (checkChaos)',
    async () => {
      const error = await checkChaos(plan(5), {
        workload: registerWorkload({ broken: 'stale-read' }),
        maxShrinkRuns: 4,
      }).catch((e: unknown) => e);
      expect(TroupeError.is(error, 'ERR_ILLEGAL_STATE')).toBe(true);
      expect((error as Error).message).toMatch(/failed with seed 5/);
      expect((error as Error).message).toMatch(/linearizable\(register\): violated/);
      expect((error as Error).message).toMatch(/shrunk to seed 5, 0 fault\(s\) left/);
    },
    LONG,
  );

  it(
    'shrinks a schedule to the one fault that breaks an invariant, shortened',
    async () => {
      // An invariant that fails as soon as a node was ever killed: only the crash-node fault matters.
      const neverKilled = invariant('no node killed', (h) =>
        h.ops.some((op) => op.process === 'nemesis' && op.f === 'crash-node') ? 'a node was killed' : true,
      );
      const faults = [
        {
          kind: 'partition' as const,
          at: 2000,
          durationMs: 3000,
          sides: [['n1'], ['n2', 'n3', 'n4', 'n5']],
          oneWay: false,
        },
        { kind: 'crash-node' as const, at: 4000, durationMs: 4000, node: 'n2', signal: 'kill' as const },
        { kind: 'clock-skew' as const, at: 5000, durationMs: 2000, node: 'n3', skewMs: 500 },
        { kind: 'pause-node' as const, at: 6000, durationMs: 1000, node: 'n4' },
      ];
      const tries: number[] = [];
      const shrunk = await shrink(
        { ...plan(9, 12_000), faults },
        {
          workload: registerWorkload({ clients: 2 }),
          checkers: [neverKilled],
          onTry: (f) => tries.push(f.length),
        },
      );
      expect(shrunk).toBeDefined();
      expect(shrunk!.faults).toHaveLength(1);
      expect(shrunk!.faults[0]).toMatchObject({ kind: 'crash-node', node: 'n2' });
      expect((shrunk!.faults[0] as { durationMs: number }).durationMs).toBeLessThan(4000);
      expect(shrunk!.summary).toMatch(/^seed 9, 1 fault\(s\) left/);
      expect(tries[0]).toBe(4);
    },
    LONG,
  );

  it(
    'crashes the actors an address pattern names at the fault time, and they recover',
    async () => {
      const r = await simulate(
        {
          name: 'crash-actor',
          seed: 1,
          durationMs: 10_000,
          nodes: ['n1', 'n2', 'n3'],
          workload: { name: 'register' },
          faults: [
            { kind: 'crash-actor', at: 2000, pattern: 'troupe://sim/@register/*' },
            { kind: 'crash-actor', at: 4000, pattern: 'troupe://sim/@register/k1' },
          ],
        },
        { workload: registerWorkload() },
      );
      const crashed = r.history.log.filter((e) => e.type === 'actor-crashed');
      const [first, second] = r.history.ops.filter((op) => op.process === 'nemesis' && op.type === 'invoke');
      // Every activation running at the first fault, on whichever node, then k1 alone at the second.
      expect(crashed.filter((e) => e.time === first!.time).length).toBeGreaterThan(1);
      expect(crashed.filter((e) => e.time === second!.time).map((e) => e.data)).toEqual([
        { address: 'troupe://sim/@register/k1' },
      ]);
      // The crashed registers answered again afterwards.
      const after = r.history.ops.filter(
        (op) => op.key === 'k1' && op.type === 'ok' && op.time > second!.time,
      );
      expect(after.length).toBeGreaterThan(0);
      expect(r.verdict).toBe('ok');
    },
    LONG,
  );
  it(
    'serves the cluster store only to the side of a partition that holds it (leases move to the majority)',
    async () => {
      const r = await simulate(
        {
          ...plan(3, 12_000),
          faults: [{ kind: 'partition', at: 2000, durationMs: 4000, sides: [['n1', 'n2'], NODES.slice(2)] }],
        },
        { workload: registerWorkload() },
      );
      // Writes stay fenced. (Reads do not: the minority's old activation, cut off from the store,
      // still answers reads after the majority took the key over; linearizability of those reads
      // needs the runtime to stop serving a key whose lease it cannot renew, which it does not yet.)
      const byName = Object.fromEntries(r.verdicts.map((v) => [v.checker, v.verdict]));
      expect(byName).toMatchObject({
        singleActivation: 'ok',
        noDuplicateEffects: 'ok',
        livenessAfterHeal: 'ok',
      });
      // A register whose lease was held on the minority side is taken over on the majority side during
      // the partition: a write there with a fence newer than every one before the partition.
      const before = new Map<string, number>();
      for (const e of r.history.log)
        if (e.fence !== undefined && e.time! < 2000)
          before.set(e.stream, Math.max(before.get(e.stream) ?? 0, e.fence));
      const takenOver = r.history.log.filter(
        (e) =>
          e.time! > 2000 &&
          e.time! < 6000 &&
          ['n3', 'n4', 'n5'].includes(e.node!) &&
          e.fence! > (before.get(e.stream) ?? Number.POSITIVE_INFINITY),
      );
      expect(takenOver.length).toBeGreaterThan(0);
    },
    LONG,
  );

  it(
    'restarts Postgres: calls in flight lose their connection, new ones are refused, registers stay right',
    async () => {
      const r = await simulate(
        {
          ...plan(3, 12_000),
          faults: [
            { kind: 'journal', mode: 'slow', latencyMs: 300, at: 7000, durationMs: 2000 },
            { kind: 'postgres-restart', at: 7500, durationMs: 500 },
          ],
        },
        { workload: registerWorkload() },
      );
      expect(r.verdict).toBe('ok');
      const hurt = r.history.ops.filter(
        (op) => op.time >= 7500 && op.time < 9500 && op.error === 'ERR_ACTOR_CRASHED',
      );
      expect(hurt.length).toBeGreaterThan(0);
    },
    LONG,
  );
});
