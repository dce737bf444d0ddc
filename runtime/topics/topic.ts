import {
  type Address,
  type Infer,
  invalidOption,
  type Schema,
  TroupeError,
  validate,
} from '../../protocols/index.js';
import type { Directory } from '../groups/directory.js';
import type { ActorRef, Topic } from '../kernel/api.js';
import type { Cell } from '../kernel/cell.js';
import type { DeadLetterReason } from '../kernel/events.js';
import type { Transport } from '../remoting/transport.js';

/** What the topics need from their system. */
export interface TopicsHost {
  readonly name: string;
  readonly node: string;
  readonly maxMessageBytes: number;
  readonly transport: Transport | undefined;
  directory(): Directory;
  localCell(ref: ActorRef<any>): Cell | undefined;
  deadLetter(
    to: Address,
    from: Address | undefined,
    type: string,
    body: unknown,
    reason: DeadLetterReason,
    error: TroupeError | undefined,
  ): void;
}

const TOPIC_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

interface TopicState {
  readonly name: string;
  readonly schema: Schema;
  readonly subscribers: Map<Cell, { type: string; unwatch: () => void }>;
  /** Subscribed to the transport's channel (while this node has a subscriber). */
  listening: boolean;
  /** `troupe://<cluster>/<node>/$topic/<name>`: where refused arrivals are addressed as dead letters. */
  readonly address: Address;
}

/** One node's topics. */
export class Topics {
  private readonly topics = new Map<string, TopicState>();
  private readonly clustered: boolean;

  constructor(private readonly host: TopicsHost) {
    const t = host.transport;
    this.clustered =
      t?.subscribeTopic !== undefined && t.unsubscribeTopic !== undefined && t.publishTopic !== undefined;
  }

  topic<S extends Schema>(name: string, schema: S): Topic<Infer<S>> {
    if (typeof name !== 'string' || name.length > 200 || !TOPIC_NAME.test(name)) {
      throw new TroupeError(
        'ERR_INVALID_NAME',
        `topic name ${JSON.stringify(name)}: letters, digits, "_" and "-", in tokens joined by "." (at most 200 characters)`,
        { details: { topic: name } },
      );
    }
    if (typeof schema !== 'object' || schema === null || !('~standard' in schema)) {
      throw invalidOption('schema', 'must be a Standard Schema (zod, valibot, arktype...)', schema);
    }
    let state = this.topics.get(name);
    if (state === undefined) {
      state = {
        name,
        schema,
        subscribers: new Map(),
        listening: false,
        address: `troupe://${this.host.name}/${this.host.node}/$topic/${name}`,
      };
      this.topics.set(name, state);
    } else if (state.schema !== schema) {
      throw invalidOption(
        'schema',
        `topic "${name}" is already declared on this node with another schema`,
        name,
      );
    }
    return new TopicHandle(this, state) as Topic<Infer<S>>;
  }

  subscribe(state: TopicState, subscriber: ActorRef<any>, type: string): () => void {
    const cell = this.host.localCell(subscriber);
    if (cell === undefined || !cell.alive) {
      throw invalidOption('subscriber', 'must be a live actor of this node', subscriber?.address);
    }
    const speaks = cell.behavior.protocols.some((p) => {
      const spec = Object.hasOwn(p.messages, type) ? p.messages[type] : undefined;
      return spec?.kind === 'tell';
    });
    if (typeof type !== 'string' || !speaks) {
      throw invalidOption('type', `must name a tell message of the subscriber ${cell.address}`, type);
    }
    const known = state.subscribers.get(cell);
    if (known !== undefined) known.type = type;
    else {
      const unwatch = cell.onExit(() => this.unsubscribe(state, cell));
      state.subscribers.set(cell, { type, unwatch });
      if (state.subscribers.size === 1) this.listen(state, true);
    }
    return () => {
      this.unsubscribe(state, cell);
    };
  }

  unsubscribe(state: TopicState, subscriber: ActorRef<any>): boolean {
    const cell = this.host.localCell(subscriber);
    const entry = cell === undefined ? undefined : state.subscribers.get(cell);
    if (entry === undefined) return false;
    entry.unwatch();
    state.subscribers.delete(cell!);
    if (state.subscribers.size === 0) this.listen(state, false);
    return true;
  }

  /** Follows the transport's channel only while this node has subscribers, and says so. */
  private listen(state: TopicState, on: boolean): void {
    if (!this.clustered || state.listening === on) return;
    state.listening = on;
    const transport = this.host.transport!;
    if (on) transport.subscribeTopic!(state.name, (bytes) => this.arrived(state, bytes));
    else transport.unsubscribeTopic!(state.name);
    this.host.directory().setInterest(state.name, on);
  }

