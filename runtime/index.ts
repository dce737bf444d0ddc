/**
 * The runtime: actor systems, refs, behaviours, mailboxes, timers and the supervision engine.
 * @packageDocumentation
 */
export type {
  ActorContext,
  ActorRef,
  ActorStatus,
  ActorSystem,
  AskOptions,
  Behavior,
  BehaviorDefinition,
  Capabilities,
  DrainOptions,
  ExitReason,
  Handlers,
  MailboxOptions,
  MemberInfo,
  MessageInfo,
  Middleware,
  RouteTask,
  SpawnOptions,
  SystemStatus,
  TellOptions,
  Timers,
  TreeNode,
} from './api.js';
export { behavior } from './behavior.js';
export { type Clock, every, realClock, type SleepOptions, sleep, type TimerHandle } from './clock.js';
export type {
  ActivationPolicy,
  ClusterStore,
  KeyRules,
  KindOptions,
  MemberState,
} from './cluster-types.js';
export type {
  DeadLetterEvent,
  DeadLetterReason,
  KernelEvents,
  PublishedEvent,
  PublishedEventType,
  SystemEvent,
  SystemEventOf,
  SystemEventType,
  TroupeEvents,
} from './events.js';
export type { IngressResult } from './ingress.js';
export { deliverFromBoundary } from './kernel.js';
export {
  type NatsTransportOptions,
  natsTransport,
  type RemoveClusterStateOptions,
  type RemovedClusterState,
  removeClusterState,
} from './nats.js';
export { type SystemOptions, systemDefaults } from './options.js';
export { type Random, realRandom, seededRandom } from './random.js';
export {
  type Backoff,
  backoffDelay,
  exponential,
  type RetryingOptions,
  retrying,
} from './retry.js';
export {
  type RestartPolicy,
  type RestartType,
  restartPolicyDefaults,
  type Strategy,
} from './supervision.js';
export { createNode, createSystem } from './system.js';
export {
  type Frame,
  type InProcessNetwork,
  inProcessNetwork,
  type Transport,
  type TransportSink,
} from './transport.js';
