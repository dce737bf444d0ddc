import type { Address, ExtensionEvent, TroupeError } from '../protocols/index.js';

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
  | 'activation-failed';

/** A message that was not delivered. Nothing is dropped without one. */
export interface DeadLetterEvent {
  readonly type: 'dead-letter';
  readonly at: number;
  readonly to: Address;
  readonly from: Address | undefined;
  readonly messageType: string;
  readonly body: unknown;
  readonly reason: DeadLetterReason;
  readonly error: TroupeError | undefined;
}

/** Everything that happens in a system, as one typed stream. */
export type SystemEvent =
  | {
      readonly type: 'actor-spawned';
      readonly at: number;
      readonly address: Address;
      readonly parent: Address;
    }
  | { readonly type: 'actor-started'; readonly at: number; readonly address: Address }
  | {
      readonly type: 'actor-stopped';
      readonly at: number;
      readonly address: Address;
      readonly reason: 'normal' | 'shutdown' | 'crashed';
    }
  | {
      readonly type: 'actor-crashed';
      readonly at: number;
      readonly address: Address;
      readonly error: Error;
      /** The message being handled when it crashed, if any. */
      readonly message: { readonly type: string; readonly body: unknown } | undefined;
    }
  | {
      readonly type: 'actor-restarted';
      readonly at: number;
      readonly address: Address;
      readonly restarts: number;
      readonly error: Error | undefined;
    }
  | {
      readonly type: 'restart-scheduled';
      readonly at: number;
      readonly supervisor: Address;
      readonly children: readonly Address[];
      readonly delayMs: number;
    }
  | { readonly type: 'hook-failed'; readonly at: number; readonly address: Address; readonly error: Error }
  | {
      readonly type: 'supervisor-escalated';
      readonly at: number;
      readonly address: Address;
      readonly error: Error;
    }
  | DeadLetterEvent
  | {
      readonly type: 'mailbox-overflow';
      readonly at: number;
      readonly address: Address;
      readonly policy: 'reject' | 'drop-newest' | 'drop-oldest';
      readonly capacity: number;
    }
  | { readonly type: 'system-draining'; readonly at: number }
  /** A cluster member was seen for the first time, or again after being suspect. */
  | { readonly type: 'member-up'; readonly at: number; readonly node: string }
  /** A member missed a heartbeat. */
  | { readonly type: 'member-suspect'; readonly at: number; readonly node: string }
  /** A member announced it is leaving: named actors are no longer placed there. */
  | { readonly type: 'member-leaving'; readonly at: number; readonly node: string }
  /** A member is gone: it left, or missed `downAfterMissed` heartbeats. */
  | {
      readonly type: 'member-down';
      readonly at: number;
      readonly node: string;
      readonly reason: 'unreachable' | 'left';
    }
  /** A named actor was activated on this node; `fence` is its lease revision. */
  | {
      readonly type: 'activation-started';
      readonly at: number;
      readonly address: Address;
      readonly node: string;
      readonly fence: number;
    }
  | {
      readonly type: 'activation-stopped';
      readonly at: number;
      readonly address: Address;
      /**
       * `lease-lost`: another node took the lease (after a partition); this activation stopped.
       * `failed`: its key was given up (see `activation-failed`).
       */
      readonly reason: 'passivated' | 'handed-over' | 'stopped' | 'lease-lost' | 'failed';
    }
  /**
   * A named actor's key was given up on this node: its activation kept crashing past its kind's
   * restart policy, or (with `outage: 'fail-fast'`) the journal is unavailable. Its messages are
   * refused with `error` for `quarantineMs`; the next message after that activates it again.
   */
  | {
      readonly type: 'activation-failed';
      readonly at: number;
      readonly address: Address;
      readonly node: string;
      readonly error: TroupeError;
      readonly quarantineMs: number;
    }
  | {
      readonly type: 'system-stopped';
      readonly at: number;
      readonly error: Error | undefined;
      readonly drainTimedOut: boolean;
    }
  /** Events of guards and agents, published with `system.publish`. */
  | ExtensionEvent;

/** The `type` tags of {@link SystemEvent}. */
export type SystemEventType = SystemEvent['type'];
