import {
  type AnyProtocol,
  type AskKeys,
  type BodyOf,
  invalidOption,
  type ReplyOf,
  type TellKeys,
  TroupeError,
} from '../../protocols/index.js';
import type { ActorRef, ActorSystem, AskOptions, RouteTask, TellOptions } from '../kernel/api.js';
import { capabilityScore } from '../kernel/capabilities.js';
import { Cell } from '../kernel/cell.js';
import { type Random, realRandom } from '../time/random.js';
import { rendezvous } from './hash.js';

/** A message as a strategy sees it, to pick its member. */
export interface RoutedMessage {
  readonly type: string | undefined;
  readonly body: unknown;
  /** The key given with the message (consistent hashing reads it before `key` of the strategy). */
  readonly key: string | undefined;
}

/**
 * How a router picks the member for one message. Make one with {@link roundRobin},
 * {@link randomly}, {@link consistentHash}, {@link leastBusy} or {@link byCapability}.
 */
export interface RoutingStrategy {
  readonly kind: 'round-robin' | 'random' | 'consistent-hash' | 'least-busy' | 'capability';
  /** The index in `members` of the one that gets `message`, or -1 for none. */
  pick(members: readonly ActorRef<any>[], message: RoutedMessage, context: RouteContext): number;
}

/** What a router gives its strategy besides the members and the message. */
export interface RouteContext {
  /**
   * The random source of the router's system (`system.random`; for a list of refs, the system of
   * its first local member), so a seeded system routes repeatably. The real one when there is none.
   */
  readonly random: Random;
}

/** Each message to the next member in turn. */
export function roundRobin(): RoutingStrategy {
  let next = 0;
  return {
    kind: 'round-robin',
    pick(members) {
      if (members.length === 0) return -1;
      const i = next % members.length;
      next = (i + 1) % members.length;
      return i;
    },
  };
}

/**
 * Each message to a member drawn at random from `random`. Defaults to the router's system's random
 * source (`system.random`, which `seededRandom` makes repeatable): see {@link RouteContext}.
 */
export function randomly(random?: Random): RoutingStrategy {
  if (random !== undefined && typeof random !== 'function') {
    throw invalidOption('random', 'must be a function', random);
  }
  return {
    kind: 'random',
    pick(members, _message, context) {
      if (members.length === 0) return -1;
      const draw = (random ?? context.random)();
      return Math.min(members.length - 1, Math.floor(draw * members.length));
    },
  };
}

/**
 * Messages with the same key to the same member, by rendezvous hashing over the members'
 * addresses: when a member joins or leaves, only about 1/n of the keys move. The key is the one
 * given with the message (`{ key }` in `tell`, `ask`, `pick`), else `key(type, body)`.
 * @throws TroupeError `ERR_INVALID_OPTION` (at send) for a message without a key.
 */
export function consistentHash(
  options: { readonly key?: (type: string | undefined, body: unknown) => string } = {},
): RoutingStrategy {
  if (options.key !== undefined && typeof options.key !== 'function') {
    throw invalidOption('key', 'must be a function of the message', options.key);
  }
  return {
    kind: 'consistent-hash',
    pick(members, message) {
      const key = message.key ?? options.key?.(message.type, message.body);
      if (typeof key !== 'string') {
        throw invalidOption('key', 'a consistent-hash router needs a string key for each message', key);
      }
      return rendezvous(
        members.map((m) => m.address),
        key,
      );
    },
  };
}

/**
 * Each message to the member with the fewest messages waiting (plus one for a handler still
 * running), among the members of this node; ties go to the earliest. Members of other nodes, whose
 * mailboxes this node cannot see, get messages only when no member is local (then in turn).
 */
export function leastBusy(): RoutingStrategy {
  const fallback = roundRobin();
  return {
    kind: 'least-busy',
    pick(members, message, context) {
      let best = -1;
      let bestLoad = Number.POSITIVE_INFINITY;
      for (let i = 0; i < members.length; i++) {
        const member = members[i];
        if (!(member instanceof Cell) || !member.alive) continue;
        if (member.load < bestLoad) {
          best = i;
          bestLoad = member.load;
        }
      }
      return best >= 0 ? best : fallback.pick(members, message, context);
    },
  };
}

