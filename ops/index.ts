/**
 * Ops: tools that observe a system from outside, through its event stream and `tree()` only.
 * Today: a terminal view (`renderTree`, `watchSystem`) and the `troupe` CLI (`ops/cli.ts`).
 * Telemetry (OpenTelemetry, pino, Prometheus) and the dashboard are planned.
 * It may import from every layer below it; nothing below imports it.
 * @packageDocumentation
 */
export {
  type RenderEventOptions,
  type RenderTreeOptions,
  renderEvent,
  renderTree,
  shortAddress,
  type WatchOptions,
  watchDefaults,
  watchSystem,
} from './console.js';
