import { isAscii } from 'node:buffer';
import {
  type Address,
  type AnyProtocol,
  assertPlainData,
  decodeEnvelope,
  type Envelope,
  encodeWithHead,
  expandRuns,
  formatAddress,
  invalidOption,
  isRun,
  MAX_CORRELATION_ID,
  type MessageSpec,
  nodeOf,
  REPLY,
  remoteError,
  replyBody,
  settleValidated,
  type TraceContext,
  TroupeError,
  type Validated,
  validate,
  type WireReply,
} from '../../protocols/index.js';
import type { ActorRef, AskOptions, TellOptions } from '../kernel/api.js';
import { PendingAsk, type TimeoutQueue } from '../kernel/ask.js';
import { type Cell, runningCell } from '../kernel/cell.js';
import type { DeadLetterReason } from '../kernel/events.js';
import { SystemLifecycle } from '../kernel/lifecycle.js';
import type { KernelTracer } from '../kernel/tracer.js';
import type { Clock } from '../time/clock.js';
import type { Cluster } from './cluster.js';
import {
  type Admitted,
  admitEnvelope,
  handOver,
  type IngressFailure,
  type IngressHost,
  type IngressResult,
  type Responder,
  resolveMessage,
} from './ingress.js';
import type { Frame, Transport, TransportSink } from './transport.js';

/** Limits of what a node sends and accepts. */
export interface WireLimits {
  /** Largest encoded envelope; a bigger one is refused at send with `ERR_MESSAGE_TOO_LARGE`. */
  readonly maxMessageBytes: number;
  /** Most envelopes in one frame. */
  readonly maxBatchCount: number;
  /** Bytes after which a frame is sent without waiting for the end of the turn. */
  readonly maxBatchBytes: number;
}

/** What the router needs from its system. */
export interface RouterHost extends IngressHost {
  reportDefect(address: Address, error: unknown): void;
  readonly name: string;
  readonly node: string;
  readonly clock: Clock;
  readonly random: () => number;
  readonly devChecks: boolean;
  readonly timeouts: TimeoutQueue;
  readonly state: SystemLifecycle;
  /** The installed tracer (kernel/tracing.ts), if any. */
  readonly tracer: KernelTracer | undefined;
}

interface Outbox {
  /**
   * The frame's text in pieces, joined once when it is sent: a message adds a few pieces (mostly
   * shared strings) instead of a chain of concatenated strings that lives until the frame goes.
   * `parts[0]` is the frame's opening bracket.
   */
  parts: string[];
  /** Elements in the frame, and whether the only one is a plain envelope (sent without brackets). */
  pieces: number;
  single: boolean;
  /**
   * The run being built: tells with the same `to`, `type` and `from` and nothing else, sent as one
   * `{"$run":1,"to":..,"type":..,"from":..,"items":[[id, body], ...]}` element (see `runElement`) so
   * the shared fields are written and parsed once. `runKey` is its serialized shared fields.
   */
  runKey: string | undefined;
  /** Envelopes in the frame. */
  count: number;
  /**
   * The envelopes, kept to fail them, on the reply channel only: a reply's text does not name its
   * asker. A node frame that fails is read back from its text ({@link Router.lostFrame}).
   */
  envelopes: Envelope[] | undefined;
  bytes: number;
  /** The latest deadline of the envelopes; undefined when one has none (it never expires). */
  deadline: number | undefined;
  /** True while every envelope has a deadline. */
  expires: boolean;
}

const resolved = Promise.resolve();

/**
 * `ERR_NODE_DOWN` for a message of `type` to `to` on `node`: sent while the node is down, or (an ask,
 * `inFlight`) waiting when it went down, with an unknown outcome.
 */
function nodeDownError(node: string, to: Address, type: string, inFlight: boolean): TroupeError {
  return new TroupeError(
    'ERR_NODE_DOWN',
    inFlight
      ? `node ${node} went down before ${to} answered "${type}" (it may have been handled)`
      : `node ${node} is down: ${to} cannot take "${type}"`,
    { details: { node, to, type } },
  );
}

/**
 * Moves envelopes between this node and the others of its cluster over a {@link Transport}:
 * batching per destination node and turn, ask correlation on one reply channel per node, and the
 * untrusted side of arrival (everything is checked, refusals are dead letters).
 */