/**
 * Each message to the member best able to handle `task` (a task, or a function of the message
 * giving one), as `system.route` chooses: the highest score its behaviour's `capabilities` give
 * (above 0), the least busy among equal scores. Only members of this node have scores.
 */
export function byCapability(
  task: RouteTask | ((type: string | undefined, body: unknown) => RouteTask),
): RoutingStrategy {
  if (
    typeof task !== 'function' &&
    (typeof task !== 'object' || task === null || typeof task.capability !== 'string')
  ) {
    throw invalidOption('task', 'must be a task with a capability name, or a function giving one', task);
  }
  return {
    kind: 'capability',
    pick(members, message) {
      const t = typeof task === 'function' ? task(message.type, message.body) : task;
      let best = -1;
      let bestScore = 0;
      let bestLoad = 0;
      for (let i = 0; i < members.length; i++) {
        const member = members[i];
        if (!(member instanceof Cell) || !member.alive) continue;
        const score = capabilityScore(member, t);
        if (score === undefined) continue;
        if (score > bestScore || (score === bestScore && member.load < bestLoad)) {
          best = i;
          bestScore = score;
          bestLoad = member.load;
        }
      }
      return best;
    },
  };
}

/** The members a router routes over: a fixed list, or a process group's members as they change. */
export type RouterMembers<P extends AnyProtocol> =
  | readonly ActorRef<P>[]
  | {
      readonly system: ActorSystem;
      readonly group: string;
      readonly protocol?: P;
    };

/** What {@link Router.scatter} waits for. */
export type ScatterWant =
  /** Every member's answer (or failure, or the deadline). */
  | 'all'
  /** The first `first` replies. */
  | { readonly first: number }
  /** `quorum` replies (`'majority'`: more than half the members). */
  | { readonly quorum: number | 'majority' };

/** Options of {@link Router.scatter}. */
export interface ScatterOptions {
  /** How long to wait for answers; a member that has not answered by then is `silent`. */
  readonly timeoutMs: number;
  /** Defaults to `'all'`. */
  readonly want?: ScatterWant;
  /** Aborting it ends the wait: the members that have not answered are `pending`. */
  readonly signal?: AbortSignal;
}

/**
 * What a scatter-gather got: every member is in exactly one of `replies`, `failures`, `silent` or
 * `pending`; none is dropped.
 */
export interface ScatterResult<R> {
  /** Whether it got what it wanted (every member, the first N, or the quorum). */
  readonly complete: boolean;
  readonly replies: readonly { readonly member: ActorRef<any>; readonly reply: R }[];
  /** Members that answered with an error (`ERR_ACTOR_CRASHED`, `ERR_NO_SUCH_ACTOR`, `ERR_VALIDATION`...). */
  readonly failures: readonly { readonly member: ActorRef<any>; readonly error: TroupeError }[];
  /** Members that did not answer by the deadline (`ERR_ASK_TIMEOUT`). */
  readonly silent: readonly ActorRef<any>[];
  /**
   * Members not waited for: the wanted replies came first, the quorum could no longer be reached, or
   * the signal was aborted. Their asks were aborted.
   */
  readonly pending: readonly ActorRef<any>[];
}

/** Options of a routed tell or ask: the key a consistent-hash router reads. */
export interface RouteOptions {
  readonly key?: string;
}

/**
 * Sends to one member picked by its strategy, to every member (`broadcast`), or asks every member
 * and gathers the answers (`scatter`). Over a group, the members are the group's as they are at
 * each send.
 *
 * @example
 * ```ts
 * const pool = router({ system, group: 'workers', protocol: Work }, roundRobin());
 * pool.tell('job', { id: 1 });
 * const votes = await pool.scatter('vote', { question: 'ship?' }, { timeoutMs: 500, want: { quorum: 'majority' } });
 * ```
 */
