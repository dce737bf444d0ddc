/**
 * The events of process groups on the system's stream, declared by augmenting `TroupeEvents`, and
 * the change a group's watchers see.
 */
import type { Address } from '../../protocols/index.js';

declare module '../kernel/events.js' {
  interface TroupeEvents {
    /** An actor joined a process group, on this node or (as this node heard it) another. */
    'group-joined': { readonly group: string; readonly member: Address; readonly node: string };
    /**
     * An actor left a process group: it `left`, it `stopped`, or its node went down (`node-down`:
     * it closed, went silent for `downAfterMissed` heartbeats, or the cluster declared it down).
     */
    'group-left': {
      readonly group: string;
      readonly member: Address;
      readonly node: string;
      readonly reason: GroupLeaveReason;
    };
  }
}

/** Why a member left a group. */
export type GroupLeaveReason = 'left' | 'stopped' | 'node-down';

/** A change of a group's membership, as `groups.changes(group)` emits it. */
export type GroupChange =
  | { readonly kind: 'joined'; readonly group: string; readonly member: Address; readonly node: string }
  | {
      readonly kind: 'left';
      readonly group: string;
      readonly member: Address;
      readonly node: string;
      readonly reason: GroupLeaveReason;
    };
