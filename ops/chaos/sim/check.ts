import { TroupeError } from '../../../protocols/index.js';
import type { Plan, PlanInput } from '../plan/index.js';
import { shrink } from './shrink.js';
import { type SimResult, type SimulateOptions, simulate } from './simulate.js';

/** Options of {@link checkChaos}. */
export interface CheckChaosOptions extends SimulateOptions {
  /** Seeds to run the plan with (its own seed when absent). */
  readonly seeds?: readonly number[];
  /** Shrink a failing schedule before reporting it. Defaults to true. */
  readonly shrink?: boolean;
  /** Runs allowed for shrinking. Defaults to 30. */
  readonly maxShrinkRuns?: number;
  /** Whether `unknown` verdicts fail too. Defaults to false. */
  readonly strict?: boolean;
}

/**
 * A chaos test in one call, for any test runner: runs the plan in simulation for each seed and
 * resolves with the results when every checker holds. When one does not, it shrinks the fault
 * schedule and rejects with `ERR_ILLEGAL_STATE` whose message names the seed, the broken checkers
 * with their operations, and the minimal schedule, ready to replay.
 * @example
 * ```ts
 * it('registers stay linearizable', () =>
 *   checkChaos({ name: 'reg', seed: 1, durationMs: 30_000, nodes: ['a', 'b', 'c'], workload: { name: 'register' },
 *     faults: { count: 6, kinds: ['partition', 'crash-node'] } }, { workload: registerWorkload(), seeds: [1, 2, 3] }), 60_000);
 * ```
 */
export async function checkChaos(plan: PlanInput | Plan, options: CheckChaosOptions): Promise<SimResult[]> {
  const results: SimResult[] = [];
  const seeds = options.seeds ?? [plan.seed];
  for (const seed of seeds) {
    const seeded = { ...plan, seed };
    const result = await simulate(seeded, options);
    results.push(result);
    const failed = result.verdict === 'violated' || (options.strict === true && result.verdict === 'unknown');
    if (!failed) continue;
    const broken = result.verdicts
      .filter((v) => v.verdict !== 'ok')
      .map(
        (v) =>
          `  ${v.checker}: ${v.verdict}: ${v.message}${v.ops.length > 0 ? `\n    ops: ${JSON.stringify(v.ops.slice(0, 6))}` : ''}`,
      );
    let schedule = `faults: ${JSON.stringify(result.schedule)}`;
    if (options.shrink !== false) {
      const shrunk = await shrink(seeded, {
        ...options,
        faults: result.schedule,
        maxRuns: options.maxShrinkRuns ?? 30,
        fails: (r) => r.verdict === 'violated' || (options.strict === true && r.verdict === 'unknown'),
      });
      if (shrunk !== undefined) schedule = `shrunk to ${shrunk.summary}`;
    }
    throw new TroupeError(
      'ERR_ILLEGAL_STATE',
      `chaos plan "${seeded.name}" failed with seed ${seed}:\n${broken.join('\n')}\n${schedule}`,
      {
        details: { seed, verdicts: result.verdicts.map((v) => ({ checker: v.checker, verdict: v.verdict })) },
      },
    );
  }
  return results;
}
