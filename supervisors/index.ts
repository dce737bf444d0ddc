/**
 * Supervisors: OTP supervisors with static children, dynamic supervisors, and restart policies;
 * the guards of calls out of the process: circuit breakers, bulkheads, retries, deadlines, budgets.
 * @packageDocumentation
 */

// `sleep` is the runtime's; it is still exported here, where earlier versions had it.
export { sleep } from '../runtime/index.js';
export { type Breaker, type BreakerOptions, breaker, breakerDefaults } from './breaker.js';
export {
  type BudgetLimits,
  type BudgetOptions,
  type Budgets,
  type CallCost,
  createBudgets,
  inSubtree,
  type Reservation,
  type Spend,
} from './budget.js';
export { type Bulkhead, type BulkheadCallOptions, type BulkheadOptions, bulkhead } from './bulkhead.js';
export { type DeadlineOptions, withDeadline } from './deadline.js';
export type {
  BreakerState,
  BreakerTransitionEvent,
  BudgetExhaustedEvent,
  BulkheadRejectedEvent,
  EventSink,
} from './events.js';
export { type Guard, type GuardCallOptions, type GuardOptions, guard } from './guard.js';
export { notSent, parseRetryAfter, type RetryOptions, retry, retryDefaults } from './retry.js';
export {
  type ChildInfo,
  type ChildSpec,
  childState,
  type DynamicSupervisorOptions,
  deleteChild,
  dynamicSupervisor,
  restartChild,
  type SupervisorOptions,
  SupervisorProtocol,
  type SupervisorRef,
  startChild,
  supervisor,
  supervisorDefaults,
  terminateChild,
} from './supervisor.js';