export class Router implements TransportSink, Responder {
  private readonly outboxes = new Map<string, Outbox>();
  private readonly replyOutboxes = new Map<string, Outbox>();
  private flushScheduled = false;
  private readonly pending = new Map<
    string,
    { ask: PendingAsk; spec: MessageSpec | undefined; node: string | undefined }
  >();
  /** Nodes the cluster declared down and has not seen again: asks to their actors fail at once. */
  private readonly downNodes = new Set<string>();
  private sequence = 0;
  private readonly idPrefix: string;
  private readonly replyAddress: Address;
  /** Arrivals wait here, in order, behind one whose body is being validated asynchronously. */
  private readonly backlog: unknown[] = [];
  private blocked = false;
  private closed = false;
  /** Membership and placement, on a node with named actors (attached once it has started). */
  private cluster: Cluster | undefined;
  /** True on a node with named actors: their messages wait here until the cluster is attached. */
  expectsCluster = false;
  private readonly early: { envelope: Envelope; kind: string; key: string }[] = [];
  /** `troupe://<cluster>/@`: the start of every named actor's address in this cluster. */
  private readonly namedPrefix: string;
  /** Items routed already (by the cluster), to deliver here without routing them again. */
  private readonly routed = new WeakSet<object>();

  constructor(
    private readonly host: RouterHost,
    readonly transport: Transport,
    private readonly limits: WireLimits,
  ) {
    // Unique to this incarnation of the node, so a reply meant for an ask of an earlier one cannot
    // match an ask of this one: its start time (wall clock), and a few random digits for two
    // incarnations within one millisecond (a simulated clock need not move between them).
    const incarnation = Math.floor(host.random() * 36 ** 3)
      .toString(36)
      .padStart(3, '0');
    this.idPrefix = `${host.node}.${host.clock.wallNow().toString(36)}${incarnation}.`;
    this.replyAddress = formatAddress({ system: host.name, node: host.node, path: '' });
    this.namedPrefix = `troupe://${host.name}/@`;
  }

  open(): Promise<void> {
    return this.transport.open(this.host.name, this.host.node, this, this.host.clock);
  }

  /** Sends what is batched, then drains the transport (or closes it at once when `hard`). */
  async close(hard = true): Promise<void> {
    this.flush();
    this.closed = true;
    await (hard ? this.transport.close() : this.transport.drain());
    this.pending.clear();
  }

  /**
   * A frame this router sent (its text) that will not be handled: each envelope in it is a dead
   * letter (`transport-failed`) and each ask hears `error`, as `Frame.fail` would do.
   */
  lostFrame(text: string, error: TroupeError): void {
    let items: unknown[];
    try {
      const data = JSON.parse(text) as unknown;
      items = Array.isArray(data) ? data : [data];
      if (items.some(isRun)) items = expandRuns(items);
    } catch (cause) {
      this.host.reportDefect(this.replyAddress, cause);
      return;
    }
    const envelopes: Envelope[] = [];
    for (const item of items) {
      try {
        envelopes.push(decodeEnvelope(item));
      } catch {
        // Not an envelope of ours: nothing to report.
      }
    }
    this.failed(envelopes, error);
  }

  /** Fails every ask waiting for a reply with `error` (the node they went to is gone). */
  failPending(error: TroupeError): void {
    for (const { ask } of [...this.pending.values()]) ask.reject(error);
    this.pending.clear();
  }

  /**
   * The cluster declared `node` down: asks waiting for an actor of it (not a named actor, which the
   * cluster routes again) fail with `ERR_NODE_DOWN` now, as an Erlang `call` to a process of a node
   * that went away exits at once, instead of at their timeout; so do asks sent to it until it is
   * seen again ({@link nodeUp}), and tells to it are `node-down` dead letters meanwhile.
   */
  nodeDown(node: string): void {
    this.downNodes.add(node);
    for (const { ask, node: to } of [...this.pending.values()])
      if (to === node) ask.reject(nodeDownError(node, ask.to, ask.type, true));
  }

  /** Whether `ref`'s node is declared down (never for a named actor's ref: the cluster places it). */
  private isDown(ref: RemoteRef): boolean {
    return this.downNodes.size !== 0 && ref.named === undefined && this.downNodes.has(ref.node);
  }

  /** The cluster sees `node` again (a restart, a healed partition): asks go to it again. */
  nodeUp(node: string): void {
    this.downNodes.delete(node);
  }

  /** A ref to an actor of another node. */
  refFor(address: Address, node: string, protocol: AnyProtocol | undefined): ActorRef<any> {
    return new RemoteRef(this, address, node, protocol);
  }

  /** The cluster has started: route the named actors' messages that came before. */
  attach(cluster: Cluster): void {
    this.cluster = cluster;
    for (const { envelope, kind, key } of this.early.splice(0)) cluster.route(envelope, kind, key);
  }

  /** The fence of a local named actor, for the envelopes it sends. */
  private fenceOf(from: ActorRef<any>): number | undefined {
    return this.cluster?.fences.get(from);
  }

  /** A ref to the named actor `kind`/`key`, wherever the cluster places it. */
  namedRefFor(kind: string, key: string, protocol: AnyProtocol | undefined): ActorRef<any> {
    const address = formatAddress({ system: this.host.name, node: `@${kind}`, path: key });
    return new RemoteRef(this, address, '', protocol, { kind, key });
  }

