import { Kvm } from '@nats-io/kv';
import {
  type ConnectionOptions,
  connect,
  type NatsConnection,
  NoRespondersError,
  RequestError,
  type Subscription,
  TimeoutError,
} from '@nats-io/transport-node';
import { invalidOption, TroupeError } from '../../protocols/index.js';
import type { ClusterStore } from '../remoting/cluster-types.js';
import type { Frame, Transport, TransportSink } from '../remoting/transport.js';
import { type Clock, every, realClock, sleep } from '../time/clock.js';
import { createBucket, KvStore } from './store.js';

/** Options of {@link natsTransport}. */
export interface NatsTransportOptions {
  /** NATS server URLs, e.g. `nats://127.0.0.1:4222`. */
  readonly servers: string | readonly string[];
  /**
   * Every subject of this cluster lives under it, so clusters sharing a NATS never see each other's
   * messages. Defaults to `troupe.<cluster name>`.
   */
  readonly prefix?: string;
  /** User/password, token, nkeys or credentials authenticator, and TLS: passed to nats.js. */
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  readonly authenticator?: ConnectionOptions['authenticator'];
  readonly tls?: ConnectionOptions['tls'];
  /**
   * Bytes of frames held while NATS is unreachable, sent in order once it is back. Past it, each
   * message fails with `ERR_OUTBOX_FULL` (a dead letter; an ask rejects). Defaults to 16 MiB.
   */
  readonly outboxBytes?: number;
  /**
   * How long a held frame whose messages have no deadline (tells) may wait for its node after NATS
   * is back, before it fails with `ERR_NOT_DELIVERED`. Defaults to 30 s.
   */
  readonly replayTimeoutMs?: number;
  /** Any other nats.js connection option (reconnect timing, ping interval, name...). */
  readonly connection?: Partial<ConnectionOptions>;
}

const SUBJECT_TOKEN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/**
 * Connects to NATS and returns a {@link Transport} for one node (give it to `createNode`). It
 * reconnects for ever; while the connection is down, outbound frames wait in a bounded buffer and go
 * out in order on reconnect, or fail with a typed error when the buffer is full or their deadline
 * passes. nats.js itself would lose what is published while disconnected.
 *
 * Subjects: `<prefix>.node.<nodeId>` (batched envelopes to a node), `<prefix>.reply.<nodeId>`
 * (ask replies to a node) and `<prefix>.topic.<name>` (a topic's publications, to every node that
 * has a subscriber).
 *
 * @throws TroupeError `ERR_TRANSPORT` when the first connection fails; `ERR_INVALID_OPTION` for a bad option.
 */
export async function natsTransport(options: NatsTransportOptions): Promise<Transport> {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const outboxBytes = options.outboxBytes ?? 16 * 1024 * 1024;
  if (!Number.isInteger(outboxBytes) || outboxBytes < 0) {
    throw invalidOption('outboxBytes', 'must be an integer >= 0', outboxBytes);
  }
  const replayTimeoutMs = options.replayTimeoutMs ?? 30_000;
  if (!(replayTimeoutMs > 0)) throw invalidOption('replayTimeoutMs', 'must be a number > 0', replayTimeoutMs);
  if (options.prefix !== undefined && !SUBJECT_TOKEN.test(options.prefix)) {
    throw invalidOption(
      'prefix',
      'NATS subject tokens: letters, digits, "_" and "-", joined by "."',
      options.prefix,
    );
  }
  const nc = await connectTo(options, {
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 5000,
  });
  return new NatsTransport(nc, options.prefix, outboxBytes, replayTimeoutMs);
}

/** Connects with the servers, credentials and TLS of `options`, over `defaults`. */
export async function connectTo(
  options: Omit<NatsTransportOptions, 'outboxBytes' | 'replayTimeoutMs' | 'prefix'>,
  defaults: Partial<ConnectionOptions>,
): Promise<NatsConnection> {
  const servers = typeof options.servers === 'string' ? [options.servers] : [...options.servers];
  try {
    return await connect({
      ...defaults,
      ...options.connection,
      servers,
      ...(options.user === undefined ? {} : { user: options.user }),
      ...(options.pass === undefined ? {} : { pass: options.pass }),
      ...(options.token === undefined ? {} : { token: options.token }),
      ...(options.authenticator === undefined ? {} : { authenticator: options.authenticator }),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
    });
  } catch (cause) {
    throw new TroupeError(
      'ERR_TRANSPORT',
      `could not connect to NATS at ${servers.join(', ')}: ${String(cause)}`,
      {
        cause,
        details: { servers },
      },
    );
  }
}

