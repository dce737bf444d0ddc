/**
 * Durable workflows: DAGs of steps run by named persistent actors, every step's result an event in
 * the journal.
 * @packageDocumentation
 */
export {
  type CompensationContext,
  type CompensationRetry,
  type MapSpec,
  type SignalSpec,
  type StepContext,
  type StepDefinition,
  type StepRetry,
  type Workflow,
  type WorkflowDefinition,
  workflow,
  workflowDefaults,
} from './definition.js';
export {
  type WorkflowCallOptions,
  type WorkflowEngine,
  type WorkflowEngineOptions,
  type WorkflowHandle,
  type WorkflowOutcome,
  WorkflowProtocol,
  type WorkflowStatus,
  workflowEngine,
  workflowEngineDefaults,
} from './engine.js';
export type { WorkflowEndedEvent, WorkflowStepEvent } from './events.js';
export type { WorkflowError, WorkflowPhase } from './run.js';
export { agentStep, askStep } from './steps.js';