  /** A message that cannot be delivered: a dead letter, and for an ask an error (here or sent back). */
  undeliverable(envelope: Envelope, error: TroupeError, reason: DeadLetterReason = 'no-such-actor'): void {
    this.undelivered(envelope, reason, error);
  }

  /**
   * One envelope that will not arrive: a dead letter, and for an ask the error, at once to our own
   * asker or in a reply to another node's.
   */
  private undelivered(envelope: Envelope, reason: DeadLetterReason, error: TroupeError): void {
    this.host.deadLetter(envelope.to, envelope.from, envelope.type, envelope.body, reason, error);
    if (envelope.correlationId === undefined || envelope.type === REPLY) return;
    const waiting = this.pending.get(envelope.correlationId);
    if (waiting !== undefined) waiting.ask.reject(error);
    else if (envelope.replyTo !== undefined && envelope.replyTo !== this.replyAddress) {
      this.reply(envelope, { ok: false, error });
    }
  }

  /** Delivers an envelope (a decoded object) here, without routing it again. */
  deliverLocal(item: unknown): void {
    if (typeof item === 'object' && item !== null) this.routed.add(item);
    this.inboundItems([item]);
  }

  /** Sends a decoded envelope to another node as it is (a named actor's message on its way). */
  forward(node: string, envelope: Envelope): void {
    try {
      this.enqueue(this.outboxes, node, envelope);
    } catch (error) {
      this.failed([envelope], error as TroupeError);
    }
  }

  /** Where an envelope goes: a named actor's goes through the cluster unless it was routed. */
  private routeNamed(item: unknown): boolean {
    const cluster = this.cluster;
    if (!this.expectsCluster || typeof item !== 'object' || item === null || this.routed.has(item)) {
      return false;
    }
    const to = (item as { to?: unknown }).to;
    if (typeof to !== 'string' || !to.startsWith(this.namedPrefix)) return false;
    const slash = to.indexOf('/', this.namedPrefix.length);
    if (slash < 0 || slash === to.length - 1) return false;
    try {
      decodeEnvelope(item);
    } catch {
      return false; // The full checks report it.
    }
    const kind = to.slice(this.namedPrefix.length, slash);
    const key = to.slice(slash + 1);
    if (cluster === undefined) this.early.push({ envelope: item as Envelope, kind, key });
    else cluster.route(item as Envelope, kind, key);
    return true;
  }

  // ---- Sending ----

  tell(ref: RemoteRef, type: string, body: unknown, options: TellOptions | undefined): void {
    if (this.host.devChecks) assertPlainData(body);
    const running = runningCell();
    const from = options?.from ?? running;
    if (this.isDown(ref)) {
      // Nobody would take it: a dead letter now, not a frame into the void.
      const error = nodeDownError(ref.node, ref.address, type, false);
      this.host.deadLetter(ref.address, from?.address, ref.wireType(type), body, 'node-down', error);
      return;
    }
    const fence = from === undefined ? undefined : this.fenceOf(from);
    const tracer = this.host.tracer;
    const trace =
      options?.trace ??
      (tracer === undefined ? running?.trace : running === undefined ? tracer.outside() : running.trace);
    if (
      trace === undefined &&
      fence === undefined &&
      ref.named === undefined &&
      this.host.state < SystemLifecycle.Stopping &&
      !this.closed
    ) {
      // The common tell: it joins a run, with no envelope object (its text is all the frame needs).
      this.enqueueTell(ref, type, from?.address, body);
      return;
    }
    let envelope: Envelope =
      from === undefined
        ? { id: this.nextId(), to: ref.address, type: ref.wireType(type), body }
        : fence === undefined
          ? { id: this.nextId(), to: ref.address, from: from.address, type: ref.wireType(type), body }
          : { id: this.nextId(), to: ref.address, from: from.address, type: ref.wireType(type), body, fence };
    if (trace !== undefined) envelope = { ...envelope, trace };
    if (this.refuseWhenStopped(envelope)) return;
    if (ref.named !== undefined) {
      this.sendNamed(ref.named, envelope);
      return;
    }
    this.enqueue(this.outboxes, ref.node, envelope, ref.head(type));
  }

  private sendNamed(named: { kind: string; key: string }, envelope: Envelope): void {
    if (this.cluster !== undefined) this.cluster.route(envelope, named.kind, named.key);
    else if (this.expectsCluster) this.early.push({ envelope, kind: named.kind, key: named.key });
    else {
      throw new TroupeError('ERR_NO_ROUTE', `${envelope.to} is a named actor but this node has no kinds`, {
        details: { to: envelope.to },
      });
    }
  }