export interface Router<P extends AnyProtocol> {
  readonly strategy: RoutingStrategy;
  /** The members now. */
  members(): readonly ActorRef<P>[];
  /** The member the strategy picks for a message, without sending; undefined when there is none. */
  pick(message?: {
    readonly type?: string;
    readonly body?: unknown;
    readonly key?: string;
  }): ActorRef<P> | undefined;
  /**
   * Tells one member.
   * @throws TroupeError `ERR_NO_ROUTE` when no member can take it; what the member's `tell` throws.
   */
  tell<K extends TellKeys<P>>(type: K, body: BodyOf<P, K>, options?: TellOptions & RouteOptions): void;
  /** Asks one member. Rejects with `ERR_NO_ROUTE` when no member can take it, or as the member's ask. */
  ask<K extends AskKeys<P>>(
    type: K,
    body: BodyOf<P, K>,
    options?: AskOptions & RouteOptions,
  ): Promise<ReplyOf<P, K>>;
  /** Tells every member; returns how many were told (one whose `tell` throws is skipped: a dead letter). */
  broadcast<K extends TellKeys<P>>(type: K, body: BodyOf<P, K>, options?: TellOptions): number;
  /**
   * Asks every member at once and gathers the answers until it has what it wants or the deadline.
   * Never rejects for a member's failure: each is in the result.
   * @throws TroupeError `ERR_INVALID_OPTION` (rejected) for a bad `timeoutMs` or `want`.
   */
  scatter<K extends AskKeys<P>>(
    type: K,
    body: BodyOf<P, K>,
    options: ScatterOptions,
  ): Promise<ScatterResult<ReplyOf<P, K>>>;
}

/**
 * A router over `members` (a list of refs, or a process group) with `strategy` (round-robin by
 * default).
 * @throws TroupeError `ERR_INVALID_OPTION` for members that are neither a list of refs nor a group.
 */
export function router<P extends AnyProtocol>(
  members: RouterMembers<P>,
  strategy: RoutingStrategy = roundRobin(),
): Router<P> {
  let list: () => readonly ActorRef<P>[];
  let random: Random;
  if (Array.isArray(members)) {
    const fixed = [...(members as readonly ActorRef<P>[])];
    list = () => fixed;
    const local = fixed.find((m): m is ActorRef<P> & Cell => m instanceof Cell);
    random = local?.system.random ?? realRandom;
  } else if (
    typeof members === 'object' &&
    members !== null &&
    'group' in members &&
    typeof members.group === 'string'
  ) {
    const { system, group, protocol } = members as Exclude<RouterMembers<P>, readonly ActorRef<P>[]>;
    random = system.random;
    list = () =>
      protocol === undefined ? system.groups.members(group) : system.groups.members(group, protocol);
  } else {
    throw invalidOption('members', 'must be a list of refs or { system, group }', members);
  }
  if (typeof strategy !== 'object' || strategy === null || typeof strategy.pick !== 'function') {
    throw invalidOption(
      'strategy',
      'must be a routing strategy (roundRobin(), consistentHash()...)',
      strategy,
    );
  }
  return new RouterImpl(list, strategy, { random }) as Router<P>;
}

class RouterImpl implements Router<any> {
  constructor(
    private readonly list: () => readonly ActorRef<any>[],
    readonly strategy: RoutingStrategy,
    private readonly context: RouteContext,
  ) {}

  members(): readonly ActorRef<any>[] {
    return this.list();
  }

  pick(message?: {
    readonly type?: string;
    readonly body?: unknown;
    readonly key?: string;
  }): ActorRef<any> | undefined {
    const members = this.list();
    const i = this.strategy.pick(
      members,
      { type: message?.type, body: message?.body, key: message?.key },
      this.context,
    );
    return i >= 0 ? members[i] : undefined;
  }

  private chosen(type: string, body: unknown, key: string | undefined): ActorRef<any> {
    const members = this.list();
    const i = this.strategy.pick(members, { type, body, key }, this.context);
    if (i < 0 || i >= members.length) {
      throw new TroupeError(
        'ERR_NO_ROUTE',
        members.length === 0
          ? `a ${this.strategy.kind} router has no member for "${type}"`
          : `no member of a ${this.strategy.kind} router can take "${type}"`,
        { details: { type, members: members.length, strategy: this.strategy.kind } },
      );
    }
    return members[i]!;
  }

