/** What a node started by `troupe node` serves to operators besides its actors. */
import { dashboardRoutes } from '../dashboard/routes.js';
import { ClusterView } from '../dashboard/view.js';
import { type OpsServer, startOpsServer } from '../health/index.js';
import { connectCluster } from '../introspection/client.js';
import { type Introspection, startIntrospection } from '../introspection/responder.js';
import { startTelemetry, type Telemetry } from '../telemetry/index.js';
import type { ClusterNode } from './start.js';

/** The ops side of a running node. */
export interface NodeOps {
  /** The ops HTTP server's URL. */
  readonly url: string;
  readonly server: OpsServer;
  readonly introspection: Introspection;
}

/**
 * Starts the node's ops services: the `troupe-ops` actor (introspection) and the ops HTTP server
 * (`/healthz`, `/readyz`, `/metrics` from `startTelemetry`, the dashboard at `/dashboard/`). They stop after the node has.
 */
export async function startNodeOps(node: ClusterNode): Promise<NodeOps> {
  const { config, system } = node;
  const introspection = startIntrospection(system, { eventsKept: config.eventsKept });
  node.onStopped(() => introspection.stop());
  // The dashboard looks at the whole cluster as an observer would, on its own connection.
  const client = await connectCluster({
    servers: config.nats.servers,
    cluster: config.cluster,
    ...(config.nats.prefix === undefined ? {} : { prefix: config.nats.prefix }),
    ...(config.nats.user === undefined ? {} : { user: config.nats.user }),
    ...(config.nats.pass === undefined ? {} : { pass: config.nats.pass }),
    ...(config.nats.token === undefined ? {} : { token: config.nats.token }),
  });
  node.onStopped(() => client.close());
  const view = new ClusterView(client);
  node.onStopped(() => view.close());
  let telemetry: Telemetry | undefined;
  if (config.telemetry.metrics || config.telemetry.otlpUrl !== undefined) {
    // The SDK reads its trace exporter from the standard variables.
    if (config.telemetry.otlpUrl !== undefined) {
      process.env.OTEL_TRACES_EXPORTER ??= 'otlp';
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT ??= config.telemetry.otlpUrl;
    }
    try {
      telemetry = await startTelemetry({
        system,
        serviceName: config.telemetry.serviceName,
        prometheus: config.telemetry.metrics,
      });
      const started = telemetry;
      node.onStopped(async () => {
        await started.shutdown();
      });
    } catch (error) {
      // The SDK packages are optional peers: without them the node runs, without metrics.
      node.log.warn({ err: error }, 'telemetry off');
    }
  }
  const server = await startOpsServer({
    port: config.ops.port,
    host: config.ops.host,
    system,
    metrics: telemetry?.metricsHandler,
    routes: dashboardRoutes(view),
  });
  node.onStopped(async () => {
    await server.close();
  });
  return { url: server.url, server, introspection };
}