  ask(ref: RemoteRef, type: string, body: unknown, options: AskOptions | undefined): Promise<unknown> {
    const tracer = this.host.tracer;
    if (tracer === undefined)
      return this.sendAsk(ref, type, body, options, options?.trace ?? runningCell()?.trace);
    const running = runningCell();
    const parent = options?.trace ?? (running === undefined ? tracer.outside() : running.trace);
    return tracer.ask(ref.address, type, parent, (trace) => this.sendAsk(ref, type, body, options, trace));
  }

  private sendAsk(
    ref: RemoteRef,
    type: string,
    body: unknown,
    options: AskOptions | undefined,
    trace: TraceContext | undefined,
  ): Promise<unknown> {
    const host = this.host;
    const timeoutMs = options?.timeoutMs ?? host.askTimeoutMs;
    return new Promise((resolve, reject) => {
      if (!(timeoutMs > 0)) throw invalidOption('ask.timeoutMs', 'must be a number > 0', timeoutMs);
      if (host.devChecks) assertPlainData(body);
      if (this.isDown(ref)) throw nodeDownError(ref.node, ref.address, type, false);
      const from = runningCell();
      const fence = from === undefined ? undefined : this.fenceOf(from);
      const id = this.nextId();
      const ask = new PendingAsk(resolve, reject, from, options?.signal, ref.address, type);
      ask.key = id;
      ask.release = this.forget;
      if (options?.signal !== undefined && !ask.listen(options.signal)) return;
      const envelope: Envelope = {
        id,
        to: ref.address,
        ...(from === undefined ? {} : { from: from.address }),
        type: ref.wireType(type),
        body,
        correlationId: id,
        replyTo: this.replyAddress,
        deadline: host.clock.wallNow() + timeoutMs,
        ...(trace === undefined ? {} : { trace }),
        ...(fence === undefined ? {} : { fence }),
      };
      if (this.refuseWhenStopped(envelope, ask)) return;
      // The node, to fail the ask if it goes down (a named actor's follows its key instead).
      const node = ref.named === undefined ? ref.node : undefined;
      this.pending.set(id, { ask, spec: ref.specOf(type), node });
      host.timeouts.add(ask, timeoutMs);
      try {
        if (ref.named !== undefined) this.sendNamed(ref.named, envelope);
        else this.enqueue(this.outboxes, ref.node, envelope, ref.head(type));
      } catch (error) {
        ask.reject(error);
      }
    });
  }

  /** Drops a settled ask from the table of asks waiting for a reply. */
  private readonly forget = (ask: PendingAsk): void => {
    if (ask.key !== undefined) this.pending.delete(ask.key);
  };

  private refuseWhenStopped(envelope: Envelope, ask?: PendingAsk): boolean {
    if (this.host.state < SystemLifecycle.Stopping && !this.closed) return false;
    const error = new TroupeError('ERR_SYSTEM_STOPPED', `system "${this.host.name}" has stopped`);
    this.host.deadLetter(envelope.to, envelope.from, envelope.type, envelope.body, 'system-stopped', error);
    ask?.reject(error);
    return true;
  }

  private nextId(): string {
    return this.idPrefix + (this.sequence++).toString(36);
  }

  /**
   * Encodes and queues an envelope for a node; the frame goes at the end of the turn, or now when it
   * is full. @throws TroupeError `ERR_MESSAGE_TOO_LARGE`, `ERR_NOT_PLAIN_DATA` (not JSON).
   */
  private enqueue(outboxes: Map<string, Outbox>, node: string, envelope: Envelope, head?: string): void {
    if (
      head !== undefined &&
      envelope.correlationId === undefined &&
      envelope.deadline === undefined &&
      envelope.trace === undefined &&
      envelope.fence === undefined &&
      outboxes === this.outboxes
    ) {
      // A plain tell through a ref: it joins a run of tells with the same shared fields.
      this.enqueueRun(node, this.runKeyOf(head, envelope.from), envelope.id, envelope.body, envelope);
      return;
    }
    let json: string;
    try {
      // A tell through a ref: its `to` and `type` were serialized once (`head`); only the rest now.
      json =
        envelope.type === REPLY
          ? // A reply needs only its correlation id and outcome: the reply subject says the rest.
            `{"correlationId":${JSON.stringify(envelope.correlationId)},"body":${JSON.stringify(envelope.body)}}`
          : head === undefined
            ? JSON.stringify(envelope)
            : encodeWithHead(envelope, head);
    } catch (cause) {
      throw notJson(envelope, cause);
    }
    const length = json.length;
    const bytes = length <= this.limits.maxMessageBytes / 3 ? length : Buffer.byteLength(json);
    if (bytes > this.limits.maxMessageBytes) throw this.tooLarge(envelope.type, envelope.to, bytes);
    const box = this.boxFor(outboxes, node, bytes);
    closeRun(box);
    if (box.pieces > 0) box.parts.push(',');
    box.parts.push(json);
    box.pieces++;
    box.single = box.pieces === 1;
    box.envelopes?.push(envelope);
    if (envelope.deadline === undefined) box.expires = false;
    else if (box.deadline === undefined || envelope.deadline > box.deadline) box.deadline = envelope.deadline;
    this.added(outboxes, node, box, bytes);
  }

