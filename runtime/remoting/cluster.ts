import { createHash } from 'node:crypto';
import {
  type Address,
  type Envelope,
  formatAddress,
  hopsOf,
  MAX_HOPS,
  TroupeError,
  validate,
  type WireEnvelope,
} from '../../protocols/index.js';
import type { ActorRef, Behavior, MemberInfo } from '../kernel/api.js';
import { compiled } from '../kernel/behavior.js';
import type { Cell } from '../kernel/cell.js';
import type { DeadLetterReason, SystemEvent } from '../kernel/events.js';
import type { ResolvedKind } from '../kernel/options.js';
import { recordRestart } from '../kernel/supervision/policy.js';
import { type Clock, sleep, type TimerHandle } from '../time/clock.js';
import { type Backoff, backoffDelay } from '../time/retry.js';
import type { ClusterStore, MemberState } from './cluster-types.js';
import { type IngressHost, resolveMessage } from './ingress.js';

/** Cluster settings of a node. */
export interface ClusterSettings {
  readonly heartbeatMs: number;
  readonly downAfterMissed: number;
  readonly kinds: ReadonlyMap<string, ResolvedKind>;
}

/** What the cluster needs from its system and router. */
export interface ClusterHost extends Pick<IngressHost, 'protocol'> {
  readonly name: string;
  readonly node: string;
  readonly clock: Clock;
  readonly random: () => number;
  readonly observed: boolean;
  emit(event: SystemEvent): void;
  /**
   * Spawns an activation: an actor whose address is the named one, under the node's activations
   * supervisor (which asks {@link Cluster.decide}); `onExit` hears when it has stopped for good.
   */
  spawnActivation(behavior: Behavior<any, any>, address: Address, onExit: (cell: Cell) => void): Cell;
  /** A member is down: the groups forget its members, asks to its actors fail. */
  memberDown(node: string): void;
  /** A member is up (new, or seen again after it was down). */
  memberUp(node: string): void;
  /** Admits and delivers an envelope to an actor of this node. */
  deliverLocal(item: unknown): void;
  /** Sends an envelope (a decoded object) to another node as it is. */
  forward(node: string, item: Envelope): void;
  /** A message that cannot reach a named actor: a dead letter, and an error reply to an ask. */
  undeliverable(envelope: Envelope, error: TroupeError, reason?: DeadLetterReason): void;
  /** A ref to a named actor, wherever it is now: messages sent through it are routed again. */
  namedRef(kind: string, key: string): ActorRef<any>;
  deadLetter(
    to: Address,
    from: Address | undefined,
    type: string,
    body: unknown,
    reason: DeadLetterReason,
    error: TroupeError | undefined,
  ): void;
}

interface Member {
  state: 'up' | 'suspect' | 'leaving';
  lastSeen: number;
}

interface Activation {
  readonly cell: Cell;
  readonly fence: number;
  lastUsed: number;
  /** True once it is on its way out: what arrives for its key waits, then is routed again. */
  handingOver: boolean;
  /** Why it is on its way out, for the `activation-stopped` event. */
  ending: 'passivated' | 'handed-over' | 'lease-lost' | 'failed' | undefined;
  /** When it crashed lately (its own restart window). */
  readonly crashes: number[];
  /** When it failed lately for an unavailable journal (for the growing delay between attempts). */
  readonly outages: number[];
}

/** Whether a node hands messages to its activations, or holds them (see `Cluster.fenced`). */
type FenceState = { readonly tag: 'serving' } | { readonly tag: 'fenced'; lifting: boolean };

/** A key given up after its activation kept failing: refused until `until`. */
interface Quarantine {
  readonly until: number;
  readonly strikes: number;
  readonly error: TroupeError;
}

/**
 * Most messages a fenced node holds for its named actors (a long store outage with callers on the
 * node itself): past it, each further one is a `mailbox-full` dead letter with `ERR_NOT_DELIVERED`.
 */
const MAX_HELD_MESSAGES = 10_000;

/** How long failures for an unavailable journal count toward the delay before the next attempt. */
const OUTAGE_WINDOW_MS = 30_000;

/**
 * Membership, failure detection and placement of named actors for one node.
 *
 * Members heartbeat into the store; each node keeps its own view from the heartbeats it sees (so
 * clock skew between hosts does not matter): a member missing one beat is suspect, one missing
 * `downAfterMissed` beats is down. A named actor lives where rendezvous hashing over the live members
 * puts it, at most once in the cluster: the node that activates it first takes its lease (the lease
 * revision is the activation's fencing token). A node that finds the lease with a live holder sends
 * the message there; one held by a node that is down takes it over.
 */
