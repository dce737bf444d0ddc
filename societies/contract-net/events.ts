/**
 * The events of contract-net rounds on the system's stream, declared by augmenting the runtime's
 * `TroupeEvents`.
 */
import type { SystemEventOf } from '../../runtime/index.js';

declare module '../../runtime/index.js' {
  interface TroupeEvents {
    /** A contract-net round ended: who won at what price, and who was silent or failed (with why). */
    'contract-net-round': {
      readonly round: string;
      readonly status: 'awarded' | 'failed';
      readonly winner?: string;
      readonly price?: number;
      readonly bids: number;
      readonly refusals: number;
      /** Bidders that did not answer the call (timed out, crashed, invalid answer). */
      readonly silent: readonly { readonly bidder: string; readonly code: string }[];
      /** Awarded bidders that failed or timed out. */
      readonly failures: readonly { readonly bidder: string; readonly code: string }[];
    };
  }
}

/** A contract-net round ended. */
export type ContractNetRoundEvent = SystemEventOf<'contract-net-round'>;
