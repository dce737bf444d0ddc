/** Nodes of one cluster on an in-process network, recording where named actors were activated. */
import { type ActorSystem, createNode, inProcessNetwork, type KindOptions } from '../../index.js';

/** An activation a node announced: where, and with which fence. */
export interface Activation {
  readonly node: string;
  readonly fence: number;
}

/**
 * Starts `nodes` of cluster `name` with the same `kinds`, each pushed onto `systems` (for the test to
 * close). `activations` fills with every `activation-started` event, in order.
 */
export async function inProcessNodes(
  name: string,
  nodes: readonly string[],
  kinds: Readonly<Record<string, KindOptions>>,
  systems: ActorSystem[],
): Promise<{ nodes: ActorSystem[]; activations: Activation[] }> {
  const network = inProcessNetwork();
  const started: ActorSystem[] = [];
  const activations: Activation[] = [];
  for (const node of nodes) {
    const system = await createNode({
      name,
      node,
      transport: network.transport(),
      kinds,
      deadLetterLog: () => {},
    });
    system.events$.subscribe((e) => {
      if (e.type === 'activation-started') activations.push({ node: e.node, fence: e.fence });
    });
    started.push(system);
    systems.push(system);
  }
  return { nodes: started, activations };
}
