/**
 * Group chat: participants take turns on a shared transcript, chosen by round-robin, a selector
 * model, handoffs or a function, until a composable termination; durable with a journal.
 * @packageDocumentation
 */
export type { GroupChatEndedEvent, GroupChatTurnEvent } from './events.js';
export {
  type GroupChatOptions,
  type GroupChatState,
  groupChat,
  groupChatDefaults,
  type Participant,
} from './group-chat.js';
export { type ChatOutcome, type ChatStatus, type ChatTurn, GroupChatProtocol } from './protocol.js';
export {
  type HandoffOptions,
  handoffs,
  roundRobin,
  type SelectionOption,
  type SelectorOptions,
  type SpeakerSelection,
  selector,
} from './selection.js';
export {
  allOf,
  anyOf,
  type ChatView,
  costBudget,
  type ExternalStop,
  externalStop,
  maxTurns,
  type Stop,
  type Termination,
  textMention,
  tokenBudget,
  when,
} from './termination.js';
