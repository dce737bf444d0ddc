/**
 * Troupe: an actor-model runtime for AI agents. This entry re-exports the public faces of each layer.
 * @packageDocumentation
 */
export * from './protocols/index.js';
export * from './runtime/index.js';
export * from './supervisors/index.js';