  /** A plain tell through a ref (no trace, fence or deadline), straight into a run of its frame. */
  private enqueueTell(ref: RemoteRef, type: string, from: Address | undefined, body: unknown): void {
    this.enqueueRun(ref.node, this.runKeyOf(ref.head(type), from), this.nextId(), body, undefined, ref, type);
  }

  private lastHead: string | undefined;
  private lastFrom: string | undefined;
  private lastRunKey = '';

  /** A run's shared fields, serialized: reused while the same sender tells the same target. */
  private runKeyOf(head: string, from: string | undefined): string {
    if (head === this.lastHead && from === this.lastFrom) return this.lastRunKey;
    this.lastHead = head;
    this.lastFrom = from;
    this.lastRunKey = from === undefined ? head : `${head},"from":${JSON.stringify(from)}`;
    return this.lastRunKey;
  }

  /**
   * Adds a tell to the run of its node's frame (`["<id>",<body>]`, written as pieces). The envelope,
   * when there is one, is kept only on the reply channel; `ref` and `type` name it in errors.
   */
  private enqueueRun(
    node: string,
    runKey: string,
    id: string,
    body: unknown,
    envelope: Envelope | undefined,
    ref?: RemoteRef,
    type?: string,
  ): void {
    let json: string | undefined;
    try {
      json = JSON.stringify(body);
    } catch (cause) {
      throw notJson(envelope ?? { to: ref!.address, type: ref!.wireType(type!) }, cause);
    }
    // `["<id>",<body>]`, or `["<id>"]`: JSON has no `undefined`, so such a body is left out.
    const length = id.length + runKey.length + (json === undefined ? 4 : json.length + 5);
    const bytes =
      length <= this.limits.maxMessageBytes / 3
        ? length
        : length - (json?.length ?? 0) + (json === undefined ? 0 : Buffer.byteLength(json));
    if (bytes > this.limits.maxMessageBytes) {
      throw this.tooLarge(envelope?.type ?? ref!.wireType(type!), envelope?.to ?? ref!.address, bytes);
    }
    const box = this.boxFor(this.outboxes, node, bytes);
    const parts = box.parts;
    if (box.runKey === runKey) parts.push(',["');
    else {
      closeRun(box);
      box.runKey = runKey;
      parts.push(box.pieces === 0 ? '{"$run":1,' : ',{"$run":1,', runKey, RUN_ITEMS, '["');
      box.pieces++;
      box.single = false;
    }
    if (json === undefined) parts.push(id, '"]');
    else parts.push(id, '",', json, ']');
    box.expires = false;
    this.added(this.outboxes, node, box, bytes);
  }

  /** The outbox of a node, first sending what it holds when `bytes` more would not fit its frame. */
  private boxFor(outboxes: Map<string, Outbox>, node: string, bytes: number): Outbox {
    let box = outboxes.get(node);
    if (box === undefined) {
      box = {
        parts: ['['],
        pieces: 0,
        single: false,
        runKey: undefined,
        count: 0,
        envelopes: outboxes === this.outboxes ? undefined : [],
        bytes: 0,
        deadline: undefined,
        expires: true,
      };
      outboxes.set(node, box);
    }
    if (box.count > 0 && box.bytes + bytes > this.limits.maxBatchBytes) {
      this.send(outboxes === this.outboxes ? 'node' : 'reply', node, box);
    }
    return box;
  }

  /** Counts an envelope added to `box`: the frame goes now when full, else at the end of the turn. */
  private added(outboxes: Map<string, Outbox>, node: string, box: Outbox, bytes: number): void {
    box.count++;
    box.bytes += bytes + 1;
    if (box.count >= this.limits.maxBatchCount) {
      this.send(outboxes === this.outboxes ? 'node' : 'reply', node, box);
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      resolved.then(this.flushTurn);
    }
  }

  private tooLarge(type: string, to: string, bytes: number): TroupeError {
    const limit = this.limits.maxMessageBytes;
    return new TroupeError(
      'ERR_MESSAGE_TOO_LARGE',
      `"${type}" to ${to} is ${bytes} bytes; the limit is ${limit}`,
      {
        details: { to, type, bytes, limit },
      },
    );
  }

  private readonly flushTurn = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  /** Sends every queued frame now. */
  flush(): void {
    // Boxes live for a turn: destinations named by the wire (reply addresses) do not pile up.
    for (const [node, box] of this.outboxes) if (box.count > 0) this.send('node', node, box);
    for (const [node, box] of this.replyOutboxes) if (box.count > 0) this.send('reply', node, box);
    // Destinations named by the wire (reply addresses) must not pile up: forget them past a bound.
    if (this.outboxes.size > 1024) this.outboxes.clear();
    if (this.replyOutboxes.size > 1024) this.replyOutboxes.clear();
  }

