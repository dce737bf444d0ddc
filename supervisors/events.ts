/**
 * The events of the guards (breakers, bulkheads, budgets) on the system's stream. They are declared
 * here, by augmenting the runtime's `TroupeEvents`, so the kernel knows nothing of guards; a guard
 * given a `system` publishes them with `system.publish`.
 */
import { invalidOption } from '../protocols/index.js';
import type { ActorSystem, Clock, PublishedEvent, Random, SystemEventOf } from '../runtime/index.js';

/** The states of a circuit breaker. */
export type BreakerState = 'closed' | 'open' | 'half-open';

declare module '../runtime/index.js' {
  interface TroupeEvents {
    /** A circuit breaker changed state: closed → open → half-open → closed (or open again). */
    'breaker-transition': {
      readonly breaker: string;
      readonly from: BreakerState;
      readonly to: BreakerState;
    };
    /** A breaker's `onTransition` listener threw; the breaker went on. */
    'breaker-listener-failed': {
      readonly breaker: string;
      readonly from: BreakerState;
      readonly to: BreakerState;
      readonly error: Error;
    };
    /** A bulkhead refused a call with `ERR_BULKHEAD_FULL`: every slot was taken and its queue was full. */
    'bulkhead-rejected': {
      readonly bulkhead: string;
      /** Calls running when it refused (`maxConcurrent` of them). */
      readonly active: number;
      /** Calls waiting when it refused (`maxQueue` of them). */
      readonly queued: number;
      readonly maxConcurrent: number;
      readonly maxQueue: number;
    };
    /**
     * A budget refused a call's reservation with `ERR_BUDGET_EXCEEDED`: the scope's `limit` cannot
     * cover what the call `needed` on top of what it has `used`.
     */
    'budget-exhausted': {
      readonly scope: string;
      /** The agent (an address) whose call was refused. */
      readonly agent: string;
      readonly limit: 'tokens' | 'costUsd' | 'calls';
      readonly max: number;
      readonly used: number;
      readonly needed: number;
    };
  }
}

/** A circuit breaker changed state. */
export type BreakerTransitionEvent = SystemEventOf<'breaker-transition'>;
/** A bulkhead refused a call. */
export type BulkheadRejectedEvent = SystemEventOf<'bulkhead-rejected'>;
/** A budget refused a call. */
export type BudgetExhaustedEvent = SystemEventOf<'budget-exhausted'>;

/** Where a guard publishes its events: an actor system (or anything with its `publish`). */
export type EventSink = Pick<ActorSystem, 'publish'> & {
  readonly clock?: Clock;
  readonly random?: Random;
};

/**
 * Checks a guard's `system` option.
 * @throws TroupeError `ERR_INVALID_OPTION` when it is given and has no `publish` method.
 */
export function checkSink(system: unknown): void {
  if (system !== undefined && typeof (system as EventSink | null)?.publish !== 'function')
    throw invalidOption('system', 'must have a publish method (an actor system)', system);
}

/**
 * Publishes a guard's event on `system`, if there is one. Guards publish in the middle of their
 * callers' calls (a breaker inside opossum's callbacks), so a publisher that throws must not break
 * them: the console, the one place left, gets its failure.
 */
export function publishGuardEvent(system: EventSink | undefined, event: PublishedEvent): void {
  if (system === undefined) return;
  try {
    system.publish(event);
  } catch (error) {
    console.error(`troupe: publishing a "${event.type}" event threw`, error);
  }
}
