/** What a node started by `troupe node` serves to operators besides its actors. */
import { type OpsServer, startOpsServer } from '../health/index.js';
import { type Introspection, startIntrospection } from '../introspection/responder.js';
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
 * (`/healthz`, `/readyz`). They stop after the node has.
 */
export async function startNodeOps(node: ClusterNode): Promise<NodeOps> {
  const { config, system } = node;
  const introspection = startIntrospection(system, { eventsKept: config.eventsKept });
  node.onStopped(() => introspection.stop());
  const server = await startOpsServer({ port: config.ops.port, host: config.ops.host, system });
  node.onStopped(() => server.close());
  return { url: server.url, server, introspection };
}
