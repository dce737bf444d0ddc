/**
 * Review and repair loops (verification gates): a generator, critics, repair rounds.
 * @packageDocumentation
 */
export {
  agentCritic,
  agentGenerator,
  type Critic,
  type GenerateRequest,
  type ReviewLoop,
  type ReviewLoopOptions,
  type ReviewOutcome,
  reviewLoop,
  reviewLoopDefaults,
  reviewStep,
  type Verdict,
} from './review.js';
