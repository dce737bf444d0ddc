import type { Observable } from 'rxjs';
import type {
  Address,
  AnyProtocol,
  AskKeys,
  AskSpec,
  BodyOf,
  Infer,
  MessageMap,
  ReplyOf,
  Schema,
  TellKeys,
  TellSpec,
  TraceContext,
} from '../../protocols/index.js';
import type { GroupChange } from '../groups/events.js';
import type { Clock } from '../time/clock.js';
import type { Random } from '../time/random.js';
import type { DeadLetterEvent, PublishedEvent, SystemEvent } from './events.js';
import type { RestartPolicy, RestartType } from './supervision/policy.js';

/** Options of one `ask`. */
export interface AskOptions {
  /** How long to wait for the reply. Defaults to the system's `askTimeoutMs` (5000). */
  readonly timeoutMs?: number;
  /** Aborting it rejects the ask with `ERR_ASK_ABORTED`. */
  readonly signal?: AbortSignal;
  /**
   * The W3C trace context the request belongs to. Inside a handler it defaults to the current
   * message's, so a trace follows a request from node to node.
   */
  readonly trace?: TraceContext;
}

/** Options of one `tell`. */
export interface TellOptions {
  /**
   * The sender the receiver sees as `ctx.sender`. Inside a synchronous handler the current actor is
   * the sender by default; after an `await` it is not known unless given here.
   */
  readonly from?: ActorRef<any>;
  /** The W3C trace context; inside a handler it defaults to the current message's. */
  readonly trace?: TraceContext;
}

/**
 * A handle to an actor, local or (later) remote: user code cannot tell which. `ActorRef` without a
 * protocol is the untyped ref (any message name, unknown body) that every typed ref is assignable to.
 * Refs stay valid across restarts; messages to a stopped actor become dead letters.
 */
export interface ActorRef<P extends AnyProtocol = any> {
  /** `troupe://<system>/<node>/<path>`. */
  readonly address: Address;
  /**
   * Sends a message without waiting.
   * @throws TroupeError `ERR_MAILBOX_FULL` when the receiver's mailbox is full and its policy is `reject`;
   * `ERR_NOT_PLAIN_DATA` in development mode for a body that is not plain data.
   */
  tell<K extends TellKeys<P>>(type: K, body: BodyOf<P, K>, options?: TellOptions): void;
  /**
   * Sends a request and resolves with the reply. Settles by its deadline: rejects with
   * `ERR_ASK_TIMEOUT`, `ERR_ASK_ABORTED`, `ERR_ACTOR_STOPPED`, `ERR_NO_SUCH_ACTOR`, `ERR_MAILBOX_FULL`,
   * `ERR_VALIDATION`, `ERR_UNKNOWN_MESSAGE` or `ERR_ACTOR_CRASHED`.
   */
  ask<K extends AskKeys<P>>(type: K, body: BodyOf<P, K>, options?: AskOptions): Promise<ReplyOf<P, K>>;
}

/** Keyed timers of one actor. They deliver a message to the actor itself; stop and restart cancel them. */
export interface Timers<P extends AnyProtocol> {
  /** Delivers `type`/`body` once after `delayMs`. Replaces a timer with the same key. */
  startSingle<K extends TellKeys<P>>(key: string, delayMs: number, type: K, body: BodyOf<P, K>): void;
  /** Delivers `type`/`body` every `intervalMs`. Replaces a timer with the same key. */
  startPeriodic<K extends TellKeys<P>>(key: string, intervalMs: number, type: K, body: BodyOf<P, K>): void;
  cancel(key: string): void;
  cancelAll(): void;
  isActive(key: string): boolean;
}

/** Why an actor terminated. */
export type ExitReason =
  | { readonly kind: 'normal' }
  | { readonly kind: 'shutdown' }
  | { readonly kind: 'crashed'; readonly error: Error }
  /** Watched through an address no live actor had (it may have stopped long ago, or never existed). */
  | { readonly kind: 'unknown' };

