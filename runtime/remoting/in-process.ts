/** Several nodes of a cluster in one process: a network and a cluster store in memory. */

import { TroupeError } from '../../protocols/index.js';
import { closeableOnce } from '../kernel/closeable.js';
import type { ClusterStore, MemberState } from './cluster-types.js';
import type { Transport, TransportSink } from './transport.js';

/**
 * A network of nodes inside one process: each `transport()` is one node's view. Frames are delivered
 * asynchronously (a microtask later), as a real network would, never in the sender's call stack.
 */
export interface InProcessNetwork {
  transport(): Transport;
}

/** Makes an {@link InProcessNetwork}: several systems in one process talking as a cluster. */
export function inProcessNetwork(): InProcessNetwork {
  const sinks = new Map<string, TransportSink>();
  const key = (cluster: string, node: string) => `${cluster}\u0000${node}`;
  const stores = new Map<string, MemoryStoreState>();
  /** Per cluster and topic, the nodes' callbacks. */
  const topics = new Map<string, Map<string, (bytes: Uint8Array) => void>>();
  return {
    transport(): Transport {
      let cluster: string | undefined;
      let self: string | undefined;
      const lifecycle = closeableOnce(() => {
        if (cluster !== undefined && self !== undefined) {
          sinks.delete(key(cluster, self));
          for (const nodes of topics.values()) nodes.delete(self);
        }
      });
      /** Topics subscribed to before `open`: they take effect once it has the cluster's name. */
      const early = new Map<string, (bytes: Uint8Array) => void>();
      return {
        kind: 'in-process',
        ...lifecycle,
        async open(c, node, sink) {
          cluster = c;
          self = node;
          sinks.set(key(c, node), sink);
          for (const [topic, deliver] of early) this.subscribeTopic!(topic, deliver);
          early.clear();
        },
        publish(channel, node, frame) {
          queueMicrotask(() => {
            const sink = cluster === undefined ? undefined : sinks.get(key(cluster, node));
            if (sink === undefined) {
              frame.fail(
                new TroupeError('ERR_NO_ROUTE', `no node "${node}" in cluster "${cluster}" of this network`, {
                  details: { node, cluster },
                }),
              );
              return;
            }
            try {
              if (channel === 'node') sink.inbound(frame.bytes);
              else sink.replies(frame.bytes);
            } catch {
              // The receiving router reports its own defects; the network goes on.
            }
          });
        },
        subscribeTopic(topic, deliver) {
          if (cluster === undefined || self === undefined) {
            early.set(topic, deliver);
            return;
          }
          const k = key(cluster, topic);
          let nodes = topics.get(k);
          if (nodes === undefined) {
            nodes = new Map();
            topics.set(k, nodes);
          }
          nodes.set(self, deliver);
        },
        unsubscribeTopic(topic) {
          early.delete(topic);
          if (cluster === undefined || self === undefined) return;
          const nodes = topics.get(key(cluster, topic));
          nodes?.delete(self);
          if (nodes?.size === 0) topics.delete(key(cluster, topic));
        },
        publishTopic(topic, bytes) {
          if (cluster === undefined) return;
          // The subscribers of the moment of publishing, as a broker routes on its current interest.
          const nodes = topics.get(key(cluster, topic));
          if (nodes === undefined) return;
          for (const deliver of [...nodes.values()]) {
            queueMicrotask(() => {
              try {
                deliver(bytes);
              } catch {
                // The receiving node reports its own defects.
              }
            });
          }
        },
        async store(c) {
          let state = stores.get(c);
          if (state === undefined) {
            state = { members: new Map(), listeners: new Set(), leases: new Map(), revision: 0 };
            stores.set(c, state);
          }
          return memoryStore(state);
        },
      };
    },
  };
}

interface MemoryStoreState {
  readonly members: Map<string, MemberState>;
  readonly listeners: Set<(node: string, state: MemberState | 'gone') => void>;
  readonly leases: Map<string, { node: string; revision: number }>;
  revision: number;
}

/** The cluster store of an in-process network: the same rules as the KV one, in memory. */
function memoryStore(state: MemoryStoreState): ClusterStore {
  let mine: ((node: string, s: MemberState | 'gone') => void) | undefined;
  const tell = (node: string, s: MemberState | 'gone') => {
    for (const listener of state.listeners) queueMicrotask(() => listener(node, s));
  };
  return {
    async announce(node, s) {
      state.members.set(node, s);
      tell(node, s);
    },
    async withdraw(node) {
      state.members.delete(node);
      tell(node, 'gone');
    },
    async watch(listener) {
      mine = listener;
      state.listeners.add(listener);
      for (const [node, s] of state.members) listener(node, s);
    },
    async lease(k, node, takeOver) {
      const held = state.leases.get(k);
      if (held !== undefined && !takeOver(held.node)) return { holder: held.node };
      const revision = ++state.revision;
      state.leases.set(k, { node, revision });
      return { fence: revision };
    },
    async release(k, fence) {
      if (state.leases.get(k)?.revision === fence) state.leases.delete(k);
    },
    async fence(k) {
      return state.leases.get(k)?.revision;
    },
    async close() {
      if (mine !== undefined) state.listeners.delete(mine);
    },
  };
}
