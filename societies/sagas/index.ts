/**
 * Sagas: steps with compensations, undone in reverse order when a later step fails; built on the
 * durable workflows.
 * @packageDocumentation
 */
export { type SagaDefinition, type SagaStep, saga } from './saga.js';
