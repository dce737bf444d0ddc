/**
 * Structured logs of a system's events with pino.
 * @packageDocumentation
 */
export { type LogSystemOptions, logSystem, REDACTED_PATHS, scrubSecrets, troupeLogger } from './log.js';
