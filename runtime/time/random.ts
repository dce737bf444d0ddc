import { invalidOption } from '../../protocols/index.js';

/**
 * A source of uniform random numbers in [0, 1), shaped like `Math.random`. Backoff jitter, the
 * retries of every layer and the ids a node draws read the system's (its `random` option), so one
 * seed makes a run repeatable.
 */
export type Random = () => number;

/** The real random source: `Math.random`. The one place the runtime reads it. */
export const realRandom: Random = Math.random;

/**
 * A seeded random source (Mulberry32: a small, fast, well-known 32-bit generator; not for secrets).
 * The same seed gives the same sequence on every platform.
 * @throws TroupeError `ERR_INVALID_OPTION` when `seed` is not a finite number (it is taken modulo 2^32).
 * @example
 * ```ts
 * const system = createSystem({ clock: new SimulatedClock(), random: seededRandom(42) });
 * ```
 */
export function seededRandom(seed: number): Random {
  if (typeof seed !== 'number' || !Number.isFinite(seed))
    throw invalidOption('seed', 'must be a finite number', seed);
  let state = Math.trunc(seed) | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
