/**
 * Societies: multi-agent patterns built on actors (group chat, contract net and auctions, voting,
 * blackboard, durable workflows, sagas, review loops). It may import from every layer below it.
 * @packageDocumentation
 */

export * from './blackboard/index.js';
export * from './chat/index.js';
export * from './contract-net/index.js';
export {
  type AgentMember,
  asAgent,
  type FailureReport,
  type Member,
  type Members,
} from './members.js';
export * from './review/index.js';
export * from './sagas/index.js';
export * from './voting/index.js';
export * from './workflows/index.js';
