/**
 * The events of group chats on the system's stream, declared by augmenting the runtime's
 * `TroupeEvents`.
 */
import type { Address } from '../../protocols/index.js';
import type { SystemEventOf } from '../../runtime/index.js';

declare module '../../runtime/index.js' {
  interface TroupeEvents {
    /** A turn of a group chat was recorded (after it is in the journal, for a durable chat). */
    'group-chat-turn': {
      readonly chat: Address;
      readonly turn: number;
      readonly speaker: string;
      readonly ok: boolean;
      /** For a failed turn: the error's code (`ERR_ASK_TIMEOUT`, `ERR_ACTOR_CRASHED`, a run's failure). */
      readonly error?: string;
      /** How many names the selection gave that were no participant, or its failures, before this speaker. */
      readonly selectionErrors?: number;
    };
    /** A group chat ended. */
    'group-chat-ended': {
      readonly chat: Address;
      readonly reason: string;
      readonly detail: string;
      readonly turns: number;
      readonly usage: { readonly inputTokens: number; readonly outputTokens: number };
      readonly last?: string | undefined;
    };
  }
}

/** A turn of a group chat was recorded. */
export type GroupChatTurnEvent = SystemEventOf<'group-chat-turn'>;
/** A group chat ended. */
export type GroupChatEndedEvent = SystemEventOf<'group-chat-ended'>;
