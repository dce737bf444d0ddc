/**
 * The test kit: a simulated clock and helpers that wait for a system to settle.
 * @packageDocumentation
 */
import type { ActorSystem } from '../api.js';

export { flushMicrotasks, SimulatedClock } from './clock.js';

/**
 * Resolves once `system` has no queued message and no async work in progress (pending timers aside).
 * With a `SimulatedClock`, call it after `advance()` to let the consequences play out.
 */
export function settle(system: ActorSystem): Promise<void> {
  const idle = (system as unknown as { idle?: () => Promise<void> }).idle;
  if (typeof idle !== 'function') throw new TypeError('settle() needs a system made by createSystem()');
  return idle.call(system);
}
