/** The state of one run of a workload, kept with the run's context. */
import type { SimContext } from '../sim/simulate.js';

/**
 * A function giving each run its own state, made by `make` on the run's first call and found again
 * by the run's context after that. One workload object serves several runs (`checkChaos`'s seeds,
 * `shrink`'s tries, a test that runs it twice): state kept in the workload's closure would carry one
 * run's work into the next, so the same seed would no longer give the same history.
 */
export function perRun<S>(make: (ctx: SimContext) => S): (ctx: SimContext) => S {
  const states = new WeakMap<SimContext, S>();
  return (ctx) => {
    let state = states.get(ctx);
    if (state === undefined) {
      state = make(ctx);
      states.set(ctx, state);
    }
    return state;
  };
}
