/**
 * The simulated network: one transport per node, every frame's fate (delay, loss, duplication,
 * reordering, a partition) decided by the seeded random source at send time and delivered by a
 * timer of the scheduler. Frames between two nodes keep their order unless a reorder fault says
 * otherwise. The cluster store (membership, leases) is the in-process one behind a proxy that a
 * NATS outage makes unreachable, a partition makes unreachable from every side but the one that
 * holds it (the majority, as a NATS KV bucket is served by its quorum), and a dead node never hears
 * back from.
 */
import { TroupeError } from '../../../protocols/index.js';
import {
  type ClusterStore,
  inProcessNetwork,
  type Random,
  type Transport,
  type TransportSink,
} from '../../../runtime/index.js';
import type { NodeClock, SimScheduler } from './scheduler.js';

/** A network fault in force: what it does to frames from `from` to `to`. */
export interface LinkFault {
  readonly from: ReadonlySet<string> | undefined;
  readonly to: ReadonlySet<string> | undefined;
  readonly delayMs: number;
  readonly jitterMs: number;
  readonly drop: number;
  readonly duplicate: number;
  readonly reorder: number;
}

/** A partition in force: sides that cannot talk (or, one-way, the first side cannot reach the rest). */
export interface PartitionRule {
  readonly sides: readonly (readonly string[])[];
  readonly oneWay: boolean;
}

interface Endpoint {
  readonly clock: NodeClock;
  sink: TransportSink | undefined;
  readonly topics: Map<string, (bytes: Uint8Array) => void>;
  /** Frames that arrived while the node was paused. */
  readonly held: (() => void)[];
}

/** Counts of what the network did, for the summary. */
export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
}