/** What a handler sees besides the message body. Valid only while the actor is alive. */
export interface ActorContext<S, P extends AnyProtocol> {
  /** The actor's state; assign to replace it. Reset to the initial state on restart. */
  state: S;
  readonly self: ActorRef<P>;
  /** The sender of the current message, when known. */
  readonly sender: ActorRef<any> | undefined;
  /** The W3C trace context the current message came with, if any (remote messages carry theirs). */
  readonly trace: TraceContext | undefined;
  /**
   * Aborted when this incarnation ends: the actor stops, crashes, is restarted or a handler passes
   * its deadline. One signal serves the hooks and every handler of the incarnation, so work started
   * in `preStart` is cancelled too.
   */
  readonly signal: AbortSignal;
  readonly parent: ActorRef<any> | undefined;
  readonly system: ActorSystem;
  readonly timers: Timers<P>;
  /** Spawns a child supervised by this actor under its restart policy. */
  spawn<CP extends AnyProtocol, CS>(behavior: Behavior<CP, CS>, options?: SpawnOptions): ActorRef<CP>;
  /**
   * Stops this actor (no argument: a normal exit) or one of its children; resolves when it has stopped.
   * Called in a handler that returns no promise, the stop begins once the handler returns. Called while
   * a handler's promise is pending (an async handler, or one that returns this promise), the stop
   * begins at once without waiting for that handler, so awaiting it cannot deadlock: `signal` aborts,
   * and an ask still gets the handler's reply if it comes.
   */
  stop(child?: ActorRef<any>): Promise<void>;
  /** The live children, in start order. */
  children(): ActorRef<any>[];
  /**
   * Delivers a Terminated notice to the behaviour's `terminated` hook when `ref` stops (at once if it
   * is already dead). The notice queues in the mailbox behind messages that arrived before it, so it
   * comes after what the watched actor sent first.
   * @throws TroupeError `ERR_ILLEGAL_STATE` when the behaviour has no `terminated` hook.
   */
  watch(ref: ActorRef<any>): void;
  unwatch(ref: ActorRef<any>): void;
  /** Replaces the handlers for the next messages (same protocols, same state). */
  become(handlers: Handlers<P, S>): void;
  /** Returns to the behaviour's own handlers. */
  unbecome(): void;
  /** Sets the current message aside; `unstashAll()` puts stashed messages back in front of the mailbox. */
  stash(): void;
  unstashAll(): void;
}

type HandlerFor<Spec, S, P extends AnyProtocol> =
  Spec extends AskSpec<infer B, infer R>
    ? (body: Infer<B>, ctx: ActorContext<S, P>) => Infer<R> | PromiseLike<Infer<R>>
    : Spec extends TellSpec<infer B>
      ? (body: Infer<B>, ctx: ActorContext<S, P>) => void | PromiseLike<void>
      : never;

/** One handler per message of every protocol in `P`; ask handlers return (or resolve) the reply. */
export type Handlers<P extends AnyProtocol, S> = {
  [K in keyof MessageMap<P> & string]: HandlerFor<MessageMap<P>[K], S, P>;
};

/** Options of a mailbox. */
export interface MailboxOptions {
  /** Most messages held. Defaults to 10,000. */
  readonly capacity?: number;
  /**
   * What happens to a message that finds the mailbox full. Every drop is a dead letter.
   * `reject` (default): the sender gets `ERR_MAILBOX_FULL`; `drop-newest`: the new message is dropped;
   * `drop-oldest`: the oldest queued message is dropped to make room.
   */
  readonly overflow?: 'reject' | 'drop-newest' | 'drop-oldest';
}

/** How an actor is defined. Build one with `behavior()`. */
export interface BehaviorDefinition<P extends AnyProtocol, S> {
  /** The protocols this actor speaks. Every message of each needs a handler. */
  readonly protocols: readonly P[];
  /** Makes the initial state; called at start and at every restart. */
  readonly initialState?: () => S;
  readonly handlers: Handlers<P, S>;
  /** Runs before the first message. A throw (or rejection) is a crash (`ERR_START_FAILED`). */
  readonly preStart?: (ctx: ActorContext<S, P>) => void | PromiseLike<void>;
  /** Runs after the actor has stopped processing and its children have stopped. */
  readonly postStop?: (ctx: ActorContext<S, P>) => void | PromiseLike<void>;
  /** Runs on the failed instance before a restart. Defaults to `postStop`. */
  readonly preRestart?: (ctx: ActorContext<S, P>, error: Error) => void | PromiseLike<void>;
  /** Runs on the fresh instance after a restart. Defaults to `preStart`. */
  readonly postRestart?: (ctx: ActorContext<S, P>, error: Error) => void | PromiseLike<void>;
  /** Receives the termination of a watched actor. */
  readonly terminated?: (ref: ActorRef<any>, reason: ExitReason, ctx: ActorContext<S, P>) => void;
  /** A handler still running after this long is a crash (`ERR_HANDLER_TIMEOUT`). No limit by default. */
  readonly handlerDeadlineMs?: number;
  readonly mailbox?: MailboxOptions;
  /**
   * What this actor can handle, for `system.route(task)`: a score per capability (higher is
   * better; 0 or less, or absent: cannot), or a function of the task giving its score.
   */
  readonly capabilities?: Capabilities;
}