/**
 * The names of a cluster's two JetStream KV buckets: `<prefix>_members` and `<prefix>_leases`, the
 * prefix (by default `troupe.<cluster>`) with every character KV does not allow turned into `_`.
 */
export function clusterBuckets(cluster: string, prefix?: string): { members: string; leases: string } {
  const name = (prefix ?? `troupe.${cluster}`).replace(/[^A-Za-z0-9_-]/g, '_');
  return { members: `${name}_members`, leases: `${name}_leases` };
}

/** Frames waiting for one subject while NATS is unreachable, or while they are being replayed. */
interface Held {
  readonly frames: Frame[];
  /** When the oldest frame was held: frames without a deadline give up `replayTimeoutMs` after it. */
  since: number;
  replaying: boolean;
}

class NatsTransport implements Transport {
  readonly kind = 'nats';
  private prefix: string | undefined;
  private up = true;
  /** Per subject, so one unreachable node does not hold back the others. */
  private readonly held = new Map<string, Held>();
  private heldBytes = 0;
  private stopExpiry: (() => void) | undefined;
  /** The system's, once it opens the transport: held frames' deadlines and the waits run on it. */
  private clock: Clock = realClock;
  private readonly subscriptions: Subscription[] = [];
  private readonly topicSubscriptions = new Map<string, Subscription>();
  private readonly earlyTopics = new Map<string, (bytes: Uint8Array) => void>();
  private opened = false;
  private closing = false;
  /** The cluster store's listeners: told when the connection goes down and comes back. */
  private readonly statusListeners = new Set<(reachable: boolean) => void>();

  get connected(): boolean {
    return this.up && !this.closing && !this.nc.isClosed();
  }

  constructor(
    private readonly nc: NatsConnection,
    prefix: string | undefined,
    private readonly outboxBytes: number,
    private readonly replayTimeoutMs: number,
  ) {
    this.prefix = prefix;
    void this.watch();
  }

  /** Follows the connection: down on disconnect, up (and replay what is held) on reconnect. */
  private async watch(): Promise<void> {
    try {
      for await (const status of this.nc.status()) {
        if (status.type === 'disconnect' || status.type === 'reconnecting') {
          if (this.up) for (const listener of this.statusListeners) listener(false);
          this.up = false;
        } else if (status.type === 'reconnect') {
          this.up = true;
          for (const subject of this.held.keys()) void this.replay(subject);
          for (const listener of this.statusListeners) listener(true);
        }
      }
    } catch {
      // The status iterator ends with the connection; nothing to do.
    }
  }

  async open(cluster: string, node: string, sink: TransportSink, clock: Clock): Promise<void> {
    this.clock = clock;
    this.prefix ??= `troupe.${cluster}`;
    const inbox = this.subject('node', node);
    const replies = this.subject('reply', node);
    this.subscriptions.push(
      this.nc.subscribe(inbox, {
        callback: (error, msg) => {
          if (error !== null) return;
          // A replayed frame asks for an acknowledgement: it proves someone received it.
          if (msg.reply !== undefined && msg.reply !== '') msg.respond();
          // Never let a throw reach nats.js's reader loop: it would stop reading.
          try {
            sink.inbound(msg.data);
          } catch {
            // The router reports what it refuses; a throw here is a defect it already logged.
          }
        },
      }),
      this.nc.subscribe(replies, {
        callback: (error, msg) => {
          if (error !== null) return;
          if (msg.reply !== undefined && msg.reply !== '') msg.respond();
          try {
            sink.replies(msg.data);
          } catch {
            // As above.
          }
        },
      }),
    );
    this.opened = true;
    for (const [topic, deliver] of this.earlyTopics) this.subscribeTopic(topic, deliver);
    this.earlyTopics.clear();
    // The server has the subscriptions once a round trip has gone through.
    await this.nc.flush();
  }

