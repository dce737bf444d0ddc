/**
 * Supervision conformance with real Erlang/OTP: seeded random scenarios run on OTP's `supervisor`
 * (oracle.escript, one escript process for the batch) and on Troupe (simulated clock), and the
 * ordered traces of child starts and stops must agree, up to the mappings in traces.ts. A
 * disagreement is shrunk and printed with both traces side by side.
 *
 *   OTP_SEED=<n> OTP_SCENARIOS=<count> npx vitest run test/otp    (a long run; README, "Supervision semantics")
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { CLASSES, coverage, describeFailure, type Outcome, runBoth, shrink } from './differential.js';
import { rerun } from './oracle.js';
import type { Scenario, SupNode, TreeNode, WorkerNode } from './scenario.js';
import { sampleScenarios } from './scenario.js';
import {
  firstDifference,
  sideBySide,
  withDynamicStopsSorted,
  withoutStopsAfterFailedStarts,
} from './traces.js';

const SEED = integerFromEnv('OTP_SEED', 20260310);
const COUNT = integerFromEnv('OTP_SCENARIOS', 300);
const replay = `OTP_SEED=${SEED} OTP_SCENARIOS=${COUNT} npx vitest run test/otp`;
/** Each scenario takes a few milliseconds on Troupe; OTP runs a batch in about its longest scenario. */
const TIMEOUT_MS = Math.max(300_000, COUNT * 100);

describe('supervision against real Erlang/OTP', () => {
  it(
    `agrees with OTP on ${COUNT} random scenarios (seed ${SEED})`,
    async () => {
      const outcomes = await runBoth(sampleScenarios(SEED, COUNT));
      const failures = outcomes.filter((o) => !o.agree);
      if (failures.length > 0) {
        const smallest = await shrink(failures[0]!);
        throw new Error(
          [
            `${failures.length} of ${COUNT} scenarios disagree with Erlang/OTP (seed ${SEED}; replay: ${replay})`,
            describeFailure(failures[0]!, `first disagreement, ${failures[0]!.scenario.id}:`),
            describeFailure(smallest, 'shrunk to:'),
          ].join('\n\n'),
        );
      }
      const counts = coverage(outcomes);
      const table = CLASSES.map((c) => `${String(counts[c]).padStart(5)}  ${c}`).join('\n');
      const again = rerun > 0 ? ` (${rerun} run again on OTP after overrunning their second)` : '';
      console.info(
        `supervision vs Erlang/OTP: ${COUNT}/${COUNT} scenarios agree (seed ${SEED})${again}\n${table}`,
      );
      // Too few scenarios may miss a class by chance; the default batch covers every one.
      if (COUNT >= 300) {
        const missing = CLASSES.filter((c) => counts[c] === 0);
        expect(missing, `classes no scenario covered (seed ${SEED}):\n${table}`).toEqual([]);
      }
    },
    TIMEOUT_MS,
  );
});

const worker = (name: string): WorkerNode => ({ kind: 'worker', name, restart: 'permanent', failStarts: [] });
const sup = (name: string, children: TreeNode[]): SupNode => ({
  kind: 'sup',
  name,
  restart: 'permanent',
  strategy: 'one_for_one',
  intensity: 0,
  periodSeconds: 5,
  children,
});
const nested = sup('root', [sup('c0', [worker('c0_0'), worker('c0_1')]), worker('c1')]);

/** The three give-up examples of issue 10, with the traces Troupe gave before the fix. */
const examples: { scenario: Scenario; otp: string; oldTroupe: string; partAt: number }[] = [
  {
    scenario: {
      id: 'e1',
      root: sup('root', [worker('c0'), worker('c1')]),
      steps: [{ op: 'crash', target: 'c0' }],
    },
    otp: '+c0 +c1 crash:c0 -c0! -c1 X',
    oldTroupe: '+c0 +c1 crash:c0 -c1 -c0! X',
    partAt: 3,
  },
  {
    scenario: { id: 'e2', root: nested, steps: [{ op: 'crash', target: 'c0_1' }] },
    otp: '+c0_0 +c0_1 +c1 crash:c0_1 -c0_1! -c0_0 -c1 X',
    oldTroupe: '+c0_0 +c0_1 +c1 crash:c0_1 -c1 -c0_1! -c0_0 X',
    partAt: 4,
  },
  {
    scenario: { id: 'e3', root: nested, steps: [{ op: 'exit', target: 'c0_0' }] },
    otp: '+c0_0 +c0_1 +c1 exit:c0_0 -c0_0! -c0_1 -c1 X',
    oldTroupe: '+c0_0 +c0_1 +c1 exit:c0_0 -c0_0! -c1 -c0_1 X',
    partAt: 5,
  },
];

