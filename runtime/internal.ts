/**
 * The runtime's internal face: kernel hooks that the layers above need to build supervisors and
 * persistent actors (run in an actor's system lane, start and stop child slots, a named actor's
 * fence) and gateways that answer an ask later (`detachReply`). It is not part of the package's
 * exports (`troupe/runtime` is the public face); the layer check lets the layers above import it,
 * and nothing else.
 * @packageDocumentation
 */
export { type Decider, supervisingBehavior } from './kernel/behavior.js';
export { closeableOnce } from './kernel/closeable.js';
export {
  activationFence,
  checkSpawnOptions,
  childNamed,
  childSlots,
  crashActor,
  type DetachedReply,
  deleteChildSlot,
  describe,
  detachReply,
  localActor,
  ownBehavior,
  restartChildSlot,
  spawnAndStart,
  stopActor,
  stopChildSlot,
  withContext,
} from './kernel/hooks.js';
export {
  type SystemReadiness,
  type SystemStats,
  systemReadiness,
  systemStats,
} from './kernel/readiness.js';
export { type HandlerSpan, installTracing, type KernelTracer } from './kernel/tracing.js';
