/** Isolated actors: actors in worker threads and child processes, under the parent's supervision. */
export {
  type IsolatedSpec,
  type IsolationOptions,
  isolated,
  isolatedDefaults,
  type ResolvedIsolationOptions,
  startIsolated,
} from './isolated.js';
export type { ProcessPermissions } from './launcher.js';
export { type IsolationPool, type IsolationPoolOptions, isolationPool } from './pool.js';
export {
  type HostPort,
  type MessagePortTransport,
  type MessagePortTransportOptions,
  messagePortTransport,
} from './port-transport.js';
