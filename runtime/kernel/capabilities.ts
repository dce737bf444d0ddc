import type { RouteTask } from './api.js';
import type { Cell } from './cell.js';

/**
 * A live actor's score for `task` from its behaviour's `capabilities` (undefined: it cannot take
 * it). A scoring function that throws counts as "cannot", and is reported like any defect.
 * `system.route` and the capability router both choose by it.
 */
export function capabilityScore(cell: Cell, task: RouteTask): number | undefined {
  const capabilities = cell.behavior.definition.capabilities;
  if (capabilities === undefined) return undefined;
  let score: number | undefined;
  try {
    score = typeof capabilities === 'function' ? capabilities(task) : capabilities[task.capability];
  } catch (error) {
    cell.system.reportDefect(cell.address, error);
    return undefined;
  }
  return typeof score === 'number' && score > 0 ? score : undefined;
}
