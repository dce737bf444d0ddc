/**
 * Ops: tools that observe a system from outside, through its event stream and `tree()` only.
 * A terminal view (`renderTree`, `watchSystem`), the `troupe` CLI (`ops/cli/`), `troupe node` (`ops/node/`) and a node's ops
 * HTTP server (`startOpsServer`: `/healthz`, `/readyz`, `/metrics`); OpenTelemetry traces and metrics
 * (`traceSystem`, `meterSystem`, `tracedModel`, `tracedTool`, `tracedJournal`, `startTelemetry`) and pino
 * logs (`logSystem`).
 * The NestJS integration is a separate entry, `troupe/nestjs` (`ops/nestjs/`), not re-exported here:
 * NestJS is an optional peer, so nothing else loads it.
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
export { type DashboardServer, dashboardRoutes, startDashboardServer } from './dashboard/routes.js';
export {
  ClusterView,
  type ClusterViewOptions,
  type DashboardMember,
  type DashboardSnapshot,
} from './dashboard/view.js';
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
export {
  type ClusterClient,
  type ClusterClientOptions,
  clusterClientDefaults,
  connectCluster,
  type NodeAnswer,
  type TreeProgress,
  treeOf,
} from './introspection/client.js';
export {
  type ActivationInfo,
  type BreakerInfo,
  type NodeActivity,
  type NodeInfo,
  OPS_ACTOR,
  type OpsEvent,
  OpsProtocol,
  type TreeRow,
} from './introspection/protocol.js';
export {
  type Introspection,
  type IntrospectionOptions,
  introspectionDefaults,
  startIntrospection,
} from './introspection/responder.js';
export {
  type LogSystemOptions,
  logSystem,
  REDACTED_PATHS,
  scrubSecrets,
  troupeLogger,
} from './logs/index.js';
export {
  defineNodeConfig,
  NODE_ENV_VARIABLES,
  type NodeConfig,
  type NodeContext,
  type NodeKinds,
  nodeConfigDefaults,
  type ResolvedNodeConfig,
  resolveNodeConfig,
} from './node/config.js';
export { type ClusterNode, type StartClusterNodeOptions, startClusterNode } from './node/start.js';
export {
  endSpan,
  type GenAITraceOptions,
  INSTRUMENTATION_SCOPE,
  type MeterSystemOptions,
  meterSystem,
  type StartTelemetryOptions,
  startTelemetry,
  type Telemetry,
  type TracedJournalOptions,
  type TraceSystemOptions,
  tracedJournal,
  tracedModel,
  tracedTool,
  traceSystem,
} from './telemetry/index.js';
