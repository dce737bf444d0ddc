/**
 * Contract net and sealed-bid auctions: a call for proposals with a deadline, bids ranked by an award
 * rule, first-price or second-price (Vickrey), and the task going to the next-best bid when the
 * winner fails.
 * @packageDocumentation
 */
export {
  type AwardRule,
  type Bid,
  bestScore,
  type ContractNetOptions,
  type ContractNetOutcome,
  ContractorProtocol,
  contractNet,
  contractNetDefaults,
  lowestCost,
  type Proposal,
} from './contract-net.js';
export type { ContractNetRoundEvent } from './events.js';