export class Cluster {
  private readonly members = new Map<string, Member>();
  private readonly activations = new Map<string, Activation>();
  /** The key of each activation's cell. */
  private readonly idOfCell = new WeakMap<object, string>();
  /** Messages for a key whose lease is being taken, in arrival order. */
  private readonly waiting = new Map<string, Envelope[]>();
  /** Keys given up after their activations kept failing. */
  private readonly quarantined = new Map<string, Quarantine>();
  private heartbeat: TimerHandle | undefined;
  private detector: TimerHandle | undefined;
  private leaving = false;
  private stopped = false;
  /** False while this node cannot reach the store: it then judges nobody (the fault may be its own). */
  private reachable = true;
  /** Set while leases are checked again after an outage or a pause; activations wait for it. */
  private reconciling: Promise<void> | undefined;
  /** When the failure detector last ran, to notice that this process was paused. */
  private lastTick = 0;
  /**
   * When (on this host's monotonic clock) the newest heartbeat that the store acknowledged was sent.
   * See {@link Cluster.fenced}.
   */
  private lastAckedBeatAt: number;
  /** Whether this node hands messages to its activations now, or holds them. See {@link Cluster.fenced}. */
  private fence: FenceState = { tag: 'serving' };
  /** Messages for named actors held while this node is fenced, per key in arrival order. */
  private readonly held = new Map<string, WireEnvelope[]>();
  /** How many messages `held` holds, for its bound. */
  private heldCount = 0;
  /** While an activation gives its mailbox up: what it gives up, to go before what is held for its key. */
  private surrendering: { readonly id: string; readonly envelopes: WireEnvelope[] } | undefined;

  constructor(
    private readonly host: ClusterHost,
    private readonly store: ClusterStore,
    private readonly settings: ClusterSettings,
  ) {
    this.lastAckedBeatAt = host.clock.now();
  }

  async start(): Promise<void> {
    await this.store.watch((node, state) => this.heard(node, state));
    this.store.status?.((reachable) => this.storeReachable(reachable));
    const sent = this.host.clock.now();
    await this.store.announce(this.host.node, 'up');
    this.lastAckedBeatAt = Math.max(this.lastAckedBeatAt, sent);
    this.heard(this.host.node, 'up');
    this.lastTick = this.host.clock.now();
    this.beat();
    this.detect();
  }

  /** For readiness probes: has this node joined (and not left), can it reach the store. */
  health(): { readonly joined: boolean; readonly storeReachable: boolean } {
    const self = this.members.get(this.host.node);
    return {
      joined: !this.stopped && !this.leaving && self !== undefined && self.state !== 'leaving',
      storeReachable: !this.stopped && this.reachable,
    };
  }

