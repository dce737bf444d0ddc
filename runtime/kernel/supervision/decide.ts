/**
 * The supervisor's decisions, apart from the mechanics that carry them out (the cell takes children
 * down, brings them up and stops them). Pure: what happens to a child that exited follows from its
 * restart type, how it exited, the supervisor's policy and its restart window.
 */
import type { Random } from '../../time/random.js';
import { backoffDelay } from '../../time/retry.js';
import { type RestartPolicy, type RestartType, recordRestart } from './policy.js';

/** What a supervisor does about one child's exit. */
export type ExitDecision =
  /** Not restarted: stop it if it crashed, and drop (or, for a kept slot, keep) its slot. */
  | { readonly action: 'retire' }
  /** Restart `group` (indexes into the children, in start order) after `delayMs`. */
  | { readonly action: 'restart'; readonly group: readonly number[]; readonly delayMs: number }
  /** Past the restart intensity: the supervisor gives up. */
  | { readonly action: 'give-up' };

/** What a supervisor knows of the exit it decides on. */
export interface ExitFacts {
  readonly restart: RestartType;
  /** The exit was normal: no error, or a supervisor's give-up, which OTP reports as `shutdown`. */
  readonly normal: boolean;
  /** The exited child's index among the children, in start order, and how many there are. */
  readonly index: number;
  readonly count: number;
}

/**
 * Decides on a child's exit under OTP's rules: temporary children and normal exits of transient ones
 * are not restarted; otherwise the restart is recorded in `restartLog` (mutated) and, within the
 * intensity, the strategy's group restarts after the backoff; past it, the supervisor gives up.
 */
export function decideExit(
  facts: ExitFacts,
  policy: RestartPolicy,
  restartLog: number[],
  now: number,
  random: Random,
): ExitDecision {
  if (facts.restart === 'temporary' || (facts.restart === 'transient' && facts.normal)) {
    return { action: 'retire' };
  }
  if (!recordRestart(restartLog, now, policy)) return { action: 'give-up' };
  return {
    action: 'restart',
    group: restartGroup(policy.strategy, facts.index, facts.count),
    delayMs: backoffDelay(policy.backoff, restartLog.length, random),
  };
}

/**
 * The children restarted with the one at `index`: itself (`one_for_one`), all (`one_for_all`), or
 * itself and those started after it (`rest_for_one`).
 */
export function restartGroup(strategy: RestartPolicy['strategy'], index: number, count: number): number[] {
  const from = strategy === 'one_for_all' ? 0 : index;
  const to = strategy === 'one_for_one' ? index + 1 : count;
  const group: number[] = [];
  for (let i = from; i < to; i++) group.push(i);
  return group;
}
