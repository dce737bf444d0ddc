import { type Observable, Subject } from 'rxjs';
import { type Address, type AnyProtocol, parseAddress, TroupeError } from '../../protocols/index.js';
import type { ActorRef } from '../kernel/api.js';
import type { Cell } from '../kernel/cell.js';
import type { PublishedEvent } from '../kernel/events.js';
import type { Transport } from '../remoting/transport.js';
import type { Clock, TimerHandle } from '../time/clock.js';
import type { GroupChange } from './events.js';

/** The transport topic on which the nodes' directories gossip (not a name a user topic can take). */
export const DIRECTORY_TOPIC = '$directory';

/** What the directory needs from its system. */
export interface DirectoryHost {
  readonly name: string;
  readonly node: string;
  readonly clock: Clock;
  readonly heartbeatMs: number;
  readonly downAfterMissed: number;
  /** Resolves once the transport receives. */
  readonly opened: Promise<void>;
  /** The transport, when the node is one of a cluster; undefined for a single system. */
  readonly transport: Transport | undefined;
  /** A ref to an actor of another node. */
  remoteRef(address: Address, protocol: AnyProtocol | undefined): ActorRef<any>;
  publish(event: PublishedEvent): void;
  /** Largest directory message this node sends (its `maxMessageBytes`). */
  readonly maxMessageBytes: number;
  /** A defect of this node's own: its state does not fit in one directory message. */
  reportDefect(error: unknown): void;
  /** Gossip that is not JSON or not a directory message: a `malformed` dead letter. */
  refuse(error: TroupeError, body: unknown): void;
}

/** One node's state as another node last heard it. */
interface Peer {
  readonly groups: Map<string, Set<Address>>;
  readonly topics: Set<string>;
  lastSeen: number;
  /** The sequence number of the last sync heard: an older one is stale. */
  seq: number;
  /** Its incarnation: a node that comes back under the same id starts its sequence again. */
  incarnation: string;
}

/** What a node says of itself on the directory topic. */
interface SyncMessage {
  readonly op: 'sync';
  readonly node: string;
  readonly incarnation: string;
  readonly seq: number;
  readonly groups: Readonly<Record<string, readonly Address[]>>;
  readonly topics: readonly string[];
  /** Set by a node that has just started: everyone answers with a sync of their own. */
  readonly hello?: boolean;
}

interface ByeMessage {
  readonly op: 'bye';
  readonly node: string;
  readonly incarnation: string;
}

/**
 * One node's part of the cluster-wide directory of process groups and topic interest, in the manner
 * of Erlang's `pg`: each node owns its local members and tells the others. A node sends its whole
 * local state (every group's local members, the topics it has subscribers for) on the directory
 * topic at the end of any turn that changed it, and every `heartbeatMs`; a node that has just
 * started says hello and every node answers with its state. A node's entries go when it says bye
 * (it closes), when it has been silent for `downAfterMissed` heartbeats (it crashed, or is cut off),
 * or when the cluster's membership declares it down. Full-state messages make the gossip
 * self-repairing: a lost message is corrected by the next one.
 */
export class Directory {
  /** Local members per group, in join order. */
  private readonly local = new Map<string, Set<Cell>>();
  /** Per local member: its groups, and how to stop following its exit. */
  private readonly memberships = new Map<Cell, { groups: Set<string>; unwatch: () => void }>();
  private readonly interest = new Set<string>();
  private readonly peers = new Map<string, Peer>();
  private readonly refs = new Map<string, ActorRef<any>>();
  private readonly changes = new Subject<GroupChange>();
  private readonly incarnation: string;
  private seq = 0;
  private syncScheduled = false;
  private timer: TimerHandle | undefined;
  private lastTick: number;
  private closed = false;
  /** True once the transport is open and this node has said hello. */
  private started = false;
  private readonly clustered: boolean;

  constructor(
    private readonly host: DirectoryHost,
    incarnation: string,
  ) {
    this.incarnation = incarnation;
    const transport = host.transport;
    this.clustered =
      transport?.subscribeTopic !== undefined &&
      transport.publishTopic !== undefined &&
      transport.unsubscribeTopic !== undefined;
    this.lastTick = host.clock.now();
    // Once the transport receives (at once on a node made by createNode): before, it has no subjects.
    if (this.clustered) {
      host.opened.then(
        () => {
          if (this.closed) return;
          this.started = true;
          transport!.subscribeTopic!(DIRECTORY_TOPIC, (bytes) => this.heard(bytes));
          this.send(true);
          this.tick();
        },
        () => {
          // The node never opened: it has local groups only (the system reported why).
        },
      );
    }
  }

  /** Every change of every group, local and remote. */
  get changes$(): Observable<GroupChange> {
    return this.changes.asObservable();
  }

  // ---- Groups ----