  private send(channel: 'node' | 'reply', node: string, box: Outbox): void {
    closeRun(box);
    const parts = box.parts;
    // One plain envelope goes without brackets.
    if (box.pieces === 1 && box.single) parts[0] = '';
    else parts.push(']');
    const text = parts.join('');
    const envelopes = box.envelopes;
    let bytes: Uint8Array | undefined;
    const frame: Frame = {
      // Encoded on first use: a transport that carries text never asks.
      get bytes() {
        bytes ??= Buffer.from(text, 'utf8');
        return bytes;
      },
      text,
      deadline: box.expires ? box.deadline : undefined,
      // A node frame's envelopes are read back from its text only if it fails.
      fail: (error) =>
        envelopes === undefined ? this.lostFrame(text, error) : this.failed(envelopes, error),
    };
    box.parts = ['['];
    box.pieces = 0;
    box.single = false;
    box.count = 0;
    box.envelopes = envelopes === undefined ? undefined : [];
    box.bytes = 0;
    box.deadline = undefined;
    box.expires = true;
    this.transport.publish(channel, node, frame);
  }

  /** Envelopes that could not be sent: each is a dead letter, and an ask hears at once. */
  private failed(envelopes: readonly Envelope[], error: TroupeError): void {
    const reason = error.details?.expired === true ? 'expired' : 'transport-failed';
    for (const envelope of envelopes) this.undelivered(envelope, reason, error);
  }

  // ---- Receiving ----

  inbound(bytes: Uint8Array): void {
    // An oversize frame is refused before it is decoded.
    this.inboundText(bytes.length > this.frameLimit() ? '' : bytesToText(bytes), bytes.length);
  }

  /** The largest frame accepted. */
  private frameLimit(): number {
    return Math.max(this.limits.maxMessageBytes, this.limits.maxBatchBytes) + 1024;
  }

  inboundText(text: string, size = text.length): void {
    const items = this.decodeFrame(text, size, 'inbound');
    if (items === undefined) return;
    try {
      this.inboundItems(items);
    } catch (error) {
      // A defect, not the sender's fault: report it and keep receiving.
      this.host.reportDefect(this.replyAddress, error);
    }
  }

  private inboundItems(items: unknown[]): void {
    if (this.blocked) {
      for (const item of items) this.backlog.push(item);
      return;
    }
    this.deliverAll(items, 0);
  }

  /** Delivers arrivals in order; one whose schema answers asynchronously holds back the rest. */
  private deliverAll(items: readonly unknown[], from: number): void {
    const now = this.host.clock.wallNow();
    for (let i = from; i < items.length; i++) {
      if (this.routeNamed(items[i])) continue;
      const admitted = this.admitKnown(items[i], now) ?? admitEnvelope(this.host, items[i], now);
      if (!('target' in admitted)) {
        this.replyToRefusal(items[i], admitted.error);
        continue;
      }
      const { envelope, spec } = admitted;
      const checked = validate(spec.body, envelope.body, envelope.type, envelope.to);
      if (checked instanceof Promise) {
        this.blocked = true;
        checked.then((result) => {
          try {
            this.accept(admitted, result, now);
          } finally {
            const rest = [...items.slice(i + 1), ...this.backlog.splice(0)];
            this.blocked = false;
            this.deliverAll(rest, 0);
          }
        });
        return;
      }
      this.accept(admitted, checked, now);
    }
  }

  private lastTo: string | undefined;
  private lastTarget: Cell | undefined;
  /** Live targets by address, so that most arrivals skip parsing their address. */
  private readonly targets = new Map<string, Cell>();
  /** Per behaviour, what each wire type names: the message and its spec. */
  private readonly routes = new WeakMap<object, Map<string, { message: string; spec: MessageSpec } | null>>();

