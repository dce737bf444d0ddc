import type { TroupeError } from '../../protocols/index.js';
import type { Clock } from '../time/clock.js';
import type { ClusterStore } from './cluster-types.js';

/**
 * One message on the wire: a batch of encoded envelopes for one node. `deadline` (epoch ms) is when
 * every envelope in it has expired, undefined when one of them never does; `fail` reports every
 * envelope in it as undelivered.
 */
export interface Frame {
  readonly bytes: Uint8Array;
  /**
   * The frame as text, when the router has it: a transport that carries strings (a message port)
   * posts it instead of `bytes`, which are then never encoded.
   */
  readonly text?: string;
  readonly deadline: number | undefined;
  fail(error: TroupeError): void;
}

/** Where a node's frames arrive. Everything that arrives is untrusted bytes. */
export interface TransportSink {
  /** A frame for actors of this node. */
  inbound(bytes: Uint8Array): void;
  /** A frame of replies to asks this node made. */
  replies(bytes: Uint8Array): void;
  /** A frame for actors of this node, as text (from a transport that carries strings). */
  inboundText?(text: string): void;
  /** A frame of replies, as text. */
  repliesText?(text: string): void;
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
   * Whether the connection is up now (for readiness probes): false while NATS is unreachable and
   * once closed. Optional: a transport without it counts as connected while open.
   */
  readonly connected?: boolean;
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
  /**
   * Stops receiving and releases the connection now: frames held for later fail with
   * `ERR_NOT_DELIVERED`. Idempotent.
   */
  close(): Promise<void>;
  /** Handles what has arrived and sends what is queued, then closes. Idempotent. */
  drain(): Promise<void>;
  /** Resolves once closed: with the error that closed the connection, if one did. */
  closed(): Promise<Error | undefined>;
  /** Drains (`await using transport = ...`). */
  [Symbol.asyncDispose](): Promise<void>;
  /**
   * Starts receiving the cluster's topic `topic` (NATS subject `<prefix>.topic.<topic>`): every
   * publication of every node, this node's own included (the caller drops its echoes). One
   * subscription per topic; subscribing again replaces the callback. Topics are optional: a transport
   * without them gives a node local topics only.
   */
  subscribeTopic?(topic: string, deliver: (bytes: Uint8Array) => void): void;
  /** Stops receiving `topic`. */
  unsubscribeTopic?(topic: string): void;
  /**
   * Publishes to every node that subscribes to `topic`, at most once. Never throws: what cannot be
   * sent is lost, as a tell to another node can be.
   */
  publishTopic?(topic: string, bytes: Uint8Array): void;
  /** The shared membership and lease store of the cluster, for nodes with named actors. */
  store?(cluster: string): Promise<ClusterStore>;
}
