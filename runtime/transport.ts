import { TroupeError } from '../protocols/index.js';
import type { Clock } from './clock.js';
import type { ClusterStore, MemberState } from './cluster-types.js';

/**
 * One message on the wire: a batch of encoded envelopes for one node. `deadline` (epoch ms) is when
 * every envelope in it has expired, undefined when one of them never does; `fail` reports every
 * envelope in it as undelivered.
 */
export interface Frame {
  readonly bytes: Uint8Array;
  readonly deadline: number | undefined;
  fail(error: TroupeError): void;
}

/** Where a node's frames arrive. Everything that arrives is untrusted bytes. */
export interface TransportSink {
  /** A frame for actors of this node. */
  inbound(bytes: Uint8Array): void;
  /** A frame of replies to asks this node made. */
  replies(bytes: Uint8Array): void;
}

/**
 * The port through which a node's system talks to the other nodes of its cluster. It moves frames;
 * the system encodes, batches, routes and checks them. Adapters: {@link inProcessNetwork} (nodes in
 * one process) and the NATS transport (`natsTransport`).
 */
export interface Transport {
  /** A name for errors and logs, e.g. `nats` or `in-process`. */
  readonly kind: string;
  /**
   * Starts receiving as `node` of `cluster`. Called once by the system that owns the transport, with
   * the system's clock: frame deadlines are judged and the transport's own waits (replays, retries)
   * run on it.
   */
  open(cluster: string, node: string, sink: TransportSink, clock: Clock): Promise<void>;
  /**
   * Sends a frame to a node's inbox or reply channel. Never throws: a frame that cannot be sent,
   * now or later, is failed through `frame.fail`.
   */
  publish(channel: 'node' | 'reply', node: string, frame: Frame): void;
  /** Stops receiving and releases the connection. */
  close(): Promise<void>;
  /** The shared membership and lease store of the cluster, for nodes with named actors. */
  store?(cluster: string): Promise<ClusterStore>;
}

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
  return {
    transport(): Transport {
      let cluster: string | undefined;
      let self: string | undefined;
      return {
        kind: 'in-process',
        async open(c, node, sink) {
          cluster = c;
          self = node;
          sinks.set(key(c, node), sink);
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
        async close() {
          if (cluster !== undefined && self !== undefined) sinks.delete(key(cluster, self));
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