  join(group: string, cell: Cell): boolean {
    let members = this.local.get(group);
    if (members === undefined) {
      members = new Set();
      this.local.set(group, members);
    }
    if (members.has(cell)) return false;
    members.add(cell);
    let membership = this.memberships.get(cell);
    if (membership === undefined) {
      membership = { groups: new Set(), unwatch: cell.onExit((c) => this.exited(c)) };
      this.memberships.set(cell, membership);
    }
    membership.groups.add(group);
    this.changed({ kind: 'joined', group, member: cell.address, node: this.host.node });
    this.scheduleSync();
    return true;
  }

  leave(group: string, cell: Cell, reason: 'left' | 'stopped' = 'left'): boolean {
    const members = this.local.get(group);
    if (members === undefined || !members.delete(cell)) return false;
    if (members.size === 0) this.local.delete(group);
    const membership = this.memberships.get(cell);
    if (membership !== undefined) {
      membership.groups.delete(group);
      if (membership.groups.size === 0) {
        membership.unwatch();
        this.memberships.delete(cell);
      }
    }
    this.changed({ kind: 'left', group, member: cell.address, node: this.host.node, reason });
    this.scheduleSync();
    return true;
  }

  private exited(cell: Cell): void {
    const membership = this.memberships.get(cell);
    if (membership === undefined) return;
    for (const group of [...membership.groups]) this.leave(group, cell, 'stopped');
  }

  /** The group's members on every node this node knows of: local ones first, then by node id. */
  members(group: string, protocol?: AnyProtocol): ActorRef<any>[] {
    const out: ActorRef<any>[] = [];
    for (const cell of this.local.get(group) ?? []) if (cell.alive) out.push(cell);
    for (const node of [...this.peers.keys()].sort()) {
      for (const address of this.peers.get(node)!.groups.get(group) ?? [])
        out.push(this.refTo(address, protocol));
    }
    return out;
  }

  localMembers(group: string): ActorRef<any>[] {
    const out: ActorRef<any>[] = [];
    for (const cell of this.local.get(group) ?? []) if (cell.alive) out.push(cell);
    return out;
  }

  /** Names of the groups with at least one member anywhere. */
  groups(): string[] {
    const names = new Set(this.local.keys());
    for (const peer of this.peers.values()) for (const group of peer.groups.keys()) names.add(group);
    return [...names].sort();
  }

  private refTo(address: Address, protocol: AnyProtocol | undefined): ActorRef<any> {
    const key = protocol === undefined ? address : `${protocol.name}\u0000${address}`;
    let ref = this.refs.get(key);
    if (ref === undefined) {
      ref = this.host.remoteRef(address, protocol);
      if (this.refs.size >= 10_000) this.refs.clear();
      this.refs.set(key, ref);
    }
    return ref;
  }

  // ---- Topic interest ----

  /** Says whether this node has subscribers for `topic`. */
  setInterest(topic: string, interested: boolean): void {
    if (interested === this.interest.has(topic)) return;
    if (interested) this.interest.add(topic);
    else this.interest.delete(topic);
    this.scheduleSync();
  }

  /** The other nodes known to have subscribers for `topic`, sorted. */
  interested(topic: string): string[] {
    const out: string[] = [];
    for (const [node, peer] of this.peers) if (peer.topics.has(topic)) out.push(node);
    return out.sort();
  }

  // ---- Gossip ----

  /** Another node is down (the cluster's membership says so): its members leave. */
  nodeDown(node: string): void {
    this.forget(node);
  }

  private scheduleSync(): void {
    if (!this.started || this.syncScheduled || this.closed) return;
    this.syncScheduled = true;
    queueMicrotask(() => {
      this.syncScheduled = false;
      if (!this.closed) this.send(false);
    });
  }

  private send(hello: boolean): void {
    const groups: Record<string, Address[]> = {};
    for (const [group, cells] of this.local) {
      const live: Address[] = [];
      for (const cell of cells) if (cell.alive) live.push(cell.address);
      if (live.length > 0) groups[group] = live;
    }
    const message: SyncMessage = {
      op: 'sync',
      node: this.host.node,
      incarnation: this.incarnation,
      seq: ++this.seq,
      groups,
      topics: [...this.interest],
      ...(hello ? { hello: true } : {}),
    };
    const bytes = Buffer.from(JSON.stringify(message));
    if (bytes.length > this.host.maxMessageBytes) {
      // The others would not hear this node's members: say so loudly rather than gossip part of them.
      this.host.reportDefect(
        new TroupeError(
          'ERR_MESSAGE_TOO_LARGE',
          `this node's groups and topics take ${bytes.length} bytes; a directory message may take ${this.host.maxMessageBytes} (maxMessageBytes)`,
          { details: { bytes: bytes.length, limit: this.host.maxMessageBytes } },
        ),
      );
      return;
    }
    this.host.transport!.publishTopic!(DIRECTORY_TOPIC, bytes);
  }

