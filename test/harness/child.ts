/** What every harness does to end a child process it started (the chaos runner's, shared). */
export { stopChild } from '../../ops/chaos/real/servers.js';