  publish(state: TopicState, message: unknown): number {
    const checked = validate(state.schema, message, `message of topic "${state.name}"`);
    if (checked instanceof Promise) {
      void checked.catch(() => undefined);
      throw invalidOption(
        'schema',
        `topic "${state.name}" has a schema that validates asynchronously`,
        state.name,
      );
    }
    if (!checked.ok) throw checked.error;
    const value = checked.value;
    const told = this.deliver(state, value);
    if (this.clustered && this.host.directory().interested(state.name).length > 0) {
      let text: string;
      try {
        text = JSON.stringify({ o: this.host.node, b: value });
      } catch (cause) {
        throw new TroupeError('ERR_NOT_PLAIN_DATA', `a message of topic "${state.name}" is not JSON`, {
          cause,
          details: { topic: state.name },
        });
      }
      const bytes = Buffer.from(text, 'utf8');
      if (bytes.length > this.host.maxMessageBytes) {
        throw new TroupeError(
          'ERR_MESSAGE_TOO_LARGE',
          `a message of topic "${state.name}" is ${bytes.length} bytes; the limit is ${this.host.maxMessageBytes}`,
          { details: { topic: state.name, bytes: bytes.length, limit: this.host.maxMessageBytes } },
        );
      }
      this.host.transport!.publishTopic!(state.name, bytes);
    }
    return told;
  }

  /** Tells `value` to each subscriber of this node; one with a full mailbox does not stop the rest. */
  private deliver(state: TopicState, value: unknown): number {
    let told = 0;
    for (const [cell, { type }] of state.subscribers) {
      try {
        cell.tell(type, value);
        told++;
      } catch {
        // A full mailbox (`reject`) or a type it does not speak: the tell made it a dead letter.
      }
    }
    return told;
  }

  /** A publication of another node: untrusted bytes, checked like any arrival. */
  private arrived(state: TopicState, bytes: Uint8Array): void {
    if (state.subscribers.size === 0) return;
    const refuse = (reason: DeadLetterReason, error: TroupeError, body?: unknown) =>
      this.host.deadLetter(state.address, undefined, `(topic ${state.name})`, body, reason, error);
    if (bytes.length > this.host.maxMessageBytes + 1024) {
      refuse(
        'oversize',
        new TroupeError(
          'ERR_MESSAGE_TOO_LARGE',
          `a ${bytes.length}-byte publication of "${state.name}" arrived`,
          {
            details: { topic: state.name, bytes: bytes.length, limit: this.host.maxMessageBytes },
          },
        ),
      );
      return;
    }
    let data: { o?: unknown; b?: unknown };
    try {
      data = JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch (cause) {
      refuse(
        'malformed',
        new TroupeError('ERR_VALIDATION', `a publication of "${state.name}" is not JSON`, { cause }),
      );
      return;
    }
    if (typeof data !== 'object' || data === null || typeof data.o !== 'string') {
      refuse(
        'malformed',
        new TroupeError('ERR_VALIDATION', `a publication of "${state.name}" has no origin`),
        data,
      );
      return;
    }
    // Our own publication: its subscribers here had it directly.
    if (data.o === this.host.node) return;
    const checked = validate(state.schema, data.b, `message of topic "${state.name}"`);
    if (checked instanceof Promise) return;
    if (!checked.ok) {
      refuse('validation-failed', checked.error, data.b);
      return;
    }
    this.deliver(state, checked.value);
  }

  close(): void {
    for (const state of this.topics.values()) {
      for (const entry of state.subscribers.values()) entry.unwatch();
      state.subscribers.clear();
      if (state.listening) {
        state.listening = false;
        this.host.transport!.unsubscribeTopic!(state.name);
      }
    }
  }

  subscribersOf(state: TopicState): ActorRef<any>[] {
    return [...state.subscribers.keys()].filter((cell) => cell.alive);
  }

  nodesOf(state: TopicState): string[] {
    return this.clustered ? this.host.directory().interested(state.name) : [];
  }
}

class TopicHandle implements Topic<unknown> {
  constructor(
    private readonly topics: Topics,
    private readonly state: TopicState,
  ) {}

  get name(): string {
    return this.state.name;
  }

  publish(message: unknown): number {
    return this.topics.publish(this.state, message);
  }

  subscribe(subscriber: ActorRef<any>, type: string): () => void {
    return this.topics.subscribe(this.state, subscriber, type);
  }

  unsubscribe(subscriber: ActorRef<any>): boolean {
    return this.topics.unsubscribe(this.state, subscriber);
  }

  subscribers(): ActorRef<any>[] {
    return this.topics.subscribersOf(this.state);
  }

  nodes(): string[] {
    return this.topics.nodesOf(this.state);
  }
}