  /** Every heartbeat: say what this node has, and forget the nodes that went silent. */
  private tick(): void {
    this.timer = this.host.clock.setTimeout(() => {
      if (this.closed) return;
      const now = this.host.clock.now();
      const { heartbeatMs, downAfterMissed } = this.host;
      // A tick far later than planned: this process was paused, and the silence was ours.
      if (now - this.lastTick > 2 * heartbeatMs) for (const peer of this.peers.values()) peer.lastSeen = now;
      this.lastTick = now;
      for (const [node, peer] of [...this.peers]) {
        if (now - peer.lastSeen > downAfterMissed * heartbeatMs) this.forget(node);
      }
      this.send(false);
      this.tick();
    }, this.host.heartbeatMs);
  }

  private heard(bytes: Uint8Array): void {
    if (this.closed) return;
    let message: SyncMessage | ByeMessage;
    try {
      message = JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch (cause) {
      this.host.refuse(
        new TroupeError('ERR_VALIDATION', 'a directory message is not JSON', { cause }),
        undefined,
      );
      return;
    }
    if (
      typeof message !== 'object' ||
      message === null ||
      typeof message.node !== 'string' ||
      (message.op !== 'sync' && message.op !== 'bye')
    ) {
      this.host.refuse(
        new TroupeError('ERR_VALIDATION', 'a directory message has no node or operation'),
        message,
      );
      return;
    }
    if (message.node === this.host.node) {
      // Our own echo, or an earlier incarnation's (ours would be newer): nothing to learn.
      return;
    }
    if (message.op === 'bye') {
      const peer = this.peers.get(message.node);
      if (peer !== undefined && peer.incarnation === message.incarnation) this.forget(message.node);
      return;
    }
    if (typeof message.seq !== 'number' || typeof message.groups !== 'object' || message.groups === null) {
      this.host.refuse(new TroupeError('ERR_VALIDATION', 'a directory sync needs a seq and groups'), message);
      return;
    }
    const now = this.host.clock.now();
    const known = this.peers.get(message.node);
    if (known !== undefined && known.incarnation === message.incarnation && message.seq <= known.seq) {
      return;
    }
    const peer: Peer = {
      groups: new Map(),
      topics: new Set(
        Array.isArray(message.topics) ? message.topics.filter((t) => typeof t === 'string') : [],
      ),
      lastSeen: now,
      seq: message.seq,
      incarnation: String(message.incarnation),
    };
    for (const [group, addresses] of Object.entries(message.groups ?? {})) {
      if (!Array.isArray(addresses) || group.length === 0 || group.length > 256) continue;
      // Untrusted: only well-formed addresses of actors of the node that speaks for them.
      const set = new Set(addresses.filter((a) => this.ownedBy(a, message.node)));
      if (set.size > 0) peer.groups.set(group, set);
    }
    this.peers.set(message.node, peer);
    // A node that comes back under the same id is a new incarnation: its old members are gone.
    const reason = known !== undefined && known.incarnation !== peer.incarnation ? 'node-down' : 'left';
    this.diff(message.node, known?.groups, peer.groups, reason);
    if (message.hello === true) this.scheduleSync();
  }

  private ownedBy(address: unknown, node: string): address is Address {
    if (typeof address !== 'string' || address.length > 1024) return false;
    try {
      const parts = parseAddress(address);
      return parts.system === this.host.name && parts.node === node && parts.path !== '';
    } catch {
      return false;
    }
  }

  private forget(node: string): void {
    const peer = this.peers.get(node);
    if (peer === undefined) return;
    this.peers.delete(node);
    this.diff(node, peer.groups, undefined, 'node-down');
  }

  /** Tells of every member that joined or left between two states of a node. */
  private diff(
    node: string,
    before: Map<string, Set<Address>> | undefined,
    after: Map<string, Set<Address>> | undefined,
    reason: 'left' | 'node-down',
  ): void {
    for (const [group, members] of before ?? []) {
      const now = after?.get(group);
      for (const member of members) {
        if (now?.has(member) !== true) this.changed({ kind: 'left', group, member, node, reason });
      }
    }
    for (const [group, members] of after ?? []) {
      const was = before?.get(group);
      for (const member of members) {
        if (was?.has(member) !== true) this.changed({ kind: 'joined', group, member, node });
      }
    }
  }

  private changed(change: GroupChange): void {
    if (this.changes.observed) this.changes.next(change);
    if (change.kind === 'joined') {
      this.host.publish({
        type: 'group-joined',
        group: change.group,
        member: change.member,
        node: change.node,
      });
    } else {
      this.host.publish({
        type: 'group-left',
        group: change.group,
        member: change.member,
        node: change.node,
        reason: change.reason,
      });
    }
  }

  /** Says bye (the others forget this node's members at once) and stops gossiping. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.changes.complete();
    if (!this.started) return;
    const transport = this.host.transport!;
    const bye: ByeMessage = { op: 'bye', node: this.host.node, incarnation: this.incarnation };
    transport.publishTopic!(DIRECTORY_TOPIC, Buffer.from(JSON.stringify(bye)));
    transport.unsubscribeTopic!(DIRECTORY_TOPIC);
  }
}
