import type { Address, TroupeError } from '../../protocols/index.js';

/** Why a message could not be delivered. */
export type DeadLetterReason =
  | 'actor-stopped'
  | 'no-such-actor'
  | 'mailbox-full'
  | 'mailbox-overflow'
  | 'unknown-message'
  | 'malformed'
  | 'expired'
  | 'validation-failed'
  | 'middleware-dropped'
  | 'system-draining'
  | 'system-stopped'
  /** A frame larger than the node accepts arrived from the network. */
  | 'oversize'
  /** The transport could not send it (outage buffer full, or the transport closed). */
  | 'transport-failed'
  /** For a named actor whose key was given up for now, after its activation kept failing. */
  | 'activation-failed'
  /** Its target's node was declared down by the cluster (and not seen again yet). */
  | 'node-down';

/**
 * The kernel's own events, by `type`: the fields each carries besides `type` and `at`. The system
 * emits these itself; they cannot be published with `system.publish`.
 */
export interface KernelEvents {
  'actor-spawned': { readonly address: Address; readonly parent: Address };
  'actor-started': { readonly address: Address };
  'actor-stopped': { readonly address: Address; readonly reason: 'normal' | 'shutdown' | 'crashed' };
  'actor-crashed': {
    readonly address: Address;
    readonly error: Error;
    /** The message being handled when it crashed, if any. */
    readonly message: { readonly type: string; readonly body: unknown } | undefined;
  };
  'actor-restarted': {
    readonly address: Address;
    readonly restarts: number;
    readonly error: Error | undefined;
  };
  'restart-scheduled': {
    readonly supervisor: Address;
    readonly children: readonly Address[];
    readonly delayMs: number;
  };
  /**
   * A defect of the kernel's: a lifecycle hook, a capability score or a callback around an actor
   * threw, or a failure had nobody to go to. Written to `deadLetterLog` while nobody subscribes.
   */
  'hook-failed': { readonly address: Address; readonly error: Error };
  'supervisor-escalated': { readonly address: Address; readonly error: Error };
  /** A message that was not delivered. Nothing is dropped without one. */
  'dead-letter': {
    readonly to: Address;
    readonly from: Address | undefined;
    readonly messageType: string;
    readonly body: unknown;
    readonly reason: DeadLetterReason;
    readonly error: TroupeError | undefined;
  };
  'mailbox-overflow': {
    readonly address: Address;
    readonly policy: 'reject' | 'drop-newest' | 'drop-oldest';
    readonly capacity: number;
  };
  'system-draining': {};
  /** A cluster member was seen for the first time, or again after being suspect. */
  'member-up': { readonly node: string };
  /** A member missed a heartbeat. */
  'member-suspect': { readonly node: string };
  /** A member announced it is leaving: named actors are no longer placed there. */
  'member-leaving': { readonly node: string };
  /** A member is gone: it left, or missed `downAfterMissed` heartbeats. */
  'member-down': { readonly node: string; readonly reason: 'unreachable' | 'left' };
  /**
   * This node has had no heartbeat acknowledged by the cluster store for `silentMs` (one heartbeat
   * short of when the others declare it down): it holds the messages for its named actors until the
   * store answers again and its leases are checked. See `node-unfenced`.
   */
  'node-fenced': { readonly node: string; readonly silentMs: number };
  /**
   * This node reaches the store again and has checked its leases: `leasesLost` activations, whose
   * lease another node took meanwhile, stop; the held messages are routed again.
   */
  'node-unfenced': { readonly node: string; readonly leasesLost: number };
  /** A named actor was activated on this node; `fence` is its lease revision. */
  'activation-started': { readonly address: Address; readonly node: string; readonly fence: number };
  'activation-stopped': {
    readonly address: Address;
    /**
     * `lease-lost`: another node took the lease (after a partition); this activation stopped.
     * `failed`: its key was given up (see `activation-failed`).
     */
    readonly reason: 'passivated' | 'handed-over' | 'stopped' | 'lease-lost' | 'failed';
  };
  /**
   * A named actor's key was given up on this node: its activation kept crashing past its kind's
   * restart policy, or (with `outage: 'fail-fast'`) the journal is unavailable. Its messages are
   * refused with `error` for `quarantineMs`; the next message after that activates it again.
   */
  'activation-failed': {
    readonly address: Address;
    readonly node: string;
    readonly error: TroupeError;
    readonly quarantineMs: number;
  };
  'system-stopped': { readonly error: Error | undefined; readonly drainTimedOut: boolean };
}

/**
 * Every event of a system's stream, by `type`: the kernel's ({@link KernelEvents}), and those of each
 * layer above, which declares its own in its `events.ts` by module augmentation of this interface:
 *
 * ```ts
 * declare module '../index.js' {
 *   interface TroupeEvents {
 *     'breaker-transition': { readonly breaker: string; readonly from: BreakerState; readonly to: BreakerState };
 *   }
 * }
 * ```
 *
 * An application may declare events of its own the same way (`declare module 'troupe/runtime'`) and
 * publish them with `system.publish`. A type names one event kind in the whole program.
 */
export interface TroupeEvents extends KernelEvents {}

/** An event of type `K` as `events$` emits it: its type, the time on the system's clock, its fields. */
export type SystemEventOf<K extends keyof TroupeEvents> = {
  readonly type: K;
  readonly at: number;
} & TroupeEvents[K];

/** Everything that happens in a system, as one typed stream: narrow on `type`. */
export type SystemEvent = { [K in keyof TroupeEvents]: SystemEventOf<K> }[keyof TroupeEvents];

/** The `type` tags of {@link SystemEvent}. */
export type SystemEventType = keyof TroupeEvents;

/** The types of the events layers above the kernel (and applications) publish. */
export type PublishedEventType = Exclude<keyof TroupeEvents, keyof KernelEvents>;

/**
 * An event as its publisher gives it to `system.publish`: its type and fields, without `at`, which
 * the system stamps with its own clock.
 */
export type PublishedEvent = {
  [K in PublishedEventType]: { readonly type: K } & TroupeEvents[K];
}[PublishedEventType];

/** A message that was not delivered. Nothing is dropped without one. */
export type DeadLetterEvent = SystemEventOf<'dead-letter'>;