  /**
   * The cluster's membership and leases in two JetStream KV buckets named after the prefix:
   * `<prefix>_members` (one key per node, a heartbeat each beat, entries expire after a minute) and
   * `<prefix>_leases` (one key per named actor; its revision is the fencing token).
   */
  async store(cluster: string): Promise<ClusterStore> {
    const names = clusterBuckets(cluster, this.prefix);
    const kvm = new Kvm(this.nc);
    const members = await createBucket(kvm, names.members, { history: 1, ttl: 60_000 }, this.clock);
    const leases = await createBucket(kvm, names.leases, { history: 1 }, this.clock);
    return new KvStore(members, leases, this.statusListeners);
  }

  subscribeTopic(topic: string, deliver: (bytes: Uint8Array) => void): void {
    if (this.closing || this.nc.isClosed()) return;
    if (!this.opened) {
      // Before `open` the subject's prefix may not be known: subscribe once it is.
      this.earlyTopics.set(topic, deliver);
      return;
    }
    this.topicSubscriptions.get(topic)?.unsubscribe();
    this.topicSubscriptions.set(
      topic,
      this.nc.subscribe(this.subject('topic', topic), {
        callback: (error, msg) => {
          if (error !== null) return;
          try {
            deliver(msg.data);
          } catch {
            // The topic's node reports what it refuses; never let a throw reach nats.js's reader loop.
          }
        },
      }),
    );
  }

  unsubscribeTopic(topic: string): void {
    this.earlyTopics.delete(topic);
    const subscription = this.topicSubscriptions.get(topic);
    this.topicSubscriptions.delete(topic);
    if (subscription !== undefined && !this.nc.isClosed()) subscription.unsubscribe();
  }

  publishTopic(topic: string, bytes: Uint8Array): void {
    if (this.closing || this.nc.isClosed() || !this.opened) return;
    try {
      // At most once, like a tell: while disconnected nats.js buffers it, and loses it on close.
      this.nc.publish(this.subject('topic', topic), bytes);
    } catch {
      // A refused subject or payload: lost, as the port says.
    }
  }

  private subject(channel: 'node' | 'reply' | 'topic', node: string): string {
    return `${this.prefix}.${channel}.${node}`;
  }

  publish(channel: 'node' | 'reply', node: string, frame: Frame): void {
    const subject = this.subject(channel, node);
    if (this.closing || this.nc.isClosed()) {
      frame.fail(
        new TroupeError('ERR_NOT_DELIVERED', 'the NATS transport is closed', { details: { subject } }),
      );
      return;
    }
    // Behind frames already held for this subject, so that order per destination holds.
    if (this.up && !this.held.has(subject)) {
      try {
        this.nc.publish(subject, frame.bytes);
        return;
      } catch (cause) {
        // nats.js buffers while it reconnects; a throw is about this frame (a subject NATS refuses,
        // a payload past the server's max_payload) or a closed connection, not an outage to wait out.
        frame.fail(
          this.nc.isClosed()
            ? new TroupeError('ERR_NOT_DELIVERED', 'the NATS connection is closed', {
                cause,
                details: { subject },
              })
            : new TroupeError('ERR_TRANSPORT', `NATS refused a frame for ${subject}: ${String(cause)}`, {
                cause,
                details: { subject, bytes: frame.bytes.length },
              }),
        );
        return;
      }
    }
    this.hold(subject, frame);
  }

  private hold(subject: string, frame: Frame): void {
    const size = frame.bytes.length;
    if (this.heldBytes + size > this.outboxBytes) {
      frame.fail(
        new TroupeError(
          'ERR_OUTBOX_FULL',
          `NATS is unreachable and the outage buffer (${this.outboxBytes} bytes) is full`,
          { details: { subject, outboxBytes: this.outboxBytes } },
        ),
      );
      return;
    }
    let held = this.held.get(subject);
    if (held === undefined) {
      held = { frames: [], since: this.clock.wallNow(), replaying: false };
      this.held.set(subject, held);
    }
    held.frames.push(frame);
    this.heldBytes += size;
    this.stopExpiry ??= every(this.clock, 100, () => this.expire());
    if (this.up) void this.replay(subject);
  }

