/**
 * The runtime: actor systems, refs, behaviours, mailboxes, timers and the supervision engine.
 * @packageDocumentation
 */

export type { GroupChange, GroupLeaveReason } from './groups/events.js';
export {
  type HostPort,
  type IsolatedSpec,
  type IsolationOptions,
  type IsolationPool,
  type IsolationPoolOptions,
  isolated,
  isolatedDefaults,
  isolationPool,
  type MessagePortTransport,
  type MessagePortTransportOptions,
  messagePortTransport,
  type ProcessPermissions,
  type ResolvedIsolationOptions,
  startIsolated,
} from './isolation/index.js';
export type {
  AcceptingKeys,
  ActorContext,
  ActorRef,
  ActorStatus,
  ActorSystem,
  AskOptions,
  Behavior,
  BehaviorDefinition,
  Capabilities,
  Closeable,
  DrainOptions,
  ExitReason,
  Groups,
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
  Topic,
  TreeNode,
} from './kernel/api.js';
export { behavior } from './kernel/behavior.js';
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
} from './kernel/events.js';
export { deliverFromBoundary } from './kernel/hooks.js';
export { type SystemOptions, systemDefaults } from './kernel/options.js';
export {
  type RestartPolicy,
  type RestartType,
  restartPolicyDefaults,
  type Strategy,
} from './kernel/supervision/policy.js';
export { createSystem } from './kernel/system.js';
export {
  type ClusterMembership,
  type ClusterMembershipOptions,
  clusterMembership,
  type MembershipEntry,
  type RemoveClusterStateOptions,
  type RemovedClusterState,
  removeClusterState,
} from './nats/cluster-state.js';
export { type NatsTransportOptions, natsTransport } from './nats/transport.js';
export type {
  ActivationPolicy,
  ClusterStore,
  KeyRules,
  KindOptions,
  MemberState,
} from './remoting/cluster-types.js';
export { type InProcessNetwork, inProcessNetwork } from './remoting/in-process.js';
export type { IngressResult } from './remoting/ingress.js';
export { createNode } from './remoting/node.js';
export type { Frame, Transport, TransportSink } from './remoting/transport.js';
export {
  byCapability,
  consistentHash,
  leastBusy,
  type RouteContext,
  type RoutedMessage,
  type RouteOptions,
  type Router,
  type RouterMembers,
  type RoutingStrategy,
  randomly,
  roundRobin,
  router,
  type ScatterOptions,
  type ScatterResult,
  type ScatterWant,
} from './routers/router.js';
export { type Clock, every, realClock, type SleepOptions, sleep, type TimerHandle } from './time/clock.js';
export { type Random, realRandom, seededRandom } from './time/random.js';
export {
  type Backoff,
  backoffDelay,
  exponential,
  type RetryingOptions,
  retrying,
} from './time/retry.js';
