/**
 * The events of votes on the system's stream, declared by augmenting the runtime's `TroupeEvents`.
 */
import type { SystemEventOf } from '../../runtime/index.js';

declare module '../../runtime/index.js' {
  interface TroupeEvents {
    /** A vote was counted: its result, and the voters whose ballot did not come (with why). */
    'society-vote': {
      readonly ballotId: string;
      readonly decided: boolean;
      readonly reason: string;
      readonly winner?: string;
      /** Ballots counted. */
      readonly ballots: number;
      readonly missing: readonly {
        readonly voter: string;
        readonly code: string;
        readonly message: string;
      }[];
    };
  }
}

/** A vote was counted. */
export type SocietyVoteEvent = SystemEventOf<'society-vote'>;
