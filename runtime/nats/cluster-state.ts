/** Removing a stopped cluster's state (its KV buckets) from a shared NATS. */
import { Kvm } from '@nats-io/kv';
import { invalidOption, TroupeError } from '../../protocols/index.js';
import { clusterBuckets, connectTo, type NatsTransportOptions } from './transport.js';

/** Options of {@link removeClusterState}. */
export interface RemoveClusterStateOptions
  extends Omit<NatsTransportOptions, 'outboxBytes' | 'replayTimeoutMs' | 'prefix'> {
  /** The cluster's name (`createNode({ name })`). */
  readonly cluster: string;
  /** The prefix its nodes were given (`natsTransport({ prefix })`). Defaults to `troupe.<cluster>`. */
  readonly prefix?: string;
  /** Removes the state even while members are up. Defaults to false. */
  readonly force?: boolean;
}

/** What {@link removeClusterState} found and did. */
export interface RemovedClusterState {
  /** The buckets it deleted (those that existed). */
  readonly removed: readonly string[];
  /** The nodes that were members (up or leaving) when it looked. */
  readonly members: readonly string[];
}

/**
 * Removes a cluster's state from a shared NATS: its KV buckets of members and leases (JetStream
 * streams that outlive the nodes). Run it once every node of the cluster has stopped; while a
 * member is up it refuses, unless `force`. A cluster started again creates the buckets anew.
 * @throws TroupeError `ERR_ILLEGAL_STATE` while the cluster has members (without `force`);
 * `ERR_TRANSPORT` when NATS cannot be reached or refuses.
 * @example
 * ```ts
 * const { removed } = await removeClusterState({ servers: 'nats://127.0.0.1:4222', cluster: 'shop' });
 * ```
 */
export async function removeClusterState(options: RemoveClusterStateOptions): Promise<RemovedClusterState> {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', 'must be an object');
  if (typeof options.cluster !== 'string' || options.cluster === '')
    throw invalidOption('cluster', 'must be a non-empty string', options.cluster);
  const buckets = clusterBuckets(options.cluster, options.prefix);
  const nc = await connectTo(options, { maxReconnectAttempts: 0 });
  try {
    const kvm = new Kvm(nc);
    const present = new Set<string>();
    for await (const status of kvm.list()) present.add(status.bucket);
    const members: string[] = [];
    if (present.has(buckets.members)) {
      const kv = await kvm.open(buckets.members);
      for await (const key of await kv.keys()) members.push(key);
    }
    if (members.length > 0 && options.force !== true) {
      throw new TroupeError(
        'ERR_ILLEGAL_STATE',
        `cluster "${options.cluster}" still has members (${members.join(', ')}): stop them first, or force`,
        { details: { cluster: options.cluster, members } },
      );
    }
    const removed: string[] = [];
    for (const bucket of [buckets.members, buckets.leases]) {
      if (!present.has(bucket)) continue;
      await (await kvm.open(bucket)).destroy();
      removed.push(bucket);
    }
    return { removed, members };
  } catch (error) {
    if (TroupeError.is(error)) throw error;
    throw new TroupeError(
      'ERR_TRANSPORT',
      `NATS refused to remove the state of cluster "${options.cluster}": ${String(error)}`,
      {
        cause: error,
        details: { cluster: options.cluster },
      },
    );
  } finally {
    await nc.close();
  }
}

/** Options of {@link clusterMembership}. */
export type ClusterMembershipOptions = Omit<RemoveClusterStateOptions, 'force'>;

/** A member as the cluster's membership bucket holds it: what it last said of itself, and when. */
export interface MembershipEntry {
  readonly node: string;
  readonly state: 'up' | 'leaving';
  /** Wall-clock time (epoch ms) of its last heartbeat, as NATS stored it. */
  readonly heartbeatAt: number;
}

/** A read-only view of a cluster's membership bucket, for operators' tools. */
export interface ClusterMembership {
  /** Every node with a heartbeat in the bucket now, sorted by id (a killed node stays until its entry expires). */
  members(): Promise<MembershipEntry[]>;
  close(): Promise<void>;
}

/**
 * Opens the membership bucket of a cluster (`<prefix>_members`) to read who is in it, without
 * joining: the way to find every node, whatever it hosts.
 * @throws TroupeError `ERR_TRANSPORT` when NATS cannot be reached.
 * @example
 * ```ts
 * const membership = await clusterMembership({ servers: 'nats://127.0.0.1:4222', cluster: 'shop' });
 * console.log(await membership.members()); // [{ node: 'node-a', state: 'up', heartbeatAt: ... }]
 * ```
 */
export async function clusterMembership(options: ClusterMembershipOptions): Promise<ClusterMembership> {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', 'must be an object');
  if (typeof options.cluster !== 'string' || options.cluster === '')
    throw invalidOption('cluster', 'must be a non-empty string', options.cluster);
  const bucket = clusterBuckets(options.cluster, options.prefix).members;
  const nc = await connectTo(options, { maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  const kvm = new Kvm(nc);
  return {
    async members() {
      let kv: Awaited<ReturnType<Kvm['open']>>;
      try {
        kv = await kvm.open(bucket);
        await kv.status();
      } catch {
        return []; // No bucket yet: no node has joined.
      }
      const out: MembershipEntry[] = [];
      // A key updated while they are listed (a heartbeat) can be listed twice.
      const keys = new Set<string>();
      for await (const key of await kv.keys()) keys.add(key);
      for (const key of keys) {
        const entry = await kv.get(key);
        if (entry === null || entry.operation !== 'PUT') continue;
        let state: unknown;
        try {
          state = (entry.json() as { state?: unknown }).state;
        } catch {
          continue; // Not a member's announcement.
        }
        if (state === 'up' || state === 'leaving') {
          out.push({ node: key, state, heartbeatAt: entry.created.getTime() });
        }
      }
      return out.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    },
    async close() {
      if (!nc.isClosed()) await nc.close();
    },
  };
}
