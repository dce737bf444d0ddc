import {
  BaseRpcContext,
  type ConsumerDeserializer,
  type ConsumerSerializer,
  type CustomTransportStrategy,
  type MessageHandler,
  type ReadPacket,
  Server,
  type WritePacket,
} from '@nestjs/microservices';
import { z } from 'zod';
import {
  type Address,
  type AnyProtocol,
  ask,
  defineProtocol,
  invalidOption,
  type MessageSpec,
  type TraceContext,
  TroupeError,
  tell,
} from '../../protocols/index.js';
import { type ActorContext, type ActorRef, type ActorSystem, behavior } from '../../runtime/index.js';
import { type DetachedReply, detachReply } from '../../runtime/internal.js';
import { plainData, rpcError } from './errors.js';

/** The transport id of {@link TroupeServer} (`Transport` values are Nest's own transports). */
export const TROUPE_TRANSPORT: unique symbol = Symbol.for('troupe.nestjs.transport');

const Pattern = z.union([z.string().min(1), z.record(z.string(), z.unknown())]);

/**
 * The protocol every {@link TroupeServer} speaks besides its typed ones: any Nest pattern, with any
 * data. `request` reaches a `@MessagePattern` handler (its reply is the handler's last value),
 * `event` the `@EventPattern` handlers. A pattern is a string or an object, as in Nest.
 * @example
 * ```ts
 * const nest = system.ref('troupe://app/n1/nest', NestPatterns);
 * const sum = await nest.ask('request', { pattern: { cmd: 'sum' }, data: [1, 2] });
 * ```
 */
export const NestPatterns = defineProtocol('troupe.nest', {
  request: ask(z.object({ pattern: Pattern, data: z.unknown() }), z.unknown()),
  event: tell(z.object({ pattern: Pattern, data: z.unknown() })),
});

/**
 * The context a Nest handler gets (`@Ctx()`) for a message that came through Troupe: the pattern,
 * the sender's address when known and the W3C trace context of the message.
 */
export class TroupeContext extends BaseRpcContext<
  [pattern: string, sender: Address | undefined, trace: TraceContext | undefined]
> {
  /** The pattern the message was routed by. */
  getPattern(): string {
    return this.args[0];
  }
  /** The address of the sending actor, when the sender was an actor. */
  getSender(): Address | undefined {
    return this.args[1];
  }
  /** The W3C trace context the message came with, if any. */
  getTrace(): TraceContext | undefined {
    return this.args[2];
  }
}

/** What {@link TroupeServer} takes. */
export interface TroupeServerOptions {
  /** The system (usually a node of a cluster) the handlers are reached through. */
  readonly system: ActorSystem;
  /**
   * The name of the gateway actor on the node: the handlers are at
   * `troupe://<cluster>/<node>/<name>`. Defaults to `nest`.
   */
  readonly name?: string;
  /**
   * Typed protocols whose messages reach the handlers of the same pattern: an ask message `sum`
   * reaches `@MessagePattern('sum')`, a tell message `audit` the `@EventPattern('audit')` handlers.
   * Every message needs its handler (checked when the server starts); bodies are checked against
   * their schemas before a handler sees them.
   */
  readonly protocols?: readonly AnyProtocol[];
  /** Nest's serializer of responses (the reply is the serialized packet's `response`). */
  readonly serializer?: ConsumerSerializer;
  /** Nest's deserializer of requests and events: it gets `{ pattern, data }`. */
  readonly deserializer?: ConsumerDeserializer;
}

/** The defaults of {@link TroupeServerOptions}. */
export const troupeServerDefaults = { name: 'nest' } as const;

/**
 * A Nest microservice transport strategy that makes the application's `@MessagePattern` and
 * `@EventPattern` handlers reachable from Troupe refs: it spawns one gateway actor on the node, and
 * any actor in the cluster asks it (a reply, or `ERR_RPC` when the handler threw an `RpcException`)
 * or tells it (an event). The gateway never waits for a handler: each request's reply is answered
 * when its handler's stream ends, so slow handlers do not hold the others back.
 * @example
 * ```ts
 * const app = await NestFactory.createMicroservice(MathModule, {
 *   strategy: new TroupeServer({ system: node, name: 'math', protocols: [MathProtocol] }),
 * });
 * await app.listen();
 * // elsewhere in the cluster:
 * await otherNode.ref('troupe://app/n1/math', MathProtocol).ask('sum', { values: [1, 2] });
 * ```
 */
export class TroupeServer extends Server implements CustomTransportStrategy {
  override readonly transportId = TROUPE_TRANSPORT;
  private readonly system: ActorSystem;
  private readonly name: string;
  private readonly protocols: readonly AnyProtocol[];
  private gateway: ActorRef | undefined;

  /**
   * @throws TroupeError `ERR_INVALID_OPTION` for a missing system, a bad name or protocols.
   */
  constructor(options: TroupeServerOptions) {
    super();
    if (typeof options !== 'object' || options === null) {
      throw invalidOption('options', 'TroupeServer options must be an object', options);
    }
    const { system, name = troupeServerDefaults.name, protocols = [] } = options;
    if (typeof system !== 'object' || system === null || typeof system.spawn !== 'function') {
      throw invalidOption('system', 'an actor system (createSystem, createNode)', system);
    }
    if (!Array.isArray(protocols)) throw invalidOption('protocols', 'an array of protocols', protocols);
    this.system = system;
    this.name = name;
    this.protocols = protocols;
    this.initializeSerializer(options);
    this.initializeDeserializer(options);
  }

