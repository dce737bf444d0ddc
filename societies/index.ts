/**
 * Societies: multi-agent patterns (topics, routers, contract-net, voting, pipelines, blackboard,
 * sagas) and chaos testing. It may import from every layer below it.
 * @packageDocumentation
 */

export * from './review/index.js';
export * from './sagas/index.js';
export * from './workflows/index.js';