  /**
   * Sends what is held for a subject, oldest first, each as a request that the receiving node
   * acknowledges: after an outage the receiver may not have subscribed again yet, and a plain
   * publish would then be lost. "No responders" means not received: wait and try again.
   */
  private async replay(subject: string): Promise<void> {
    const held = this.held.get(subject);
    if (held === undefined || held.replaying) return;
    held.replaying = true;
    try {
      while (this.up && !this.closing && held.frames.length > 0) {
        const frame = held.frames[0]!;
        try {
          await this.nc.request(subject, frame.bytes, { timeout: 2000 });
        } catch (error) {
          if (this.closing) return;
          const noResponders =
            error instanceof RequestError ? error.isNoResponders() : error instanceof NoRespondersError;
          if (noResponders) {
            // Nobody there yet: wait, unless the frame has expired by now.
            if (this.expired(frame, held, this.clock.wallNow())) {
              held.frames.shift();
              this.heldBytes -= frame.bytes.length;
              held.since = this.clock.wallNow();
              frame.fail(this.notDelivered(subject));
              continue;
            }
            await sleep(100, { clock: this.clock });
            continue;
          }
          // A timeout: someone subscribes but did not answer in time; the frame went out.
          if (!(error instanceof TimeoutError) && !(error instanceof RequestError)) {
            this.up = !this.nc.isClosed() && this.up;
            await sleep(100, { clock: this.clock });
            continue;
          }
        }
        if (held.frames[0] === frame) {
          held.frames.shift();
          this.heldBytes -= frame.bytes.length;
          held.since = this.clock.wallNow();
        }
      }
    } finally {
      held.replaying = false;
      if (held.frames.length === 0 && this.held.get(subject) === held) this.held.delete(subject);
      if (this.held.size === 0) this.endExpiry();
    }
  }

  /**
   * Fails held frames whose every message is past its deadline, and frames without a deadline held
   * longer than `replayTimeoutMs`.
   */
  private expire(): void {
    const now = this.clock.wallNow();
    for (const [subject, held] of this.held) {
      for (let i = 0; i < held.frames.length; i++) {
        const frame = held.frames[i]!;
        // The frame being replayed stays until its request settles (replay checks it too).
        if (!this.expired(frame, held, now) || (i === 0 && held.replaying)) continue;
        held.frames.splice(i--, 1);
        this.heldBytes -= frame.bytes.length;
        frame.fail(this.notDelivered(subject));
      }
      if (held.frames.length === 0 && !held.replaying) this.held.delete(subject);
    }
    if (this.held.size === 0) this.endExpiry();
  }

  private expired(frame: Frame, held: Held, now: number): boolean {
    return frame.deadline === undefined ? now - held.since > this.replayTimeoutMs : frame.deadline <= now;
  }

  private notDelivered(subject: string): TroupeError {
    return new TroupeError('ERR_NOT_DELIVERED', `${subject} stayed unreachable past the deadline`, {
      details: { subject, expired: true },
    });
  }

  private endExpiry(): void {
    this.stopExpiry?.();
    this.stopExpiry = undefined;
  }

  close(): Promise<void> {
    return this.end(false);
  }

  drain(): Promise<void> {
    return this.end(true);
  }

  async closed(): Promise<Error | undefined> {
    const error = await this.nc.closed();
    return error instanceof Error ? error : undefined;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.drain();
  }

  private ending: Promise<void> | undefined;

  /** Closes once: a drain lets NATS hand over what has arrived and flush what is sent first. */
  private end(drain: boolean): Promise<void> {
    this.ending ??= this.ended(drain);
    return this.ending;
  }

  private async ended(drain: boolean): Promise<void> {
    this.closing = true;
    this.endExpiry();
    for (const held of this.held.values()) {
      for (const frame of held.frames.splice(0)) {
        frame.fail(
          new TroupeError('ERR_NOT_DELIVERED', 'the node stopped before NATS could take the message'),
        );
      }
    }
    this.held.clear();
    this.heldBytes = 0;
    if (this.nc.isClosed()) return;
    if (drain && this.up) {
      try {
        await this.nc.drain();
        return;
      } catch {
        // Closing anyway.
      }
    }
    try {
      if (this.up) await this.nc.flush();
    } catch {
      // Closing anyway.
    }
    if (!this.nc.isClosed()) await this.nc.close();
  }
}
