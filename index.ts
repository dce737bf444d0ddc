/**
 * Troupe: an actor-model runtime for AI agents. This entry re-exports the public faces of each layer.
 * The runtime's kernel hooks for building supervisors are internal (`runtime/internal.ts`), in no export.
 * @packageDocumentation
 */

export * from './agents/index.js';
export * from './memory/index.js';
export * from './protocols/index.js';
export type {
  ActivationPolicy,
  ActorContext,
  ActorRef,
  ActorStatus,
  ActorSystem,
  AskOptions,
  Backoff,
  Behavior,
  BehaviorDefinition,
  Capabilities,
  Clock,
  ClusterStore,
  DeadLetterEvent,
  DeadLetterReason,
  DrainOptions,
  ExitReason,
  Frame,
  Handlers,
  IngressResult,
  InProcessNetwork,
  KeyRules,
  KindOptions,
  MailboxOptions,
  MemberInfo,
  MemberState,
  MessageInfo,
  Middleware,
  NatsTransportOptions,
  RemoveClusterStateOptions,
  RemovedClusterState,
  RestartPolicy,
  RestartType,
  RouteTask,
  SpawnOptions,
  Strategy,
  SystemEvent,
  SystemEventType,
  SystemOptions,
  SystemStatus,
  TellOptions,
  TimerHandle,
  Timers,
  Transport,
  TransportSink,
  TreeNode,
} from './runtime/index.js';
export {
  behavior,
  createNode,
  createSystem,
  deliverFromBoundary,
  exponential,
  inProcessNetwork,
  natsTransport,
  realClock,
  removeClusterState,
  restartPolicyDefaults,
  systemDefaults,
} from './runtime/index.js';
export * from './supervisors/index.js';
