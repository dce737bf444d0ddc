/**
 * The ops HTTP server of a node: liveness, readiness and the Prometheus scrape.
 * @packageDocumentation
 */
export { type CheckResult, journalCheck, type ReadinessCheck, systemChecks } from './checks.js';
export {
  type MetricsHandler,
  type OpsServer,
  type OpsServerOptions,
  opsServerDefaults,
  type Readiness,
  startOpsServer,
} from './server.js';
