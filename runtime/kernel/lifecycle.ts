/**
 * The lifecycles of the kernel's resources, one named set of states per kind. States only move
 * forward (an actor's restart goes back to `Starting`); the numbers order them, so "stopping or later"
 * is `>= Stopping`. The kernel reads them on every message, hence numbers rather than tagged objects;
 * what users see are the names (`ActorStatus`, `SystemStatus`).
 */

/** An actor's lifecycle. */
export const ActorLifecycle = {
  Starting: 0,
  Running: 1,
  /** Crashed, waiting for its supervisor's decision. */
  Suspended: 2,
  /** Taken down for a restart (its backoff may be running). */
  Restarting: 3,
  Stopping: 4,
  Stopped: 5,
} as const;
export type ActorLifecycle = (typeof ActorLifecycle)[keyof typeof ActorLifecycle];

/** A system's lifecycle. */
export const SystemLifecycle = {
  Running: 0,
  /** Refusing new messages from outside while mailboxes empty. */
  Draining: 1,
  /** Stopping the tree. */
  Stopping: 2,
  Stopped: 3,
} as const;
export type SystemLifecycle = (typeof SystemLifecycle)[keyof typeof SystemLifecycle];
