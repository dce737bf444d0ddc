/**
 * The events of blackboards on the system's stream, declared by augmenting the runtime's
 * `TroupeEvents`.
 */
import type { Address } from '../../protocols/index.js';
import type { SystemEventOf } from '../../runtime/index.js';

declare module '../../runtime/index.js' {
  interface TroupeEvents {
    /** An entry of a blackboard was written (after it is in the journal, for a durable board). */
    'blackboard-change': {
      readonly board: Address;
      readonly key: string;
      readonly entryType: string;
      readonly version: number;
      readonly by?: string;
    };
    /** A knowledge source reacted to a change, or failed to (timed out, crashed: the error's code). */
    'blackboard-activation': {
      readonly board: Address;
      readonly source: string;
      readonly key: string;
      readonly ok: boolean;
      readonly error?: string;
    };
  }
}

/** An entry of a blackboard was written. */
export type BlackboardChangeEvent = SystemEventOf<'blackboard-change'>;
/** A knowledge source reacted to a change, or failed to. */
export type BlackboardActivationEvent = SystemEventOf<'blackboard-activation'>;
