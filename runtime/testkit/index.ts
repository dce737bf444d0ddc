/**
 * The test kit: a simulated clock and helpers that wait for a system to settle.
 * @packageDocumentation
 */
import { TroupeError } from '../../protocols/index.js';
import type { ActorSystem } from '../kernel/api.js';

export { flushMicrotasks, SimulatedClock, type SimulatedClockOptions } from './clock.js';

/**
 * Resolves once `system` has no queued message and no async work in progress (pending timers aside).
 * With a `SimulatedClock`, call it after `advance()` to let the consequences play out.
 */
export function settle(system: ActorSystem): Promise<void> {
  const idle = (system as unknown as { idle?: () => Promise<void> }).idle;
  if (typeof idle !== 'function') {
    throw new TroupeError('ERR_INVALID_OPTION', 'settle() needs a system made by createSystem()', {
      details: { option: 'system', value: system },
    });
  }
  return idle.call(system);
}
