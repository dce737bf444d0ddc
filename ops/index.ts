/**
 * Ops: tools that observe a system from outside, through its event stream and `tree()` only.
 * A terminal view (`renderTree`, `watchSystem`), the `troupe` CLI (`ops/cli.ts`) and a node's ops
 * HTTP server (`startOpsServer`: `/healthz`, `/readyz`, `/metrics`).
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
export {
  type CheckResult,
  journalCheck,
  type MetricsHandler,
  type OpsServer,
  type OpsServerOptions,
  opsServerDefaults,
  type Readiness,
  type ReadinessCheck,
  startOpsServer,
  systemChecks,
} from './health/index.js';
