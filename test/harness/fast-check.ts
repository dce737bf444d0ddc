/** Seeds for the property tests: fixed or random, always printed on failure so a run can be replayed. */
import fc from 'fast-check';

/** `FC_SEED` when set (to replay a failure), else `fallback`. */
export function propertySeed(fallback: number): number {
  return Number(process.env.FC_SEED ?? fallback);
}

/**
 * fast-check parameters that run `numRuns` cases from `seed` and, on failure, throw fast-check's
 * report followed by the seed and the command that replays it.
 */
export function seeded<T>(name: string, seed: number, numRuns: number): fc.Parameters<T> {
  return {
    seed,
    numRuns,
    reporter: (details) => {
      if (details.failed) {
        throw new Error(
          `${fc.defaultReportMessage(details) ?? 'failed'}\n${name} failed with seed ${seed} (FC_SEED=${seed} to replay)`,
        );
      }
    },
  };
}