  /** The gateway actor's address, once the server listens. */
  get address(): Address | undefined {
    return this.gateway?.address;
  }

  /**
   * Starts the gateway actor. Fails (through `callback`) with `ERR_INVALID_OPTION` when a message of
   * a typed protocol has no handler of its kind, and with the spawn's error (`ERR_NAME_TAKEN`, ...).
   */
  listen(callback: (error?: unknown) => void): void {
    try {
      this.checkHandlers();
      this.gateway = this.system.spawn(this.gatewayBehavior(), { name: this.name, validate: 'always' });
      this._status$.next('listening');
    } catch (error) {
      callback(error);
      return;
    }
    callback();
  }

  /** Stops the gateway actor; asks in flight still get their handlers' replies. */
  async close(): Promise<void> {
    const gateway = this.gateway;
    if (gateway === undefined) return;
    this.gateway = undefined;
    this._status$.next('closed');
    const status = this.system.status.tag;
    if (status === 'running' || status === 'draining') {
      await this.system.stop(gateway).catch(() => {});
    }
  }

  /** Status events are those of the system (`system.events$`); this transport has none of its own. */
  on(): void {
    throw new TroupeError(
      'ERR_ILLEGAL_STATE',
      'TroupeServer has no events of its own: subscribe to system.events$',
    );
  }

  /** The actor system the handlers are reached through. */
  unwrap<T>(): T {
    return this.system as T;
  }

  private checkHandlers(): void {
    for (const protocol of this.protocols) {
      for (const [message, spec] of Object.entries(protocol.messages as Record<string, MessageSpec>)) {
        const handler = this.getHandlerByPattern(message);
        const wantEvent = spec.kind === 'tell';
        if (handler === null || handler.isEventHandler !== wantEvent) {
          const decorator = wantEvent ? '@EventPattern' : '@MessagePattern';
          throw invalidOption(
            'protocols',
            `message "${protocol.name}.${message}" has no ${decorator}('${message}') handler in the Nest application`,
          );
        }
      }
    }
  }

  private gatewayBehavior() {
    const handlers: Record<string, (body: any, ctx: ActorContext<any, any>) => void> = {
      request: (body: { pattern: unknown; data: unknown }, ctx) =>
        this.forwardRequest(this.patternOf(body.pattern), body.data, ctx),
      event: (body: { pattern: unknown; data: unknown }, ctx) =>
        this.forwardEvent(this.patternOf(body.pattern), body.data, ctx),
    };
    for (const protocol of this.protocols) {
      for (const [message, spec] of Object.entries(protocol.messages as Record<string, MessageSpec>)) {
        handlers[message] =
          spec.kind === 'ask'
            ? (body, ctx) => this.forwardRequest(message, body, ctx)
            : (body, ctx) => this.forwardEvent(message, body, ctx);
      }
    }
    return behavior({ protocols: [NestPatterns, ...this.protocols], handlers: handlers as any });
  }

  private patternOf(pattern: unknown): string {
    return typeof pattern === 'string' ? pattern : this.normalizePattern(pattern as never);
  }

  private forwardRequest(pattern: string, data: unknown, ctx: ActorContext<any, any>): void {
    const reply = detachReply(ctx);
    const context = new TroupeContext([pattern, ctx.sender?.address, ctx.trace]);
    this.request(pattern, data, context, reply).catch((error: unknown) => {
      reply.reject(
        TroupeError.is(error)
          ? error
          : new TroupeError('ERR_RPC', `the request "${pattern}" failed in Nest: ${String(error)}`, {
              cause: error,
              details: { pattern },
            }),
      );
    });
  }

  private async request(
    pattern: string,
    data: unknown,
    context: TroupeContext,
    reply: DetachedReply,
  ): Promise<void> {
    const packet = (await this.deserializer.deserialize(
      { pattern, data },
      { channel: pattern },
    )) as ReadPacket;
    const handler: MessageHandler | null = this.getHandlerByPattern(pattern);
    if (handler === null || handler.isEventHandler === true) {
      throw new TroupeError(
        'ERR_UNKNOWN_MESSAGE',
        `the Nest application has no @MessagePattern for "${pattern}"`,
        {
          details: { pattern },
        },
      );
    }
    let last: unknown = null;
    // One answer per ask: the stream's error, or its last value once it ends.
    let answered = false;
    const respond = async (written: WritePacket): Promise<void> => {
      if (answered) return;
      const out = (await this.serializer.serialize({ ...written, id: '' })) as WritePacket;
      if (out.err !== undefined && out.err !== null) {
        answered = true;
        reply.reject(rpcError(pattern, out.err));
        return;
      }
      if ('response' in written) last = plainData(out.response);
      if (written.isDisposed === true) {
        answered = true;
        reply.resolve(last);
      }
    };
    await this.handleRequest(
      context,
      async () => this.transformToObservable(await handler(packet.data, context)),
      respond,
    );
  }

  private forwardEvent(pattern: string, data: unknown, ctx: ActorContext<any, any>): void {
    const context = new TroupeContext([pattern, ctx.sender?.address, ctx.trace]);
    this.event(pattern, data, context).catch((error: unknown) => this.handleError(String(error)));
  }

  private async event(pattern: string, data: unknown, context: TroupeContext): Promise<void> {
    const packet = (await this.deserializer.deserialize(
      { pattern, data },
      { channel: pattern },
    )) as ReadPacket;
    await this.handleEvent(pattern, packet, context);
  }
}
