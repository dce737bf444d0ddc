/**
 * Shrinking a failing fault schedule: drop faults (halves first, then one at a time), then shorten
 * the ones left, keeping each change only while the run still fails. Every try is a whole
 * simulated run with the same seed, so what is left is a minimal schedule that fails.
 */
import { describeFault, type Fault, type Plan, type PlanInput, parsePlan, schedule } from '../plan/index.js';
import { type SimResult, type SimulateOptions, simulate } from './simulate.js';

/** Options of {@link shrink}. */
export interface ShrinkOptions extends Omit<SimulateOptions, 'faults'> {
  /** Most runs to try. Defaults to 40. */
  readonly maxRuns?: number;
  /** Whether a result still fails. Defaults to: its verdict is `violated`. */
  readonly fails?: (result: SimResult) => boolean;
  /** Told of each try. */
  readonly onTry?: (faults: readonly Fault[], failed: boolean) => void;
}

/** What {@link shrink} found. */
export interface ShrinkResult {
  readonly seed: number;
  /** The smallest failing schedule found. */
  readonly faults: readonly Fault[];
  /** The run of that schedule. */
  readonly result: SimResult;
  readonly runs: number;
  /** Seed and schedule, for a person to replay (`troupe chaos run --seed N` with these faults). */
  readonly summary: string;
}

/**
 * Shrinks the schedule of a plan whose run fails (with `options.faults`, or the plan's own).
 * Resolves undefined when the full schedule does not fail.
 */
export async function shrink(
  planInput: PlanInput | Plan,
  options: ShrinkOptions & { readonly faults?: readonly Fault[] },
): Promise<ShrinkResult | undefined> {
  const plan = parsePlan(planInput);
  const fails = options.fails ?? ((r: SimResult) => r.verdict === 'violated');
  const maxRuns = options.maxRuns ?? 40;
  let runs = 0;
  const attempt = async (faults: readonly Fault[]): Promise<SimResult | undefined> => {
    runs++;
    const result = await simulate(plan, { ...options, faults });
    const failed = fails(result);
    options.onTry?.(faults, failed);
    return failed ? result : undefined;
  };
  let current = [...(options.faults ?? schedule(plan))];
  let best = await attempt(current);
  if (best === undefined) return undefined;
  // Drop chunks, from halves down to single faults (ddmin).
  let chunk = Math.max(1, Math.floor(current.length / 2));
  while (chunk >= 1 && runs < maxRuns && current.length > 0) {
    let removed = false;
    for (let i = 0; i < current.length && runs < maxRuns; ) {
      const candidate = [...current.slice(0, i), ...current.slice(i + chunk)];
      const result = await attempt(candidate);
      if (result !== undefined) {
        current = candidate;
        best = result;
        removed = true;
      } else i += chunk;
    }
    if (!removed || chunk > 1) chunk = Math.floor(chunk / 2);
  }
  // Shorten what is left.
  for (let i = 0; i < current.length && runs < maxRuns; i++) {
    const fault = current[i]!;
    if (!('durationMs' in fault) || fault.durationMs === undefined || fault.durationMs < 2) continue;
    const candidate = [...current];
    candidate[i] = { ...fault, durationMs: Math.floor(fault.durationMs / 2) } as Fault;
    const result = await attempt(candidate);
    if (result !== undefined) {
      current = candidate;
      best = result;
      i--;
    }
  }
  const summary = [
    `seed ${plan.seed}, ${current.length} fault(s) left after ${runs} run(s):`,
    ...current.map((f) => `  ${describeFault(f)}`),
    `faults: ${JSON.stringify(current)}`,
  ].join('\n');
  return { seed: plan.seed, faults: current, result: best, runs, summary };
}