describe('the give-up examples of issue 10', () => {
  let outcomes: Outcome[];
  beforeAll(async () => {
    outcomes = await runBoth(examples.map((e) => e.scenario));
  }, 60_000);

  it('come out of Erlang/OTP and of Troupe as the issue gives them for OTP', () => {
    for (const [i, example] of examples.entries()) {
      expect(outcomes[i]!.otp.join(' '), example.scenario.id).toBe(example.otp);
      expect(outcomes[i]!.troupe.trace.join(' '), example.scenario.id).toBe(example.otp);
    }
  });

  it("catch a broken system: Troupe's old give-up order disagrees with OTP's traces", () => {
    for (const [i, example] of examples.entries()) {
      const old = example.oldTroupe.split(' ');
      expect(firstDifference(outcomes[i]!.otp, old), example.scenario.id).toBe(example.partAt);
      expect(sideBySide(outcomes[i]!.otp, old)).toContain(`>>  ${outcomes[i]!.otp[example.partAt]}`);
    }
  });
});

describe('the differential check', () => {
  it('finds, shrinks and prints a disagreement of a Troupe that allows one restart fewer than asked', async () => {
    const lowered = (node: TreeNode): TreeNode =>
      node.kind === 'worker'
        ? node
        : node.kind === 'dyn'
          ? { ...node, intensity: Math.max(0, node.intensity - 1) }
          : { ...node, intensity: Math.max(0, node.intensity - 1), children: node.children.map(lowered) };
    const broken = (s: Scenario): Scenario => ({ ...s, root: lowered(s.root) as SupNode });
    // A fixed seed, whatever OTP_SEED is; scenarios without waits keep each OTP batch of the shrinker short.
    const scenarios = sampleScenarios(20260310, 60).filter((s) =>
      s.steps.every((step) => step.op !== 'wait'),
    );
    const failures = (await runBoth(scenarios, broken)).filter((o) => !o.agree);
    expect(failures.length).toBeGreaterThan(0);
    const smallest = await shrink(failures[0]!, broken);
    const report = describeFailure(smallest, 'shrunk to:');
    expect(report).toContain('Erlang/OTP');
    expect(report).toMatch(/^>> /m);
    // One crash that OTP's supervisor has room for and the broken one has not.
    expect(smallest.scenario.steps).toEqual([{ op: 'crash', target: expect.any(String) }]);
    expect(smallest.otp.at(-1)).not.toBe('X');
    expect(smallest.troupe.trace.at(-1)).toBe('X');
  }, 120_000);

  it('maps only the documented deviations', () => {
    // Troupe runs postStop after a failed preStart; OTP calls no terminate after a failed init.
    expect(withoutStopsAfterFailedStarts(['+a!', '-a', '+a', '-a!', '+a'])).toEqual([
      '+a!',
      '+a',
      '-a!',
      '+a',
    ]);
    // OTP stops a simple_one_for_one supervisor's children at once; a crashed one has stopped before.
    expect(withDynamicStopsSorted(['-c0_d1!', '-c0_d3', '-c0_d2', '-c1', '-c0_d0'])).toEqual([
      '-c0_d1!',
      '-c0_d2',
      '-c0_d3',
      '-c1',
      '-c0_d0',
    ]);
    expect(firstDifference(['-c0_d0', '-c0_d1'], ['-c0_d1', '-c0_d0'])).toBe(-1);
    expect(firstDifference(['-c0', '-c1'], ['-c1', '-c0'])).toBe(0);
    expect(firstDifference(['-c0_d0!', '-c0_d1'], ['-c0_d1', '-c0_d0!'])).toBe(0);
  });
});

function integerFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0)
    throw new Error(`${name} must be a whole number >= 0, not ${raw}`);
  return value;
}
