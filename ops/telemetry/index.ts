/**
 * OpenTelemetry for Troupe: traces of messages, asks, journal appends, model and tool calls and agent
 * runs; metrics from the event stream; a one-call SDK setup. Depends on `@opentelemetry/api` only;
 * `startTelemetry` loads `@opentelemetry/sdk-node` (an optional peer dependency) when called.
 * @packageDocumentation
 */
export { type GenAITraceOptions, tracedModel, tracedTool } from './genai.js';
export { type TracedJournalOptions, tracedJournal } from './journal.js';
export { type MeterSystemOptions, meterSystem } from './metrics.js';
export { type StartTelemetryOptions, startTelemetry, type Telemetry } from './start.js';
export { endSpan, INSTRUMENTATION_SCOPE, type TraceSystemOptions, traceSystem } from './tracing.js';