  /** This node's view of the members, itself included, sorted by node id. */
  view(): MemberInfo[] {
    return [...this.members]
      .map(([node, member]) => ({ node, state: member.state }))
      .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  /**
   * Whether `key` is one of `kind`'s keys (see `KindOptions.keys`): an `ERR_INVALID_NAME` naming
   * what is wrong, or undefined. Checked before anything is activated or written for a key.
   */
  checkKey(kind: string, key: string): TroupeError | undefined {
    const rules = this.settings.kinds.get(kind)?.keys;
    if (rules === undefined) return undefined;
    return keyProblem(kind, key, rules.maxLength, rules.pattern);
  }

  /** The members this node counts as live, itself included (unless it is leaving). */
  live(): string[] {
    const out: string[] = [];
    for (const [node, member] of this.members) if (member.state !== 'leaving') out.push(node);
    return out.sort();
  }

  /** Where rendezvous hashing over the live members places `kind`/`key`. */
  owner(kind: string, key: string): string | undefined {
    let best: string | undefined;
    let bestScore = -1n;
    for (const node of this.live()) {
      const score = createHash('sha1').update(`${node}\u0000${kind}\u0000${key}`).digest().readBigUInt64BE(0);
      if (score > bestScore) {
        best = node;
        bestScore = score;
      }
    }
    return best;
  }

  /** The local activation of `kind`/`key`, if this node runs it. */
  activation(kind: string, key: string): Cell | undefined {
    const activation = this.activations.get(idOf(kind, key));
    return activation?.cell.alive && !activation.handingOver ? activation.cell : undefined;
  }

  /**
   * Routes an envelope addressed to a named actor: to its local activation, to the node that owns
   * it, or into a new activation here once the lease is taken.
   */
  route(envelope: WireEnvelope, kind: string, key: string): void {
    const kindOptions = this.settings.kinds.get(kind);
    if (kindOptions === undefined) {
      this.host.deliverLocal(envelope); // The full checks turn it into a no-such-actor dead letter.
      return;
    }
    const badKey = keyProblem(kind, key, kindOptions.keys.maxLength, kindOptions.keys.pattern);
    if (badKey !== undefined) {
      this.host.undeliverable(envelope, badKey, 'malformed');
      return;
    }
    const id = idOf(kind, key);
    if (this.fenced()) {
      this.hold(id, envelope, kind, key);
      return;
    }
    const activation = this.activations.get(id);
    if (activation !== undefined) {
      if (activation.cell.alive && !activation.handingOver) {
        activation.lastUsed = this.host.clock.now();
        this.host.deliverLocal(envelope);
        return;
      }
      if (activation.cell.alive && !this.leaving && !this.stopped) {
        // Being passivated: the message waits and activates the key again once the old activation
        // is gone, so there are never two at once.
        const queue = this.waiting.get(id);
        if (queue === undefined) this.waiting.set(id, [envelope]);
        else queue.push(envelope);
        return;
      }
      if (!activation.cell.alive) void this.retire(id, activation);
    }
    const queue = this.waiting.get(id);
    if (queue !== undefined) {
      queue.push(envelope);
      return;
    }
    // From the wire: anything but a small count is treated as a first hop.
    const hops = hopsOf(envelope);
    const owner = this.owner(kind, key);
    if (owner !== undefined && owner !== this.host.node && hops === 0) {
      this.host.forward(owner, { ...envelope, hops: 1 } as WireEnvelope);
      return;
    }
    if (this.leaving || this.stopped) {
      this.passOn(envelope, kind, key, hops);
      return;
    }
    const quarantine = this.quarantined.get(id);
    if (quarantine !== undefined && this.host.clock.now() < quarantine.until) {
      this.host.undeliverable(envelope, quarantine.error, 'activation-failed');
      return;
    }
    this.waiting.set(id, [envelope]);
    this.activate(id, kind, key, kindOptions, hops).catch((error: unknown) =>
      this.failWaiting(
        id,
        new TroupeError('ERR_NOT_DELIVERED', `${kind}/${key} could not be activated`, { cause: error }),
      ),
    );
  }

  /** Takes the lease and starts the activation, or passes the waiting messages to the holder. */
  private async activate(
    id: string,
    kind: string,
    key: string,
    kindOptions: ResolvedKind,
    hops: number,
  ): Promise<void> {
    // Nothing is taken or written for a key until a message it would accept has come.
    if (!(await this.admitFirst(id, kindOptions.behavior))) return;
    // After an outage or a pause, this node's leases are checked before it takes new ones.
    while (this.reconciling !== undefined) await this.reconciling;
    let result: { fence: number } | { holder: string };
    for (let attempt = 0; ; attempt++) {
      try {
        result = await this.store.lease(id, this.host.node, (holder) => this.canTakeOver(holder));
      } catch (error) {
        this.failWaiting(
          id,
          new TroupeError('ERR_NOT_DELIVERED', `the lease of ${id} could not be taken`, { cause: error }),
        );
        return;
      }
      // A leaving holder hands the lease over in a moment: wait for it rather than bounce the message.
      if ('holder' in result && this.members.get(result.holder)?.state === 'leaving' && attempt < 100) {
        await this.sleep(50);
        continue;
      }
      break;
    }
    const queue = this.waiting.get(id) ?? [];
    this.waiting.delete(id);
    if ('holder' in result) {
      for (const envelope of queue) this.passTo(result.holder, envelope, kind, key, hops);
      return;
    }
    const address = formatAddress({ system: this.host.name, node: `@${kind}`, path: key });
    let cell: Cell;
    try {
      cell = this.host.spawnActivation(kindOptions.behavior, address, (exited) => this.exited(exited));
    } catch (error) {
      // The node is stopping: give the lease back at once and tell the waiting messages why.
      await this.store.release(id, result.fence).catch(() => {});
      throw error;
    }
    this.activations.set(id, {
      cell,
      fence: result.fence,
      lastUsed: this.host.clock.now(),
      handingOver: false,
      ending: undefined,
      crashes: [],
      outages: [],
    });
    this.idOfCell.set(cell, id);
    this.fences.set(cell, result.fence);
    if (this.host.observed) {
      this.host.emit({
        type: 'activation-started',
        at: this.host.clock.now(),
        address,
        node: this.host.node,
        fence: result.fence,
      });
    }
    // Fenced while the lease was taken: the messages wait for the lease check, ahead of what came later.
    if (this.fenced()) this.holdFirst(id, queue);
    else for (const envelope of queue) this.host.deliverLocal(envelope);
  }

  /**
   * Refuses, from the front of a key's waiting queue, the messages its kind would not accept (an
   * unknown message, a request without a reply address, a body that fails its schema), so garbage
   * never activates a key. False when none is left: the key is not activated.
   */
  private async admitFirst(id: string, behavior: Behavior<any, any>): Promise<boolean> {
    const target = compiled(behavior);
    for (;;) {
      const queue = this.waiting.get(id);
      const envelope = queue?.[0];
      if (envelope === undefined) {
        if (queue !== undefined && queue.length === 0) this.waiting.delete(id);
        return false;
      }
      const refusal = await this.refusal(target, envelope);
      if (refusal === undefined) return true;
      if (this.waiting.get(id)?.[0] === envelope) this.waiting.get(id)!.shift();
      this.host.undeliverable(envelope, refusal.error, refusal.reason);
    }
  }

  /** Why the behaviour would refuse `envelope`, or undefined when it accepts it. */
  private async refusal(
    target: ReturnType<typeof compiled>,
    envelope: Envelope,
  ): Promise<{ error: TroupeError; reason: DeadLetterReason } | undefined> {
    // The kind's own protocols first: a node registers a protocol only once it has spawned a speaker.
    const own = {
      protocol: (name: string) => target.protocols.find((p) => p.name === name) ?? this.host.protocol(name),
    };
    const route = resolveMessage(own, target, envelope.type);
    if (route === null || 'unspoken' in route) {
      const error = new TroupeError(
        'ERR_UNKNOWN_MESSAGE',
        `${envelope.to} does not handle "${envelope.type}"`,
        {
          details: { to: envelope.to, type: envelope.type },
        },
      );
      return { error, reason: 'unknown-message' };
    }
    if (route.spec.kind === 'ask' && envelope.replyTo === undefined && envelope.correlationId === undefined) {
      const error = new TroupeError(
        'ERR_VALIDATION',
        `"${envelope.type}" is a request but the envelope has no replyTo`,
        {
          details: { type: envelope.type },
        },
      );
      return { error, reason: 'malformed' };
    }
    const checked = await validate(route.spec.body, envelope.body, `"${envelope.type}" to ${envelope.to}`);
    return checked.ok ? undefined : { error: checked.error, reason: 'validation-failed' };
  }

  /** The fence of each local activation, for the envelopes it sends. */
  readonly fences = new WeakMap<object, number>();

  /**
   * The supervision decision for an activation that exited (the activations' supervisor asks). See
   * `ActivationPolicy`: each key has its own restart window; an unavailable journal is waited out;
   * a stale fence stops the activation and sends its messages on; past the window the key is given up.
   */
  decide(child: ActorRef<any>, error: Error | undefined): { readonly restartAfterMs: number } | 'stop' {
    const id = this.idOfCell.get(child);
    const activation = id === undefined ? undefined : this.activations.get(id);
    if (id === undefined || activation === undefined || activation.cell !== child || error === undefined) {
      return 'stop';
    }
    const policy = this.settings.kinds.get(kindOf(id))!.restart;
    const now = this.host.clock.now();
    // Refused for its fence while it runs: it is stale, the key is another node's now. Refused when
    // it claims the stream as it starts, it may hold the newest lease (a reset lease store, a race):
    // that counts as a crash, so it cannot loop for ever.
    if (withCode(error, 'ERR_FENCED') !== undefined && withCode(error, 'ERR_START_FAILED') === undefined) {
      this.relinquish(id, activation);
      return 'stop';
    }
    const outage = withCode(error, 'ERR_JOURNAL_UNAVAILABLE');
    if (outage !== undefined) {
      if (policy.outage === 'fail-fast') {
        this.quarantine(id, activation, outage, policy.outageBackoff);
        return 'stop';
      }
      recordRestart(activation.outages, now, {
        periodMs: OUTAGE_WINDOW_MS,
        intensity: Number.MAX_SAFE_INTEGER,
      });
      return {
        restartAfterMs: backoffDelay(policy.outageBackoff, activation.outages.length, this.host.random),
      };
    }
    if (!recordRestart(activation.crashes, now, policy)) {
      const failure = new TroupeError(
        'ERR_ACTIVATION_FAILED',
        `${activation.cell.address} crashed more than ${policy.intensity} times in ${policy.periodMs} ms and is given up for now: ${error.message}`,
        { cause: error, details: { address: activation.cell.address } },
      );
      this.quarantine(id, activation, failure, policy.quarantine);
      return 'stop';
    }
    return { restartAfterMs: backoffDelay(policy.backoff, activation.crashes.length, this.host.random) };
  }

  /**
   * Gives a key up: its activation will stop (the caller stops it), its queued messages are answered
   * with `error`, and for a backoff (growing with each give-up in a row) messages to it are refused.
   */
  private quarantine(id: string, activation: Activation, error: TroupeError, backoff: Backoff): void {
    activation.handingOver = true;
    activation.ending = 'failed';
    const now = this.host.clock.now();
    const previous = this.quarantined.get(id);
    const strikes = previous !== undefined && now - previous.until < backoff.maxMs ? previous.strikes + 1 : 1;
    const quarantineMs = backoffDelay(backoff, strikes, this.host.random);
    this.quarantined.set(id, { until: now + quarantineMs, strikes, error });
    const address = activation.cell.address;
    for (const message of activation.cell.surrender()) {
      this.host.deadLetter(
        address,
        message.from?.address,
        message.type,
        message.body,
        'activation-failed',
        error,
      );
      message.ask?.reject(error);
    }
    if (this.host.observed) {
      this.host.emit({
        type: 'activation-failed',
        at: now,
        address,
        node: this.host.node,
        error,
        quarantineMs,
      });
    }
  }

  /**
   * Another node holds the key's lease now: this activation stops without a restart and without
   * giving the lease back, and its queued messages follow the key to its owner (they wait, then are
   * routed again once it has stopped).
   */
  private relinquish(id: string, activation: Activation): void {
    activation.handingOver = true;
    activation.ending = 'lease-lost';
    const kind = kindOf(id);
    const ref = this.host.namedRef(kind, id.slice(kind.length + 1));
    const now = this.host.clock.now();
    // Routed at once (a named ref routes in the caller's stack): while fenced, they are held ahead of
    // the messages for the key that came after them.
    const surrendering = { id, envelopes: [] as WireEnvelope[] };
    this.surrendering = surrendering;
    try {
      this.resend(activation, ref, now);
    } finally {
      this.surrendering = undefined;
      if (surrendering.envelopes.length > 0) this.holdFirst(id, surrendering.envelopes);
    }
  }

  private resend(activation: Activation, ref: ActorRef<any>, now: number): void {
    for (const message of activation.cell.surrender()) {
      if (message.ask === undefined) {
        ref.tell(message.type, message.body, {
          ...(message.from === undefined ? {} : { from: message.from }),
          ...(message.trace === undefined ? {} : { trace: message.trace }),
        });
        continue;
      }
      const ask = message.ask;
      const leftMs = ask.deadline - now;
      if (ask.settled || leftMs <= 0) continue; // Its own timeout has answered it (or is about to).
      ref
        .ask(message.type, message.body, {
          timeoutMs: leftMs,
          ...(message.trace === undefined ? {} : { trace: message.trace }),
        })
        .then(
          (value) => ask.resolve(value),
          (error: unknown) => ask.reject(error),
        );
    }
  }

  /** An activation has stopped for good, however: forget it, then route what waited for its key. */
  private exited(cell: Cell): void {
    const id = this.idOfCell.get(cell);
    if (id === undefined) return;
    const activation = this.activations.get(id);
    if (activation === undefined || activation.cell !== cell) return;
    void this.retire(id, activation, activation.ending ?? 'stopped').then(() => this.reroute(id));
  }

  private canTakeOver(holder: string): boolean {
    // Our own lease from before (a restarted node with the same id) or a holder that is down.
    return holder === this.host.node || !this.members.has(holder);
  }

  private passTo(node: string, envelope: WireEnvelope, kind: string, key: string, hops: number): void {
    if (node === this.host.node) {
      this.host.deliverLocal(envelope);
      return;
    }
    if (hops + 1 >= MAX_HOPS) {
      this.giveUp(envelope, kind, key);
      return;
    }
    this.host.forward(node, { ...envelope, hops: hops + 1 } as WireEnvelope);
  }

  /** A leaving node sends what comes for named actors to their next owner. */
  private passOn(envelope: Envelope, kind: string, key: string, hops: number): void {
    const next = this.owner(kind, key);
    if (next === undefined || next === this.host.node) this.giveUp(envelope, kind, key);
    else this.passTo(next, envelope, kind, key, hops);
  }

  private giveUp(envelope: Envelope, kind: string, key: string): void {
    this.host.undeliverable(
      envelope,
      new TroupeError('ERR_NOT_DELIVERED', `no node could take ${kind}/${key}`, { details: { kind, key } }),
    );
  }

  private failWaiting(id: string, error: TroupeError): void {
    const queue = this.waiting.get(id) ?? [];
    this.waiting.delete(id);
    for (const envelope of queue) this.host.undeliverable(envelope, error);
  }

  // ---- Membership ----

  private heard(node: string, state: MemberState | 'gone'): void {
    const now = this.host.clock.now();
    const member = this.members.get(node);
    if (state === 'gone') {
      if (member !== undefined && node !== this.host.node) this.down(node, 'left');
      return;
    }
    if (member === undefined) {
      this.members.set(node, { state, lastSeen: now });
      this.host.memberUp(node);
      this.emit(state === 'up' ? 'member-up' : 'member-leaving', node);
      return;
    }
    member.lastSeen = now;
    if (member.state !== state) {
      const was = member.state;
      member.state = state;
      if (state === 'leaving') this.emit('member-leaving', node);
      else if (was === 'suspect') this.emit('member-up', node);
    }
  }

  private down(node: string, reason: 'unreachable' | 'left'): void {
    if (!this.members.delete(node)) return;
    this.host.memberDown(node);
    if (this.host.observed) this.host.emit({ type: 'member-down', at: this.host.clock.now(), node, reason });
  }

  private emit(type: 'member-up' | 'member-suspect' | 'member-leaving', node: string): void {
    if (this.host.observed) this.host.emit({ type, at: this.host.clock.now(), node });
  }

  private beat(): void {
    this.heartbeat = this.host.clock.setTimeout(() => {
      if (this.stopped) return;
      this.announce();
      this.beat();
    }, this.settings.heartbeatMs);
  }

  /** A heartbeat: whether it goes through tells this node whether it reaches the store. */
  private announce(): void {
    const sent = this.host.clock.now();
    this.store.announce(this.host.node, this.leaving ? 'leaving' : 'up').then(
      () => {
        // The time it was sent, not answered: a heartbeat stuck on the way counts from when it left.
        if (sent > this.lastAckedBeatAt) this.lastAckedBeatAt = sent;
        this.storeReachable(true);
        this.liftFence();
      },
      () => this.storeReachable(false),
    );
  }

  /**
   * Self-fencing: whether this node must hold the messages for its named actors rather than hand
   * them to its activations, because the others may have declared it down and taken its leases.
   *
   * The others declare a node down once they have heard nothing from it for `downAfterMissed`
   * heartbeats, counted on their clocks from when they heard its last heartbeat, which is after it
   * was stored, which is after this node sent it. So if this node's newest acknowledged heartbeat was
   * sent at `t`, nobody takes its leases before `t + downAfterMissed * heartbeatMs`. This node fences
   * itself one heartbeat earlier, at `t + (downAfterMissed - 1) * heartbeatMs` (with
   * `downAfterMissed` 1, at `t + heartbeatMs`: no margin), judged on its monotonic clock whenever a
   * message comes, so a process that was paused (SIGSTOP, a long GC) and has not heard back from the
   * store since holds the very first message it routes after resuming. Fenced, it stays fenced until
   * a heartbeat sent within that deadline is acknowledged AND every lease of its activations has been
   * read again after that; then activations whose lease another node took stop (their mailbox and
   * the held messages follow the key to its new holder), and the rest serve the held messages, in
   * order per key. New activations wait as well: their first messages are held like any other.
   *
   * What it guarantees: a message handed to an activation was handed over before anyone could take
   * its lease. Messages already in an activation's mailbox when the fence falls are still handled by
   * it: each was sent before the takeover, so a read answered from the old state answers with a value
   * the key held during the read's own lifetime, and a write is refused by the journal's fencing
   * token once the new holder has claimed the stream. What it does not: it assumes the hosts' clocks
   * run at the same rate (not that they agree), and a node whose view of the membership lags (its
   * watch has not yet delivered this node's fresh heartbeat) may still take a key just after this
   * node's lease check has read it; the journal's fence still refuses the old activation's writes
   * then, but a read may be answered from it until the periodic lease check stops it. Side effects
   * outside the journal are not fenced, nor are messages sent to an activation's own cell (its
   * `ctx.self` handed to an actor of the same node): only what is addressed to the named actor is
   * routed, and so held.
   */
  private fenced(): boolean {
    if (this.fence.tag === 'fenced') return true;
    if (this.stopped) return false;
    const now = this.host.clock.now();
    const silentMs = now - this.lastAckedBeatAt;
    if (silentMs <= this.fenceAfterMs()) return false;
    this.fence = { tag: 'fenced', lifting: false };
    if (this.host.observed) {
      this.host.emit({ type: 'node-fenced', at: now, node: this.host.node, silentMs });
    }
    return true;
  }

  /** How long after sending its newest acknowledged heartbeat this node fences itself. */
  private fenceAfterMs(): number {
    return Math.max(this.settings.downAfterMissed - 1, 1) * this.settings.heartbeatMs;
  }

  /** Holds a message for `id` while fenced (behind what is held for it already). */
  private hold(id: string, envelope: WireEnvelope, kind: string, key: string): void {
    if (this.surrendering?.id === id) {
      this.surrendering.envelopes.push(envelope);
      return;
    }
    if (this.heldCount >= MAX_HELD_MESSAGES) {
      const error = new TroupeError(
        'ERR_NOT_DELIVERED',
        `${kind}/${key}: node ${this.host.node} has had no heartbeat acknowledged by the cluster store lately and holds ${MAX_HELD_MESSAGES} messages for its named actors already`,
        { details: { kind, key, node: this.host.node } },
      );
      this.host.undeliverable(envelope, error, 'mailbox-full');
      return;
    }
    this.heldCount++;
    const queue = this.held.get(id);
    if (queue === undefined) this.held.set(id, [envelope]);
    else queue.push(envelope);
  }

  /** Holds messages for `id` that came before everything held for it already. */
  private holdFirst(id: string, envelopes: readonly WireEnvelope[]): void {
    if (envelopes.length === 0) return;
    this.heldCount += envelopes.length;
    this.held.set(id, [...envelopes, ...(this.held.get(id) ?? [])]);
  }

  /**
   * Lifts the fence once a fresh heartbeat is acknowledged: reads every lease of this node's
   * activations again, stops those another node holds now, and routes the held messages again.
   * Tried again at the next acknowledged heartbeat when the store does not answer.
   */
  private liftFence(): void {
    const fence = this.fence;
    if (fence.tag !== 'fenced' || fence.lifting || this.stopped) return;
    if (this.host.clock.now() - this.lastAckedBeatAt > this.fenceAfterMs()) return;
    fence.lifting = true;
    void this.leasesLost().then((lost) => {
      fence.lifting = false;
      if (lost === undefined || this.stopped || this.fence !== fence) return;
      const now = this.host.clock.now();
      if (now - this.lastAckedBeatAt > this.fenceAfterMs()) return; // Silent again meanwhile.
      this.fence = { tag: 'serving' };
      if (this.host.observed) {
        this.host.emit({ type: 'node-unfenced', at: now, node: this.host.node, leasesLost: lost.size });
      }
      for (const [id, activation] of lost) {
        if (this.activations.get(id) === activation && !activation.handingOver)
          this.relinquish(id, activation);
      }
      this.releaseHeld();
      for (const activation of lost.values()) void activation.cell.stopFromParent();
    });
  }

  /**
   * The activations of this node whose lease another node holds now (read concurrently), or
   * undefined when the store did not answer. Read again while activations were added meanwhile.
   */
  private async leasesLost(): Promise<Map<string, Activation> | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const checked = [...this.activations].filter(([, activation]) => !activation.handingOver);
      let fences: (number | undefined)[];
      try {
        fences = await Promise.all(checked.map(([id]) => this.store.fence(id)));
      } catch {
        return undefined;
      }
      const seen = new Set(checked.map(([, activation]) => activation));
      const added = [...this.activations.values()].some((a) => !a.handingOver && !seen.has(a));
      if (added) continue;
      const lost = new Map<string, Activation>();
      checked.forEach(([id, activation], i) => {
        if (fences[i] !== activation.fence) lost.set(id, activation);
      });
      return lost;
    }
    return undefined;
  }

  /** Routes again, in order per key, what was held while this node was fenced. */
  private releaseHeld(): void {
    for (const [id, queue] of [...this.held]) {
      this.held.delete(id);
      this.heldCount -= queue.length;
      const kind = kindOf(id);
      const key = id.slice(kind.length + 1);
      for (const envelope of queue) this.route(envelope, kind, key);
    }
  }

  /**
   * The store (NATS) went away or came back. While it is away this node declares nobody down: it
   * cannot tell their silence from its own. When it is back, everyone gets a fresh grace period,
   * this node beats at once, and its leases are checked before it takes new ones.
   */
  private storeReachable(reachable: boolean): void {
    if (this.stopped || reachable === this.reachable) return;
    this.reachable = reachable;
    if (!reachable) return;
    this.forgive(this.host.clock.now());
    this.announce();
    this.reconcile();
  }

  /** Starts everyone's silence from `now`: after an outage or a pause of this node, not theirs. */
  private forgive(now: number): void {
    for (const member of this.members.values()) member.lastSeen = now;
  }

  /** Suspect after one missed beat, down after `downAfterMissed`; passivate idle activations. */
  private detect(): void {
    const { heartbeatMs, downAfterMissed } = this.settings;
    this.detector = this.host.clock.setTimeout(() => {
      if (this.stopped) return;
      const now = this.host.clock.now();
      // A tick far later than planned: this process was paused (a long GC, SIGSTOP). The silence
      // was ours; and others may have taken our keys meanwhile, so check the leases now.
      const paused = now - this.lastTick > heartbeatMs;
      this.lastTick = now;
      if (paused) {
        this.forgive(now);
        this.reconcile();
      }
      // Judged here too, so that the fence falls on time (and is reported) without a message.
      this.fenced();
      if (this.reachable) {
        for (const [node, member] of this.members) {
          if (node === this.host.node) {
            member.lastSeen = now;
            continue;
          }
          const silent = now - member.lastSeen;
          if (silent > downAfterMissed * heartbeatMs) this.down(node, 'unreachable');
          else if (silent > 1.5 * heartbeatMs && member.state === 'up') {
            member.state = 'suspect';
            this.emit('member-suspect', node);
          }
        }
      }
      this.passivateIdle(now);
      this.forgetQuarantines(now);
      // Every five heartbeats, as a backstop: an activation whose lease another node took stops.
      if (++this.ticks % 20 === 0) void this.verifyLeases();
      this.detect();
    }, heartbeatMs / 4);
  }

  private ticks = 0;

  /** Checks every lease now; new activations wait until it is done. */
  private reconcile(): void {
    if (this.reconciling !== undefined) return;
    this.reconciling = this.verifyLeases().finally(() => {
      this.reconciling = undefined;
    });
  }

  /**
   * Stops each local activation whose lease another node holds now; its messages follow the key.
   * While fenced, lifting the fence does this.
   */
  private async verifyLeases(): Promise<void> {
    if (this.fence.tag === 'fenced') return;
    for (const [id, activation] of [...this.activations]) {
      let fence: number | undefined;
      try {
        fence = await this.store.fence(id);
      } catch {
        return; // The store is away: try again later.
      }
      if (
        fence === activation.fence ||
        this.activations.get(id) !== activation ||
        activation.handingOver ||
        this.fenced()
      )
        continue;
      this.relinquish(id, activation);
      await activation.cell.stopFromParent();
    }
  }

  /** Forgets give-ups long past: a later one starts its quarantine from the shortest again. */
  private forgetQuarantines(now: number): void {
    for (const [id, quarantine] of this.quarantined) {
      const { restart } = this.settings.kinds.get(kindOf(id))!;
      const longest = Math.max(restart.quarantine.maxMs, restart.outageBackoff.maxMs);
      if (now - quarantine.until > longest) this.quarantined.delete(id);
    }
  }

  private passivateIdle(now: number): void {
    for (const [id, activation] of this.activations) {
      if (!activation.cell.alive) {
        void this.retire(id, activation);
        continue;
      }
      const kind = kindOf(id);
      const after = this.settings.kinds.get(kind)?.passivateAfterMs ?? 60_000;
      if (!activation.handingOver && now - activation.lastUsed > after && activation.cell.idle) {
        void this.handOver(id, activation, 'passivated');
      }
    }
  }

  /** Stops an activation once its mailbox is empty, then gives its lease back. */
  private async handOver(
    id: string,
    activation: Activation,
    reason: 'passivated' | 'handed-over',
  ): Promise<void> {
    activation.handingOver = true;
    activation.ending = reason;
    while (activation.cell.alive && !activation.cell.idle) await this.sleep(5);
    await activation.cell.stopFromParent();
    await this.retire(id, activation, reason);
    this.reroute(id);
  }

  /**
   * Routes again, in order, what waited for an activation that is now gone: it activates the key
   * again here, goes where the lease or the placement now is, or, on a leaving node, to the next owner.
   */
  private reroute(id: string): void {
    const waiting = this.waiting.get(id);
    if (waiting === undefined) return;
    this.waiting.delete(id);
    if (this.fenced()) {
      this.holdFirst(id, waiting);
      return;
    }
    const kind = kindOf(id);
    const key = id.slice(kind.length + 1);
    for (const envelope of waiting) this.route(envelope, kind, key);
  }

  private retire(
    id: string,
    activation: Activation,
    reason: 'passivated' | 'handed-over' | 'stopped' | 'lease-lost' | 'failed' = 'stopped',
  ): Promise<void> {
    if (this.activations.get(id) !== activation) return Promise.resolve();
    this.activations.delete(id);
    // A lost lease is another node's now: nothing to give back.
    const released =
      reason === 'lease-lost'
        ? Promise.resolve()
        : this.store.release(id, activation.fence).catch(() => {
            // A lease left behind is taken over once this node is seen down, or by this node again.
          });
    if (this.host.observed) {
      this.host.emit({
        type: 'activation-stopped',
        at: this.host.clock.now(),
        address: activation.cell.address,
        reason,
      });
    }
    return released;
  }

  /**
   * A graceful leave: others stop placing actors here at once; each activation finishes what its
   * mailbox holds and gives its lease back, and what arrives meanwhile goes to the next owner.
   */
  leave(): Promise<void> {
    this.leavePromise ??= this.stopped ? Promise.resolve() : this.runLeave();
    return this.leavePromise;
  }

  private leavePromise: Promise<void> | undefined;

  private async runLeave(): Promise<void> {
    this.leaving = true;
    this.members.get(this.host.node)!.state = 'leaving';
    try {
      await this.store.announce(this.host.node, 'leaving');
    } catch {
      // Unreachable store: the others will see this node go down instead.
    }
    const waitingDone = async () => {
      while (this.waiting.size > 0) await this.sleep(5);
    };
    await waitingDone();
    await Promise.all([...this.activations].map(([id, a]) => this.handOver(id, a, 'handed-over')));
    try {
      await this.store.withdraw(this.host.node);
    } catch {
      // As above.
    }
  }

  /**
   * Stops taking part: the activations (already stopped with the tree) give their leases back and
   * the node withdraws, so the others move its named actors at once rather than after detection.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.heartbeat?.cancel();
    this.detector?.cancel();
    const releases = [...this.activations].map(([id, activation]) => this.retire(id, activation));
    // What was held goes to the next owner, or is answered with ERR_NOT_DELIVERED.
    this.fence = { tag: 'serving' };
    this.releaseHeld();
    await Promise.allSettled(releases);
    if (!this.leaving) {
      try {
        await this.store.withdraw(this.host.node);
      } catch {
        // Unreachable store: the others will see this node go down instead.
      }
    }
    await this.store.close();
  }

  private sleep(ms: number): Promise<void> {
    return sleep(ms, { clock: this.host.clock });
  }
}

function idOf(kind: string, key: string): string {
  return `${kind}/${key}`;
}

function kindOf(id: string): string {
  return id.slice(0, id.indexOf('/'));
}

/** C0 and C1 controls (NUL among them) and lone surrogates: never part of a key. */
const UNFIT_KEY =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
  /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** What is wrong with `key` as a key of `kind`, or undefined. */
function keyProblem(
  kind: string,
  key: string,
  maxLength: number,
  pattern: RegExp | undefined,
): TroupeError | undefined {
  let problem: string | undefined;
  if (typeof key !== 'string' || key.length === 0) problem = 'is empty';
  else if (key.length > maxLength) problem = `is ${key.length} characters long; the limit is ${maxLength}`;
  else if (UNFIT_KEY.test(key)) problem = 'has a control character or a lone surrogate';
  else if (pattern !== undefined) {
    pattern.lastIndex = 0;
    if (!pattern.test(key)) problem = `does not match ${pattern}`;
  }
  if (problem === undefined) return undefined;
  const shown = typeof key === 'string' && key.length > 64 ? `${key.slice(0, 64)}...` : key;
  return new TroupeError(
    'ERR_INVALID_NAME',
    `the key ${JSON.stringify(shown)} of kind "${kind}" ${problem}`,
    {
      details: { kind, length: typeof key === 'string' ? key.length : undefined },
    },
  );
}

/** The error with `code` in `error`'s cause chain, if any. */
function withCode(error: unknown, code: string): TroupeError | undefined {
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 16; depth++) {
    if (TroupeError.is(e) && e.code === code) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
