/**
 * Voting and consensus: pure tally functions (plurality, majority, supermajority, unanimity,
 * weighted, ranked choice; abstentions, quorum, a deterministic tie rule) and `vote()`, which asks
 * voters with a deadline and counts what came.
 * @packageDocumentation
 */
export type { SocietyVoteEvent } from './events.js';
export {
  type Ballot,
  type TallyOptions,
  type TieRule,
  tally,
  tallyDefaults,
  type VoteReason,
  type VoteResult,
  type VotingRule,
} from './tally.js';
export { type VoteOptions, type VoteOutcome, VoterProtocol, vote, voteDefaults } from './vote.js';