  tell(type: string, body: unknown, options?: TellOptions & RouteOptions): void {
    this.chosen(type, body, options?.key).tell(type, body, options);
  }

  ask(type: string, body: unknown, options?: AskOptions & RouteOptions): Promise<any> {
    let member: ActorRef<any>;
    try {
      member = this.chosen(type, body, options?.key);
    } catch (error) {
      return Promise.reject(error);
    }
    return member.ask(type, body, options);
  }

  broadcast(type: string, body: unknown, options?: TellOptions): number {
    let told = 0;
    for (const member of this.list()) {
      try {
        member.tell(type, body, options);
        told++;
      } catch {
        // A full mailbox (`reject`): the tell made it a dead letter; the others still get theirs.
      }
    }
    return told;
  }

  scatter(type: string, body: unknown, options: ScatterOptions): Promise<ScatterResult<any>> {
    const timeoutMs = options?.timeoutMs;
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0)) {
      return Promise.reject(invalidOption('scatter.timeoutMs', 'must be a number > 0', timeoutMs));
    }
    const members = [...this.list()];
    const want = options.want ?? 'all';
    let needed: number;
    if (want === 'all') needed = members.length;
    else if (
      typeof want === 'object' &&
      want !== null &&
      'first' in want &&
      Number.isInteger(want.first) &&
      want.first > 0
    ) {
      needed = Math.min(want.first, members.length);
    } else if (typeof want === 'object' && want !== null && 'quorum' in want) {
      const q = want.quorum === 'majority' ? Math.floor(members.length / 2) + 1 : want.quorum;
      if (!(Number.isInteger(q) && q > 0)) {
        return Promise.reject(
          invalidOption('scatter.want.quorum', "must be an integer > 0 or 'majority'", want.quorum),
        );
      }
      needed = q;
    } else {
      return Promise.reject(
        invalidOption('scatter.want', "must be 'all', { first: n } or { quorum: n | 'majority' }", want),
      );
    }
    return new Promise((resolve) => {
      const replies: { member: ActorRef<any>; reply: unknown }[] = [];
      const failures: { member: ActorRef<any>; error: TroupeError }[] = [];
      const silent: ActorRef<any>[] = [];
      const outstanding = new Set<number>();
      const abort = new AbortController();
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        options.signal?.removeEventListener('abort', onAbort);
        const pending = [...outstanding].sort((a, b) => a - b).map((i) => members[i]!);
        abort.abort();
        resolve({ complete: replies.length >= needed, replies, failures, silent, pending });
      };
      const onAbort = () => finish();
      const check = () => {
        // Done when the wanted replies are in, or they can no longer come.
        if (
          outstanding.size === 0 ||
          (want !== 'all' && (replies.length >= needed || replies.length + outstanding.size < needed))
        )
          finish();
      };
      if (options.signal?.aborted) {
        for (let i = 0; i < members.length; i++) outstanding.add(i);
        finish();
        return;
      }
      options.signal?.addEventListener('abort', onAbort);
      members.forEach((member, i) => {
        outstanding.add(i);
        let asked: Promise<unknown>;
        try {
          asked = member.ask(type, body, { timeoutMs, signal: abort.signal });
        } catch (error) {
          asked = Promise.reject(error);
        }
        asked.then(
          (reply) => {
            if (done) return;
            outstanding.delete(i);
            replies.push({ member, reply });
            check();
          },
          (error: unknown) => {
            if (done) return;
            outstanding.delete(i);
            const typed = TroupeError.is(error)
              ? error
              : new TroupeError('ERR_ACTOR_CRASHED', `"${type}" to ${member.address} failed`, {
                  cause: error,
                });
            if (typed.code === 'ERR_ASK_TIMEOUT') silent.push(member);
            else failures.push({ member, error: typed });
            check();
          },
        );
      });
      check();
    });
  }
}