/** A task to route with `system.route`: the capability it needs, and anything a score may read. */
export interface RouteTask {
  readonly capability: string;
  readonly [key: string]: unknown;
}

/** Scores per capability, or a function of the task (undefined or 0 or less: cannot handle it). */
export type Capabilities = Readonly<Record<string, number>> | ((task: RouteTask) => number | undefined);

declare const behaviorBrand: unique symbol;

/** A compiled, reusable behaviour. Spawn it as many times as you like. */
export interface Behavior<P extends AnyProtocol, S> {
  readonly [behaviorBrand]: { readonly protocol: P; readonly state: S };
  readonly protocols: readonly P[];
  /** `supervisor` for behaviours built by the supervisors layer; shown in `tree()`. */
  readonly kind: 'worker' | 'supervisor';
}

/** Options of one spawn. */
export interface SpawnOptions {
  /** Unique among siblings; no "/" and not starting with "$". Anonymous actors get `$<n>`. */
  readonly name?: string;
  /** When the parent restarts this actor. Defaults to `transient` (restart after a crash only). */
  readonly restart?: RestartType;
  /** How long the parent waits for this actor to stop before going on. Defaults to 5000. */
  readonly shutdownMs?: number;
  /** How this actor supervises its own children. Defaults to the system's `supervision`. */
  readonly supervision?: Partial<RestartPolicy>;
  readonly mailbox?: MailboxOptions;
  /** Validate every message against its schema (`always`) or only at process boundaries (default). */
  readonly validate?: 'always' | 'boundary';
}

/** A node of `system.tree()`. */
export interface TreeNode {
  readonly name: string;
  readonly address: Address;
  readonly kind: 'worker' | 'supervisor' | 'guardian';
  readonly status: ActorStatus;
  readonly restarts: number;
  readonly strategy: RestartPolicy['strategy'];
  readonly mailboxSize: number;
  readonly children: readonly TreeNode[];
}

/** The lifecycle of one actor. */
export type ActorStatus = 'starting' | 'running' | 'suspended' | 'restarting' | 'stopping' | 'stopped';

/** The lifecycle of the system. */
export type SystemStatus =
  | { readonly tag: 'running' }
  | { readonly tag: 'draining' }
  /** Its tree is being stopped (after a drain, on close, or after a failure it is not yet `failed`). */
  | { readonly tag: 'stopping' }
  | { readonly tag: 'stopped' }
  | { readonly tag: 'failed'; readonly error: Error };

/** Observes or filters messages; `send` runs in `tell`/`ask`, `receive` wraps the handler. */
export interface Middleware {
  readonly name: string;
  /** Return `false` to drop the message (it becomes a dead letter). */
  send?(message: MessageInfo): void | boolean;
  /** Must call `next()` once and return its result. */
  receive?(message: MessageInfo, next: () => unknown): unknown;
}

/** A message as middleware sees it. */
export interface MessageInfo {
  readonly to: Address;
  readonly from: Address | undefined;
  readonly type: string;
  readonly body: unknown;
  readonly ask: boolean;
}

/** Options of `drain()`. */
export interface DrainOptions {
  /** How long mailboxes may take to empty before the tree is stopped anyway. Defaults to 5000. */
  readonly timeoutMs?: number;
}

/** A member of the cluster as one node sees it (`system.members()`). */
export interface MemberInfo {
  readonly node: string;
  /** `suspect`: it missed a heartbeat; `leaving`: it is handing its named actors over. */
  readonly state: 'up' | 'suspect' | 'leaving';
}

/**
 * The lifecycle verbs of every resource that holds something open (a system, a transport, a journal,
 * a projection, a breaker, a search index), as nats.js names them. All are idempotent.
 */
export interface Closeable {
  /** Finishes what is in flight, then closes; resolves once closed. */
  drain(): Promise<void>;
  /** Closes now: what is in flight fails with a typed error, or is cut short. */
  close(): Promise<void>;
  /** Resolves (never rejects) once closed: with the error that ended it, if one did. */
  closed(): Promise<Error | undefined>;
  /** Drains (`await using x = ...`). */
  [Symbol.asyncDispose](): Promise<void>;
}

