/**
 * Supervisors: OTP supervisors with static children, dynamic supervisors, and restart policies;
 * bulkheads and retries. (Circuit breakers and budgets join this layer with the agents issue.)
 * @packageDocumentation
 */
export { type Bulkhead, type BulkheadCallOptions, type BulkheadOptions, bulkhead } from './bulkhead.js';
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
