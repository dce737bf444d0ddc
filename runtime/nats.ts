import {
  type ConnectionOptions,
  connect,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import { invalidOption, TroupeError } from '../protocols/index.js';
import type { Frame, Transport, TransportSink } from './transport.js';

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
 * Subjects: `<prefix>.node.<nodeId>` (batched envelopes to a node) and `<prefix>.reply.<nodeId>`
 * (ask replies to a node).
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
  if (options.prefix !== undefined && !SUBJECT_TOKEN.test(options.prefix)) {
    throw invalidOption(
      'prefix',
      'NATS subject tokens: letters, digits, "_" and "-", joined by "."',
      options.prefix,
    );
  }
  const servers = typeof options.servers === 'string' ? [options.servers] : [...options.servers];
  let nc: NatsConnection;
  try {
    nc = await connect({
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 5000,
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
  return new NatsTransport(nc, options.prefix, outboxBytes);
}

interface Buffered {
  readonly subject: string;
  readonly frame: Frame;
}

class NatsTransport implements Transport {
  readonly kind = 'nats';
  private prefix: string | undefined;
  private up = true;
  private readonly buffer: Buffered[] = [];
  private bufferedBytes = 0;
  private expiry: ReturnType<typeof setInterval> | undefined;
  private readonly subscriptions: Subscription[] = [];
  private closing = false;

  constructor(
    private readonly nc: NatsConnection,
    prefix: string | undefined,
    private readonly outboxBytes: number,
  ) {
    this.prefix = prefix;
    void this.watch();
  }

  /** Follows the connection: down on disconnect, up (and flush the buffer) on reconnect. */
  private async watch(): Promise<void> {
    try {
      for await (const status of this.nc.status()) {
        if (status.type === 'disconnect' || status.type === 'reconnecting') this.up = false;
        else if (status.type === 'reconnect') {
          this.up = true;
          this.flushBuffer();
        }
      }
    } catch {
      // The status iterator ends with the connection; nothing to do.
    }
  }

  async open(cluster: string, node: string, sink: TransportSink): Promise<void> {
    this.prefix ??= `troupe.${cluster}`;
    const inbox = this.subject('node', node);
    const replies = this.subject('reply', node);
    this.subscriptions.push(
      this.nc.subscribe(inbox, {
        callback: (error, msg) => {
          if (error === null) sink.inbound(msg.data);
        },
      }),
      this.nc.subscribe(replies, {
        callback: (error, msg) => {
          if (error === null) sink.replies(msg.data);
        },
      }),
    );
    // The server has the subscriptions once a round trip has gone through.
    await this.nc.flush();
  }

  private subject(channel: 'node' | 'reply', node: string): string {
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
    // Behind frames already waiting, so that order per destination holds.
    if (this.up && this.buffer.length === 0) {
      try {
        this.nc.publish(subject, frame.bytes);
        return;
      } catch {
        // The connection broke under us: keep the frame for the reconnect.
        this.up = false;
      }
    }
    this.hold({ subject, frame });
  }

  private hold(entry: Buffered): void {
    const size = entry.frame.bytes.length;
    if (this.bufferedBytes + size > this.outboxBytes) {
      entry.frame.fail(
        new TroupeError(
          'ERR_OUTBOX_FULL',
          `NATS is unreachable and the outage buffer (${this.outboxBytes} bytes) is full`,
          {
            details: { subject: entry.subject, outboxBytes: this.outboxBytes },
          },
        ),
      );
      return;
    }
    this.buffer.push(entry);
    this.bufferedBytes += size;
    this.expiry ??= setInterval(() => this.expire(), 100);
    this.expiry.unref?.();
  }

  /** Fails the buffered frames whose every message is past its deadline. */
  private expire(): void {
    const now = Date.now();
    for (let i = 0; i < this.buffer.length; i++) {
      const { frame } = this.buffer[i]!;
      if (frame.deadline !== undefined && frame.deadline <= now) {
        this.buffer.splice(i--, 1);
        this.bufferedBytes -= frame.bytes.length;
        frame.fail(new TroupeError('ERR_NOT_DELIVERED', 'NATS stayed unreachable past the deadline'));
      }
    }
    if (this.buffer.length === 0) this.stopExpiry();
  }

  private stopExpiry(): void {
    if (this.expiry !== undefined) clearInterval(this.expiry);
    this.expiry = undefined;
  }

  private flushBuffer(): void {
    while (this.up && this.buffer.length > 0) {
      const entry = this.buffer[0]!;
      try {
        this.nc.publish(entry.subject, entry.frame.bytes);
      } catch {
        this.up = false;
        return;
      }
      this.buffer.shift();
      this.bufferedBytes -= entry.frame.bytes.length;
    }
    if (this.buffer.length === 0) this.stopExpiry();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.stopExpiry();
    for (const entry of this.buffer.splice(0)) {
      entry.frame.fail(new TroupeError('ERR_NOT_DELIVERED', 'the node stopped while NATS was unreachable'));
    }
    this.bufferedBytes = 0;
    if (this.nc.isClosed()) return;
    try {
      if (this.up) await this.nc.flush();
    } catch {
      // Closing anyway.
    }
    await this.nc.close();
  }
}
