/** What a node started by `troupe node` serves to operators besides its actors. */
import type { ClusterNode } from './start.js';

/** The ops side of a running node. */
export interface NodeOps {
  /** The ops HTTP server's URL, when it runs. */
  readonly url: string | undefined;
}

/** Starts the node's ops services; they stop after the node has. */
export async function startNodeOps(_node: ClusterNode): Promise<NodeOps> {
  return { url: undefined };
}