  /**
   * The common case of {@link admitEnvelope}, from caches: a well-formed envelope to a live actor
   * seen before, of a type it speaks, not expired. Undefined sends it down the full checks, which
   * also report refusals.
   */
  private admitKnown(data: unknown, now: number): Admitted | IngressFailure | undefined {
    if (typeof data !== 'object' || data === null) return undefined;
    const to = (data as { to?: unknown }).to;
    const type = (data as { type?: unknown }).type;
    if (typeof to !== 'string' || typeof type !== 'string') return undefined;
    // Arrivals come in runs to one actor: a one-entry cache before the map.
    const target = to === this.lastTo ? this.lastTarget : this.targets.get(to);
    if (target === undefined || !target.alive) return this.learnTarget(to, data, now);
    this.lastTo = to;
    this.lastTarget = target;
    let routes = this.routes.get(target.behavior);
    if (routes === undefined) {
      routes = new Map();
      this.routes.set(target.behavior, routes);
    }
    let route = routes.get(type);
    if (route === undefined) {
      const resolved = resolveMessage(this.host, target.behavior, type);
      route = resolved === null || 'unspoken' in resolved ? null : resolved;
      if (routes.size < 1024) routes.set(type, route);
    }
    if (route === null) return undefined;
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(data);
    } catch {
      return undefined;
    }
    if (envelope.deadline !== undefined && envelope.deadline <= now) return undefined;
    const isAsk = envelope.replyTo !== undefined || envelope.correlationId !== undefined;
    if (route.spec.kind === 'ask' && !isAsk) return undefined;
    return { envelope, target, message: route.message, spec: route.spec };
  }

  /** Admits through the full checks and remembers the target for the next arrivals. */
  private learnTarget(to: string, data: unknown, now: number): Admitted | IngressFailure {
    this.targets.delete(to);
    const admitted = admitEnvelope(this.host, data, now);
    if ('target' in admitted) {
      if (this.targets.size >= 10_000) this.targets.clear();
      this.targets.set(to, admitted.target);
      this.lastTo = to;
      this.lastTarget = admitted.target;
    }
    return admitted;
  }

  private accept(admitted: Admitted, checked: Validated, now: number): void {
    const from = admitted.envelope.from;
    handOver(this.host, admitted, checked, now, from === undefined ? undefined : this.senderRef(from), this);
  }

  /** The outcome of an arrived envelope goes back to the asking node (a tell's failure has nowhere to go). */
  respond(envelope: Envelope, result: IngressResult): void {
    this.reply(envelope, result);
  }

  /** Sender refs by address: one ref per remote sender, not one per message. */
  private readonly senders = new Map<string, ActorRef<any>>();

  private senderRef(from: Address): ActorRef<any> | undefined {
    const known = this.senders.get(from);
    if (known !== undefined) return known;
    let ref: ActorRef<any> | undefined;
    try {
      ref = this.host.ref(from);
    } catch {
      return undefined;
    }
    // Refs to other nodes are stable; a local one is looked up again (the actor may stop).
    if (ref instanceof RemoteRef) {
      if (this.senders.size >= 10_000) this.senders.clear();
      this.senders.set(from, ref);
    }
    return ref;
  }

  private replyToRefusal(data: unknown, error: TroupeError): void {
    const e = data as Partial<Envelope> | null;
    if (typeof e !== 'object' || e === null) return;
    if (typeof e.replyTo !== 'string' || typeof e.correlationId !== 'string') return;
    this.reply(e as Envelope, { ok: false, error });
  }

  /** Sends the outcome of an ask back to the asking node. */
  private reply(
    envelope: Envelope,
    result: { ok: true; reply?: unknown } | { ok: false; error: TroupeError },
  ): void {
    if (envelope.replyTo === undefined || envelope.correlationId === undefined) return;
    if (envelope.correlationId.length > MAX_CORRELATION_ID) return;
    let node: string;
    try {
      node = nodeOf(envelope.replyTo);
    } catch {
      return;
    }
    const body = replyBody(result);
    const reply: Envelope = {
      id: this.nextId(),
      to: envelope.replyTo,
      type: REPLY,
      body,
      correlationId: envelope.correlationId,
    };
    try {
      this.enqueue(this.replyOutboxes, node, reply);
    } catch (error) {
      // The reply itself cannot go (not JSON, too large): the asker hears that instead.
      const failure = TroupeError.is(error)
        ? error
        : new TroupeError('ERR_NOT_PLAIN_DATA', 'the reply is not JSON', { cause: error });
      try {
        this.enqueue(this.replyOutboxes, node, {
          ...reply,
          body: { ok: false, error: { code: failure.code, message: failure.message } },
        });
      } catch {
        // Not even the error fits: the asker's own deadline ends its wait.
        this.host.deadLetter(envelope.replyTo, envelope.to, REPLY, body, 'transport-failed', failure);
      }
    }
  }

  replies(bytes: Uint8Array): void {
    this.repliesText(bytes.length > this.frameLimit() ? '' : bytesToText(bytes), bytes.length);
  }

  repliesText(text: string, size = text.length): void {
    const items = this.decodeFrame(text, size, 'replies');
    if (items === undefined) return;
    for (const item of items) {
      try {
        this.settleReply(item);
      } catch (error) {
        this.host.reportDefect(this.replyAddress, error);
      }
    }
  }

  private settleReply(item: unknown): void {
    const e = item as Partial<Envelope> | null;
    const correlationId = typeof e === 'object' && e !== null ? e.correlationId : undefined;
    const body = typeof e === 'object' && e !== null ? (e.body as Partial<WireReply> | undefined) : undefined;
    const to = typeof e?.to === 'string' ? e.to : this.replyAddress;
    if (
      typeof correlationId !== 'string' ||
      typeof body !== 'object' ||
      body === null ||
      typeof body.ok !== 'boolean'
    ) {
      this.host.deadLetter(
        to,
        undefined,
        REPLY,
        item,
        'malformed',
        new TroupeError('ERR_VALIDATION', 'Malformed reply: it needs a correlationId and a body { ok }'),
      );
      return;
    }
    const entry = this.pending.get(correlationId);
    if (entry === undefined) {
      this.host.deadLetter(
        to,
        undefined,
        REPLY,
        body,
        'expired',
        new TroupeError('ERR_ASK_TIMEOUT', `a reply to an ask that is no longer waiting (${correlationId})`),
      );
      return;
    }
    const { ask, spec } = entry;
    if (body.ok === true) {
      const value = (body as { value: unknown }).value;
      if (spec?.kind === 'ask')
        settleValidated(spec.reply, value, `reply to "${ask.type}" from ${ask.to}`, ask);
      else ask.resolve(value);
      return;
    }
    ask.reject(remoteError((body as { error?: unknown }).error, ask.to));
  }

  /** Parses a frame; a frame that is not JSON is one dead letter. */
  private decodeFrame(text: string, size: number, channel: string): unknown[] | undefined {
    const to = this.replyAddress;
    const limit = this.frameLimit();
    if (size > limit) {
      this.host.deadLetter(
        to,
        undefined,
        `(${channel} frame)`,
        undefined,
        'oversize',
        new TroupeError('ERR_MESSAGE_TOO_LARGE', `a ${size}-byte frame arrived; the limit is ${limit}`, {
          details: { bytes: size, limit },
        }),
      );
      return undefined;
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (cause) {
      this.host.deadLetter(
        to,
        undefined,
        `(${channel} frame)`,
        undefined,
        'malformed',
        new TroupeError('ERR_VALIDATION', `a ${channel} frame is not JSON`, { cause }),
      );
      return undefined;
    }
    if (Array.isArray(data) && data.length === 0) {
      this.host.deadLetter(
        to,
        undefined,
        `(${channel} frame)`,
        data,
        'malformed',
        new TroupeError('ERR_VALIDATION', `a ${channel} frame holds no envelope`),
      );
      return undefined;
    }
    const items = Array.isArray(data) ? data : [data];
    return items.some(isRun) ? expandRuns(items) : items;
  }
}