/** An in-process actor system: the root of one supervision tree. */
export interface ActorSystem extends Closeable {
  readonly name: string;
  readonly node: string;
  readonly status: SystemStatus;
  /**
   * The system's clock (its `clock` option): components that run beside the system (guards, an
   * agent's steps, the console) take their time from it, so a simulated clock moves them too.
   */
  readonly clock: Clock;
  /** The system's random source (its `random` option), for the same reason. */
  readonly random: Random;
  /** Every lifecycle event, dead letter and overflow. */
  readonly events$: Observable<SystemEvent>;
  /** The dead letters only. */
  readonly deadLetters$: Observable<DeadLetterEvent>;
  /** Spawns a top-level actor. */
  spawn<P extends AnyProtocol, S>(behavior: Behavior<P, S>, options?: SpawnOptions): ActorRef<P>;
  /**
   * Stops a top-level actor of this system (and its subtree); resolves once it has stopped. A ref
   * made from an address stops the actor it names now, if any.
   * @throws TroupeError `ERR_ILLEGAL_STATE` (rejected) for an actor with a parent (its parent stops
   * it: `ctx.stop(child)`) or one of another node or system.
   */
  stop(ref: ActorRef<any>): Promise<void>;
  /**
   * A ref for an address, on this node or (with a transport) another node of the cluster. A typed
   * ref needs its protocol, which also checks remote replies against their schemas; without one the
   * ref is untyped (any message name, bodies and replies unknown). A ref that names no live actor
   * turns messages into dead letters.
   * @example
   * ```ts
   * const jobs = system.ref('troupe://app/local/jobs', Jobs); // ActorRef<typeof Jobs>
   * const anything = system.ref('troupe://app/local/jobs'); // untyped
   * ```
   */
  ref<P extends AnyProtocol>(address: Address, protocol: P): ActorRef<P>;
  ref(address: Address): ActorRef;
  /**
   * A ref to the named (virtual) actor `kind`/`key` (`troupe://<cluster>/@<kind>/<key>`): activated on
   * its first message on the node that placement picks, at most once in the cluster, passivated when
   * idle, and activated again elsewhere if its node dies. The kind must be in the `kinds` option. As
   * with {@link ActorSystem.ref}, a typed ref needs its protocol.
   * @throws TroupeError `ERR_NO_ROUTE` for a kind this node does not have; `ERR_INVALID_NAME` for a key
   * its kind's `keys` rules refuse.
   */
  actorOf<P extends AnyProtocol>(kind: string, key: string, protocol: P): ActorRef<P>;
  actorOf(kind: string, key: string): ActorRef;
  /**
   * This node's view of its cluster: every member it counts as live, itself included, sorted by node
   * id. Empty for a system without named actors (`kinds`).
   */
  members(): readonly MemberInfo[];
  /**
   * The topic `name` of the cluster, whose messages `schema` checks: publish to it, subscribe actors
   * of this node to it. Every node declares the topics it uses (with the same schema); a node
   * without a transport has local topics only.
   * @throws TroupeError `ERR_INVALID_NAME` for a name that is not NATS subject tokens
   * (`[A-Za-z0-9_-]` joined by `.`); `ERR_INVALID_OPTION` for a name declared with another schema.
   * @example
   * ```ts
   * const news = system.topic('news', z.object({ headline: z.string() }));
   * news.publish({ headline: 'Tides are late' });
   * ```
   */
  topic<S extends Schema>(name: string, schema: S): Topic<Infer<S>>;
  /** Named process groups across the cluster (Erlang's `pg`): join, leave, members, changes. */
  readonly groups: Groups;
  /** The live actors that speak `protocol`. */
  find<P extends AnyProtocol>(protocol: P): ActorRef<P>[];
  /**
   * The live actor of this system best able to handle `task`: the highest score its behaviour's
   * `capabilities` give (above 0), and among equal scores the least busy (messages waiting, plus one
   * for a handler still running).
   * With `protocol`, only actors that speak it. Undefined when no live actor can.
   * @throws TroupeError `ERR_INVALID_OPTION` when the task has no capability name.
   * @example
   * ```ts
   * const researcher = system.route({ capability: 'research', topic: 'tides' }, Agent);
   * ```
   */
  route<P extends AnyProtocol>(task: RouteTask, protocol: P): ActorRef<P> | undefined;
  route(task: RouteTask): ActorRef | undefined;
  /**
   * Publishes an event of a layer above the kernel (a breaker transition, an agent step: see
   * `TroupeEvents`) on `events$`, stamped with the system's clock. The kernel's own events are not
   * published this way. While nobody subscribes, an event that carries an `error` (an `Error`: a
   * defect such as `snapshot-failed`) is written to `deadLetterLog` instead, with its stack, up to
   * `deadLetterLogLimit` of them; other events are dropped.
   */
  publish(event: PublishedEvent): void;
  /** The live tree with restart counts. */
  tree(): TreeNode;
  /** Adds middleware; returns a function that removes it. */
  use(middleware: Middleware): () => void;
  /** Refuses new messages from outside, lets mailboxes drain (up to a timeout), then stops leaf-first. */
  drain(options?: DrainOptions): Promise<void>;
  /** Stops the tree now, leaf-first. */
  close(): Promise<void>;
  /** Resolves when the system has stopped: with the error if it failed, otherwise with undefined. */
  closed(): Promise<Error | undefined>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The messages of `P` whose body accepts a `T`: where a subscriber can take a topic's messages. */
export type AcceptingKeys<P extends AnyProtocol, T> = {
  [K in TellKeys<P>]: [T] extends [BodyOf<P, K>] ? K : never;
}[TellKeys<P>];

/**
 * A named, typed topic of the cluster: `system.topic(name, schema)`. Every publication goes to every
 * subscriber on every node, as a tell (at most once across nodes, in order per publisher and node).
 * Subscribers on the publishing node get it directly, without the network; other nodes get it over
 * the transport's topic channel (NATS subject `<prefix>.topic.<name>`), and only while some node
 * other than this one has a subscriber. A subscription ends when the subscriber stops.
 *
 * @example
 * ```ts
 * const prices = system.topic('prices', z.object({ sku: z.string(), cents: z.number() }));
 * prices.subscribe(watcher, 'price'); // watcher speaks a protocol with `price: tell(...)`
 * prices.publish({ sku: 'tea', cents: 350 });
 * ```
 */
export interface Topic<T> {
  readonly name: string;
  /**
   * Validates `message` against the topic's schema and tells it to every subscriber; returns how
   * many subscribers of this node it was told to (other nodes' are not counted: they are not known
   * to have it until they do).
   * @throws TroupeError `ERR_VALIDATION` for a message the schema refuses (nothing is sent);
   * `ERR_MESSAGE_TOO_LARGE` past the node's `maxMessageBytes`; `ERR_NOT_PLAIN_DATA` for a message
   * that is not JSON; `ERR_INVALID_OPTION` when the schema validates asynchronously (a topic's must not).
   */
  publish(message: T): number;
  /**
   * Subscribes an actor of this node: each publication comes to it as a tell of `type` (a message of
   * its protocol whose body accepts the topic's). Subscribing again replaces the type. Returns a
   * function that unsubscribes.
   * @throws TroupeError `ERR_INVALID_OPTION` for a ref that is not a live actor of this node, or a
   * `type` that is not one of its tell messages.
   */
  subscribe<P extends AnyProtocol>(subscriber: ActorRef<P>, type: AcceptingKeys<P, T>): () => void;
  /** Ends a subscription; false when there was none. */
  unsubscribe(subscriber: ActorRef<any>): boolean;
  /** This node's subscribers. */
  subscribers(): ActorRef<any>[];
  /** The other nodes this node knows to have subscribers (publications go over the network only then). */
  nodes(): string[];
}

/**
 * Named process groups across the cluster (Erlang's `pg`): `system.groups`. An actor joins a group
 * on its own node; every node sees every group's members, local and remote. A member leaves when
 * it calls `leave`, when it stops, and when its node goes down.
 *
 * @example
 * ```ts
 * system.groups.join('researchers', researcher);
 * for (const member of system.groups.members('researchers', Research)) member.tell('topic', { text: 'tides' });
 * ```
 */
export interface Groups {
  /**
   * Adds an actor of this node to `group` (joining twice is joining once). It leaves by itself when
   * it stops.
   * @throws TroupeError `ERR_INVALID_NAME` for an empty group name; `ERR_INVALID_OPTION` for a ref
   * that is not a live actor of this node (an actor joins on its own node, as in `pg`).
   */
  join(group: string, member: ActorRef<any>): void;
  /** Removes an actor of this node from `group`; false when it was not a member. */
  leave(group: string, member: ActorRef<any>): boolean;
  /**
   * The members of `group` on every node this node knows of: this node's first (in join order), then
   * the others' by node id. Remote members are as this node last heard from their node (within a
   * heartbeat, or the turn after a change). With `protocol`, typed refs.
   */
  members<P extends AnyProtocol>(group: string, protocol: P): ActorRef<P>[];
  members(group: string): ActorRef[];
  /** The members of `group` on this node. */
  localMembers<P extends AnyProtocol>(group: string, protocol: P): ActorRef<P>[];
  localMembers(group: string): ActorRef[];
  /** The names of the groups with at least one member anywhere, sorted. */
  names(): string[];
  /**
   * The membership changes of `group` (of every group without one), local and remote, from now on.
   * The same changes are `group-joined` and `group-left` events on `system.events$`.
   */
  changes(group?: string): Observable<GroupChange>;
}
