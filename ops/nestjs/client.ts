import {
  ClientProxy,
  type ProducerDeserializer,
  type ProducerSerializer,
  type ReadPacket,
  type WritePacket,
} from '@nestjs/microservices';
import {
  type Address,
  type AnyProtocol,
  invalidOption,
  type MessageSpec,
  type TraceContext,
  TroupeError,
  validate,
} from '../../protocols/index.js';
import type { ActorRef, ActorSystem } from '../../runtime/index.js';
import { nestError } from './errors.js';

/** What {@link TroupeClientProxy} takes. */
export interface TroupeClientOptions {
  /** The system (usually a node of a cluster) the client sends through. */
  readonly system: ActorSystem;
  /** The actor the client sends to, on this node or another one. */
  readonly address: Address;
  /**
   * The actor's protocol: with it, a pattern must be one of its messages (`send` an ask, `emit` a
   * tell) and data is checked against the message's schema before it is sent; without it, a pattern
   * is sent as the message type as is, and the receiving node checks it.
   */
  readonly protocol?: AnyProtocol;
  /** How long `send` waits for the reply. Defaults to the system's `askTimeoutMs` (5000). */
  readonly timeoutMs?: number;
  /** Nest's serializer of outgoing packets (`{ pattern, data }`); the message is its result's. */
  readonly serializer?: ProducerSerializer;
  /** Nest's deserializer of replies: it gets `{ response, isDisposed: true }`. */
  readonly deserializer?: ProducerDeserializer;
}

/**
 * A Nest `ClientProxy` that sends to a Troupe actor: `send(pattern, data)` asks it (the pattern is
 * the message type) and emits the reply, `emit(pattern, data)` tells it. Failures reach the Nest
 * caller as Nest's error objects, `{ status: 'error', code, message, details? }` (`code` is the
 * Troupe error code: `ERR_ASK_TIMEOUT`, `ERR_VALIDATION`, `ERR_ACTOR_CRASHED`, `ERR_RPC`, ...).
 * Unsubscribing from `send` before the reply aborts the ask. A `traceparent` (and `tracestate`) in a
 * packet's metadata (`setOnDispatchHook`) becomes the message's trace context.
 * @example
 * ```ts
 * const client = new TroupeClientProxy({ system, address: 'troupe://app/n2/math', protocol: Math });
 * const sum = await firstValueFrom(client.send('sum', { values: [1, 2] }));
 * ```
 */
export class TroupeClientProxy extends ClientProxy {
  private readonly system: ActorSystem;
  private readonly ref: ActorRef;
  private readonly protocol: AnyProtocol | undefined;
  private readonly timeoutMs: number | undefined;

  /**
   * @throws TroupeError `ERR_INVALID_OPTION` for a missing system, an address that is not one, a
   * bad protocol or timeout.
   */
  constructor(options: TroupeClientOptions) {
    super();
    if (typeof options !== 'object' || options === null) {
      throw invalidOption('options', 'TroupeClientProxy options must be an object', options);
    }
    const { system, address, protocol, timeoutMs } = options;
    if (typeof system !== 'object' || system === null || typeof system.ref !== 'function') {
      throw invalidOption('system', 'an actor system (createSystem, createNode)', system);
    }
    if (
      protocol !== undefined &&
      (typeof protocol !== 'object' || protocol === null || !('messages' in protocol))
    ) {
      throw invalidOption('protocol', 'a protocol made by defineProtocol', protocol);
    }
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs > 0))) {
      throw invalidOption('timeoutMs', 'a number of milliseconds above 0', timeoutMs);
    }
    this.system = system;
    // An address that is not one throws ERR_INVALID_ADDRESS here, where it is written.
    this.ref = system.ref(address);
    this.protocol = protocol;
    this.timeoutMs = timeoutMs;
    this.initializeSerializer(options);
    this.initializeDeserializer(options);
  }

  /** Nothing to connect: the system's transport is already connected. */
  connect(): Promise<ActorSystem> {
    return Promise.resolve(this.system);
  }

  /** Nothing to close: the system belongs to its owner (the `TroupeModule` drains it). */
  close(): void {}

  /** The actor system the client sends through. */
  unwrap<T>(): T {
    return this.system as T;
  }

  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    const controller = new AbortController();
    this.request(packet, controller.signal).then(
      (written) => callback(written),
      (error: unknown) => callback({ err: nestError(error), isDisposed: true }),
    );
    return () => controller.abort();
  }

  protected async dispatchEvent<T = unknown>(packet: ReadPacket): Promise<T> {
    try {
      const { type, data } = await this.outgoing(packet, 'tell');
      const trace = traceOf(packet);
      this.ref.tell(type, data, trace === undefined ? undefined : { trace });
    } catch (error) {
      throw nestError(error);
    }
    return undefined as T;
  }

  private async request(packet: ReadPacket, signal: AbortSignal): Promise<WritePacket> {
    const { type, data } = await this.outgoing(packet, 'ask');
    const trace = traceOf(packet);
    const response = await this.ref.ask(type, data, {
      signal,
      ...(this.timeoutMs === undefined ? {} : { timeoutMs: this.timeoutMs }),
      ...(trace === undefined ? {} : { trace }),
    });
    return (await this.deserializer.deserialize({ response, isDisposed: true })) as WritePacket;
  }

  /** The message to send for a packet: its type from the pattern, its data checked when a protocol is known. */
  private async outgoing(
    packet: ReadPacket,
    kind: MessageSpec['kind'],
  ): Promise<{ type: string; data: unknown }> {
    const serialized = (await this.serializer.serialize(packet)) as ReadPacket;
    const type = this.normalizePattern(serialized.pattern);
    if (this.protocol === undefined) return { type, data: serialized.data };
    const spec = (this.protocol.messages as Record<string, MessageSpec | undefined>)[type];
    if (spec === undefined || spec.kind !== kind || !Object.hasOwn(this.protocol.messages, type)) {
      throw new TroupeError(
        'ERR_UNKNOWN_MESSAGE',
        `"${this.protocol.name}" has no ${kind} message "${type}" (${kind === 'ask' ? 'send' : 'emit'} to ${this.ref.address})`,
        { details: { to: this.ref.address, type } },
      );
    }
    const checked = await validate(
      spec.body,
      serialized.data,
      `${this.protocol.name}.${type}`,
      this.ref.address,
    );
    if (!checked.ok) throw checked.error;
    return { type, data: checked.value };
  }
}

/**
 * The W3C trace context a packet's metadata carries (`traceparent`, `tracestate`: what instrumentation
 * sets through `setOnDispatchHook`), so the ask or tell continues the caller's trace.
 */
function traceOf(packet: ReadPacket): TraceContext | undefined {
  const traceparent = packet.metadata?.traceparent;
  if (typeof traceparent !== 'string') return undefined;
  const tracestate = packet.metadata?.tracestate;
  return typeof tracestate === 'string' ? { traceparent, tracestate } : { traceparent };
}