/** A frame's bytes as text: most frames are ASCII, which decodes faster as latin1 (the same characters). */
function bytesToText(bytes: Uint8Array): string {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return isAscii(buffer) ? buffer.toString('latin1') : buffer.toString('utf8');
}

/** What follows a run's shared fields, before its items (the form of `runElement`). */
const RUN_ITEMS = ',"items":[';

/** Ends the run being built in an outbox (it was counted as an element when it began). */
function closeRun(box: Outbox): void {
  if (box.runKey === undefined) return;
  box.parts.push(']}');
  box.runKey = undefined;
}

/** A body JSON cannot hold. */
function notJson(envelope: { readonly to: string; readonly type: string }, cause: unknown): TroupeError {
  return new TroupeError('ERR_NOT_PLAIN_DATA', `"${envelope.type}" to ${envelope.to} is not JSON`, {
    cause,
    details: { to: envelope.to, type: envelope.type },
  });
}

/** A ref to an actor of another node of this cluster. */
export class RemoteRef implements ActorRef<any> {
  constructor(
    private readonly router: Router,
    readonly address: Address,
    readonly node: string,
    private readonly protocol: AnyProtocol | undefined,
    /** Set for a named actor's ref: the cluster places it. */
    readonly named?: { readonly kind: string; readonly key: string },
  ) {}

  tell(type: string, body: unknown, options?: TellOptions): void {
    this.router.tell(this, type, body, options);
  }

  ask(type: string, body: unknown, options?: AskOptions): Promise<any> {
    return this.router.ask(this, type, body, options);
  }

  private heads: Map<string, string> | undefined;

  /** `<protocol>.<message>` when the protocol is known, else the bare name the target resolves. */
  wireType(type: string): string {
    return this.protocol === undefined ? type : `${this.protocol.name}.${type}`;
  }

  /** `"to":...,"type":...` of an envelope of this type, serialized once. */
  head(type: string): string {
    this.heads ??= new Map();
    let head = this.heads.get(type);
    if (head === undefined) {
      head = `"to":${JSON.stringify(this.address)},"type":${JSON.stringify(this.wireType(type))}`;
      if (this.heads.size < 256) this.heads.set(type, head);
    }
    return head;
  }

  specOf(type: string): MessageSpec | undefined {
    if (this.protocol === undefined || !Object.hasOwn(this.protocol.messages, type)) return undefined;
    return this.protocol.messages[type] as MessageSpec;
  }
}
