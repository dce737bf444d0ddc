import { createHash } from 'node:crypto';
import { type Address, type Envelope, formatAddress, TroupeError } from '../protocols/index.js';
import type { Behavior } from './api.js';
import type { Cell } from './cell.js';
import type { Clock, TimerHandle } from './clock.js';
import type { ClusterStore, KindOptions, MemberState } from './cluster-types.js';
import type { SystemEvent } from './events.js';

/** Cluster settings of a node. */
export interface ClusterSettings {
  readonly heartbeatMs: number;
  readonly downAfterMissed: number;
  readonly kinds: ReadonlyMap<string, Required<KindOptions>>;
}

/** What the cluster needs from its system and router. */
export interface ClusterHost {
  readonly name: string;
  readonly node: string;
  readonly clock: Clock;
  readonly observed: boolean;
  emit(event: SystemEvent): void;
  /** Spawns an activation: an actor whose address is the named one. */
  spawnActivation(behavior: Behavior<any, any>, address: Address): Cell;
  /** Admits and delivers an envelope to an actor of this node. */
  deliverLocal(item: unknown): void;
  /** Sends an envelope (a decoded object) to another node as it is. */
  forward(node: string, item: Envelope): void;
  /** A message that cannot reach a named actor: a dead letter, and an error reply to an ask. */
  undeliverable(envelope: Envelope, error: TroupeError): void;
}

interface Member {
  state: 'up' | 'suspect' | 'leaving';
  lastSeen: number;
}

interface Activation {
  readonly cell: Cell;
  readonly fence: number;
  lastUsed: number;
  handingOver: boolean;
}

/** Most times a message for a named actor is passed between nodes before it is given up. */
const MAX_HOPS = 4;

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
  /** Messages for a key whose lease is being taken, in arrival order. */
  private readonly waiting = new Map<string, Envelope[]>();
  private heartbeat: TimerHandle | undefined;
  private detector: TimerHandle | undefined;
  private leaving = false;
  private stopped = false;

  constructor(
    private readonly host: ClusterHost,
    private readonly store: ClusterStore,
    private readonly settings: ClusterSettings,
  ) {}

  async start(): Promise<void> {
    await this.store.watch((node, state) => this.heard(node, state));
    await this.store.announce(this.host.node, 'up');
    this.heard(this.host.node, 'up');
    this.beat();
    this.detect();
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
  route(envelope: Envelope & { hops?: number }, kind: string, key: string): void {
    const kindOptions = this.settings.kinds.get(kind);
    if (kindOptions === undefined) {
      this.host.deliverLocal(envelope); // The full checks turn it into a no-such-actor dead letter.
      return;
    }
    const id = idOf(kind, key);
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
    const hops =
      Number.isInteger(envelope.hops) &&
      (envelope.hops as number) >= 0 &&
      (envelope.hops as number) < MAX_HOPS
        ? (envelope.hops as number)
        : 0;
    const owner = this.owner(kind, key);
    if (owner !== undefined && owner !== this.host.node && hops === 0) {
      this.host.forward(owner, { ...envelope, hops: 1 } as Envelope);
      return;
    }
    if (this.leaving || this.stopped) {
      this.passOn(envelope, kind, key, hops);
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
    kindOptions: Required<KindOptions>,
    hops: number,
  ): Promise<void> {
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
        await sleep(50);
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
      cell = this.host.spawnActivation(kindOptions.behavior, address);
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
    });
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
    for (const envelope of queue) this.host.deliverLocal(envelope);
  }

  /** The fence of each local activation, for the envelopes it sends. */
  readonly fences = new WeakMap<object, number>();

  private canTakeOver(holder: string): boolean {
    // Our own lease from before (a restarted node with the same id) or a holder that is down.
    return holder === this.host.node || !this.members.has(holder);
  }

  private passTo(
    node: string,
    envelope: Envelope & { hops?: number },
    kind: string,
    key: string,
    hops: number,
  ): void {
    if (node === this.host.node) {
      this.host.deliverLocal(envelope);
      return;
    }
    if (hops + 1 >= MAX_HOPS) {
      this.giveUp(envelope, kind, key);
      return;
    }
    this.host.forward(node, { ...envelope, hops: hops + 1 } as Envelope);
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
    if (this.host.observed) this.host.emit({ type: 'member-down', at: this.host.clock.now(), node, reason });
  }

  private emit(type: 'member-up' | 'member-suspect' | 'member-leaving', node: string): void {
    if (this.host.observed) this.host.emit({ type, at: this.host.clock.now(), node });
  }

  private beat(): void {
    this.heartbeat = this.host.clock.setTimeout(() => {
      if (this.stopped) return;
      this.store.announce(this.host.node, this.leaving ? 'leaving' : 'up').catch(() => {
        // NATS is away: the next beat tries again; the others will suspect this node meanwhile.
      });
      this.beat();
    }, this.settings.heartbeatMs);
  }

  /** Suspect after one missed beat, down after `downAfterMissed`; passivate idle activations. */
  private detect(): void {
    const { heartbeatMs, downAfterMissed } = this.settings;
    this.detector = this.host.clock.setTimeout(() => {
      if (this.stopped) return;
      const now = this.host.clock.now();
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
      this.passivateIdle(now);
      // Every five heartbeats: an activation whose lease another node took (after a partition in
      // which each side thought the other down) stops, so one activation is left.
      if (++this.ticks % 20 === 0) void this.verifyLeases();
      this.detect();
    }, heartbeatMs / 4);
  }

  private ticks = 0;

  private async verifyLeases(): Promise<void> {
    for (const [id, activation] of [...this.activations]) {
      let fence: number | undefined;
      try {
        fence = await this.store.fence(id);
      } catch {
        return; // The store is away: try again later.
      }
      if (fence === activation.fence || this.activations.get(id) !== activation || activation.handingOver)
        continue;
      activation.handingOver = true;
      await activation.cell.stopFromParent();
      await this.retire(id, activation, 'lease-lost');
      this.reroute(id);
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
    while (activation.cell.alive && !activation.cell.idle) await sleep(5);
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
    const kind = kindOf(id);
    const key = id.slice(kind.length + 1);
    for (const envelope of waiting) this.route(envelope, kind, key);
  }

  private retire(
    id: string,
    activation: Activation,
    reason: 'passivated' | 'handed-over' | 'stopped' | 'lease-lost' = 'stopped',
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
      while (this.waiting.size > 0) await sleep(5);
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
}

function idOf(kind: string, key: string): string {
  return `${kind}/${key}`;
}

function kindOf(id: string): string {
  return id.slice(0, id.indexOf('/'));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
