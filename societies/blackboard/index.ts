/**
 * Blackboard: an event-sourced shared store of typed entries with compare-and-set updates, knowledge
 * sources triggered by the changes matching their pattern, and a controller choosing who acts next.
 * @packageDocumentation
 */
export {
  type Activation,
  type BlackboardOptions,
  BlackboardProtocol,
  type BlackboardState,
  blackboard,
  type Controller,
  type Entry,
  type EntryPattern,
  KnowledgeSourceProtocol,
  priorityController,
} from './blackboard.js';
export type { BlackboardActivationEvent, BlackboardChangeEvent } from './events.js';
