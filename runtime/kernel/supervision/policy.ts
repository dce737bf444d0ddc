import { invalidOption } from '../../../protocols/index.js';
import { type Backoff, resolveBackoff } from '../../time/retry.js';

/**
 * When a supervisor restarts a child (OTP restart types):
 * `permanent` always; `transient` only after a crash; `temporary` never.
 */
export type RestartType = 'permanent' | 'transient' | 'temporary';

/** Which children restart when one fails (OTP strategies). */
export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';

/** How an actor supervises its children. Policies are data. */
export interface RestartPolicy {
  readonly strategy: Strategy;
  /** Most restarts allowed within `periodMs`; one more makes the supervisor fail upward. */
  readonly intensity: number;
  readonly periodMs: number;
  /** Delay before restarting; none by default (OTP restarts at once). */
  readonly backoff: Backoff | undefined;
}

/** Defaults of {@link RestartPolicy}: one_for_one, at most 10 restarts in 10 seconds, no backoff. */
export const restartPolicyDefaults: RestartPolicy = {
  strategy: 'one_for_one',
  intensity: 10,
  periodMs: 10_000,
  backoff: undefined,
};

const STRATEGIES: readonly Strategy[] = ['one_for_one', 'one_for_all', 'rest_for_one'];
const RESTART_TYPES: readonly RestartType[] = ['permanent', 'transient', 'temporary'];

/**
 * Resolves a partial policy over `base`.
 * @throws TroupeError `ERR_INVALID_OPTION` for an unknown strategy or a negative intensity/period.
 */
export function resolveRestartPolicy(
  partial: Partial<RestartPolicy> | undefined,
  base: RestartPolicy = restartPolicyDefaults,
  where = 'supervision',
): RestartPolicy {
  if (partial === undefined) return base;
  if (typeof partial !== 'object' || partial === null)
    throw invalidOption(where, 'must be an object', partial);
  const policy = { ...base, ...partial };
  if (!STRATEGIES.includes(policy.strategy)) {
    throw invalidOption(
      `${where}.strategy`,
      `unknown strategy; use one of ${STRATEGIES.join(', ')}`,
      policy.strategy,
    );
  }
  if (!Number.isInteger(policy.intensity) || policy.intensity < 0) {
    throw invalidOption(`${where}.intensity`, 'must be an integer >= 0', policy.intensity);
  }
  if (!Number.isFinite(policy.periodMs) || policy.periodMs <= 0) {
    throw invalidOption(`${where}.periodMs`, 'must be a number > 0', policy.periodMs);
  }
  const backoff =
    policy.backoff === undefined ? undefined : resolveBackoff(policy.backoff, `${where}.backoff`);
  return { strategy: policy.strategy, intensity: policy.intensity, periodMs: policy.periodMs, backoff };
}

/** @throws TroupeError `ERR_INVALID_OPTION` for an unknown restart type. */
export function resolveRestartType(value: unknown, where = 'restart'): RestartType {
  if (!RESTART_TYPES.includes(value as RestartType)) {
    throw invalidOption(where, `unknown restart type; use one of ${RESTART_TYPES.join(', ')}`, value);
  }
  return value as RestartType;
}

/**
 * Records restarts and answers whether one more stays within the intensity (OTP's rule: keep restarts
 * at or after `now - periodMs`; more than `intensity` of them means the supervisor gives up).
 */
export function recordRestart(
  log: number[],
  now: number,
  policy: Pick<RestartPolicy, 'intensity' | 'periodMs'>,
): boolean {
  const threshold = now - policy.periodMs;
  let keep = 0;
  while (keep < log.length && log[keep]! < threshold) keep++;
  if (keep > 0) log.splice(0, keep);
  log.push(now);
  return log.length <= policy.intensity;
}