export class SimNetwork {
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly lastArrival = new Map<string, number>();
  readonly partitions = new Set<PartitionRule>();
  readonly links = new Set<LinkFault>();
  /** True while the NATS server (and so the cluster store) is down. */
  natsDown = false;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0 };
  private readonly inner = inProcessNetwork();
  private readonly storeTransport = this.inner.transport();

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly random: Random,
    /** Every node of the cluster, for the quorum that serves the store. */
    private readonly nodes: readonly string[] = [],
    /** Latency of every frame: base plus up to `jitterMs`. */
    private readonly latency: { baseMs: number; jitterMs: number } = { baseMs: 1, jitterMs: 2 },
  ) {}

  /**
   * Whether `node` reaches the cluster store under the partitions in force. Of each partition, the
   * store is on the side with a majority of the nodes (with none, the side with the first node): a
   * node on another side cannot reach it; one-way, the first side's requests are lost, and so are
   * the store's answers when the first side holds it.
   */
  storeReachable(node: string): boolean {
    for (const rule of this.partitions) {
      const mine = rule.sides.findIndex((side) => side.includes(node));
      if (mine === -1) continue;
      const holder = storeSide(rule.sides, this.nodes);
      if (holder === -1 || holder === mine) continue;
      if (!rule.oneWay || mine === 0 || holder === 0) return false;
    }
    return true;
  }

  /** Whether a frame from `from` reaches `to` under the partitions in force. */
  canReach(from: string, to: string): boolean {
    if (from === to) return true;
    for (const rule of this.partitions) {
      const a = rule.sides.findIndex((side) => side.includes(from));
      const b = rule.sides.findIndex((side) => side.includes(to));
      if (a === -1 || b === -1 || a === b) continue;
      if (!rule.oneWay || a === 0) return false;
    }
    return true;
  }

  /** The node's transport, for `createNode`; a restarted node gets a new one. */
  transport(node: string, clock: NodeClock): Transport {
    const endpoint: Endpoint = { clock, sink: undefined, topics: new Map(), held: [] };
    this.endpoints.set(node, endpoint);
    let closed = false;
    let resolveClosed!: (e: Error | undefined) => void;
    const closedPromise = new Promise<Error | undefined>((r) => {
      resolveClosed = r;
    });
    const close = async () => {
      if (closed) return;
      closed = true;
      if (this.endpoints.get(node) === endpoint) endpoint.sink = undefined;
      resolveClosed(undefined);
    };
    const net = this;
    return {
      kind: 'simulated',
      async open(_cluster, _node, sink) {
        endpoint.sink = sink;
      },
      publish(channel, to, frame) {
        net.send(node, to, (target) => {
          if (channel === 'node') target.sink?.inbound(frame.bytes);
          else target.sink?.replies(frame.bytes);
        });
      },
      subscribeTopic(topic, deliver) {
        endpoint.topics.set(topic, deliver);
      },
      unsubscribeTopic(topic) {
        endpoint.topics.delete(topic);
      },
      publishTopic(topic, bytes) {
        for (const [to, target] of net.endpoints) {
          if (!target.topics.has(topic)) continue;
          net.send(node, to, (t) => t.topics.get(topic)?.(bytes));
        }
      },
      store: async (cluster) => net.storeFor(node, clock, await net.storeTransport.store!(cluster)),
      close,
      drain: close,
      closed: () => closedPromise,
      [Symbol.asyncDispose]: close,
    };
  }

  /** Forgets a node's endpoint (it was killed): frames to it are lost. */
  detach(node: string): void {
    const endpoint = this.endpoints.get(node);
    if (endpoint !== undefined) endpoint.sink = undefined;
  }

  /** Delivers what arrived for a node while it was paused. */
  resume(node: string): void {
    const endpoint = this.endpoints.get(node);
    if (endpoint === undefined) return;
    for (const deliver of endpoint.held.splice(0)) deliver();
  }

  private send(from: string, to: string, deliver: (target: Endpoint) => void): void {
    const source = this.endpoints.get(from);
    if (source !== undefined && source.clock.state !== 'running') return;
    this.stats.sent++;
    if (!this.canReach(from, to)) {
      this.stats.dropped++;
      return;
    }
    let delay = this.latency.baseMs + this.random() * this.latency.jitterMs;
    let copies = 1;
    let ordered = true;
    for (const link of this.links) {
      if (link.from !== undefined && !link.from.has(from)) continue;
      if (link.to !== undefined && !link.to.has(to)) continue;
      if (link.drop > 0 && this.random() < link.drop) {
        this.stats.dropped++;
        return;
      }
      delay += link.delayMs + this.random() * link.jitterMs;
      if (link.duplicate > 0 && this.random() < link.duplicate) copies++;
      if (link.reorder > 0 && this.random() < link.reorder) {
        ordered = false;
        delay += this.random() * (link.delayMs + link.jitterMs + 20);
      }
    }
    const pair = `${from}\u0000${to}`;
    let at = this.scheduler.now() + delay;
    if (ordered) {
      at = Math.max(at, this.lastArrival.get(pair) ?? 0);
      this.lastArrival.set(pair, at);
    }
    const arrive = () => {
      // The link is judged again on arrival: a partition that began in flight loses the frame.
      const target = this.endpoints.get(to);
      if (target === undefined || target.sink === undefined || !this.canReach(from, to)) {
        this.stats.dropped++;
        return;
      }
      const run = () => {
        this.stats.delivered++;
        try {
          deliver(target);
        } catch {
          // The receiving node reports its own defects.
        }
      };
      if (target.clock.state === 'paused') target.held.push(run);
      else if (target.clock.state === 'running') run();
    };
    for (let i = 0; i < copies; i++) {
      if (i > 0) this.stats.duplicated++;
      this.scheduler.setTimeout(arrive, at - this.scheduler.now() + i);
    }
  }

  /**
   * The store as `node` sees it: unreachable while NATS is down or the node is cut off from the
   * store's side, silent once the node is dead. Changes watched while cut off arrive (the latest of
   * each key) once the node reaches the store again, as a KV watcher catches up after reconnecting.
   */
  private storeFor(node: string, clock: NodeClock, store: ClusterStore): ClusterStore {
    type Listener = Parameters<ClusterStore['watch']>[0];
    const missed = new Map<string, () => void>();
    const catchUp = () => {
      if (missed.size === 0 || clock.state !== 'running' || !this.storeReachable(node)) return;
      const pending = [...missed.values()];
      missed.clear();
      for (const deliver of pending) deliver();
    };
    const gate = <T>(call: () => Promise<T>): Promise<T> => {
      if (clock.state === 'dead') return new Promise<T>(() => {});
      if (this.natsDown)
        return Promise.reject(
          new TroupeError('ERR_TRANSPORT', `the NATS server is down (simulated), seen from ${node}`),
        );
      if (!this.storeReachable(node))
        return Promise.reject(
          new TroupeError(
            'ERR_TRANSPORT',
            `the cluster store is unreachable from ${node} (simulated partition from its quorum)`,
          ),
        );
      catchUp();
      return call();
    };
    return {
      announce: (n, s) => gate(() => store.announce(n, s)),
      withdraw: (n) => gate(() => store.withdraw(n)),
      watch: (listener: Listener) =>
        store.watch((n, s) => {
          if (clock.state !== 'running') return;
          if (this.storeReachable(node)) listener(n, s);
          else missed.set(n, () => listener(n, s));
        }),
      lease: (k, n, takeOver) => gate(() => store.lease(k, n, takeOver)),
      release: (k, f) => gate(() => store.release(k, f)),
      fence: (k) => gate(() => store.fence(k)),
      close: () => store.close(),
    };
  }
}

/** The side of a partition that holds the store: a majority of `nodes`, else the side with the first. */
function storeSide(sides: readonly (readonly string[])[], nodes: readonly string[]): number {
  const majority = sides.findIndex((side) => side.length * 2 > nodes.length);
  if (majority !== -1) return majority;
  const first = [...nodes].sort()[0];
  return first === undefined ? -1 : sides.findIndex((side) => side.includes(first));
}
