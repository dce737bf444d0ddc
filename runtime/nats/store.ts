/**
 * The cluster's shared state in JetStream KV: membership heartbeats (`<prefix>_members`, entries
 * expire) and single-activation leases (`<prefix>_leases`, the revision is the fencing token).
 */
import type { KV, Kvm } from '@nats-io/kv';
import { TroupeError } from '../../protocols/index.js';
import type { ClusterStore, MemberState } from '../remoting/cluster-types.js';
import type { Clock } from '../time/clock.js';
import { exponential, retrying } from '../time/retry.js';

/** A lease key for KV: the actor's id in base64url (KV keys allow few characters). */
function leaseKey(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

/** The {@link ClusterStore} of a NATS transport. */
export class KvStore implements ClusterStore {
  private stopWatch: (() => void) | undefined;

  constructor(
    private readonly members: KV,
    private readonly leases: KV,
    private readonly statusListeners: Set<(reachable: boolean) => void>,
  ) {}

  status(listener: (reachable: boolean) => void): void {
    this.statusListeners.add(listener);
  }

  async announce(node: string, state: MemberState): Promise<void> {
    await this.members.put(node, JSON.stringify({ state }));
  }

  async withdraw(node: string): Promise<void> {
    await this.members.delete(node);
  }

  async watch(listener: (node: string, state: MemberState | 'gone') => void): Promise<void> {
    const entries = await this.members.watch({ key: '>' });
    this.stopWatch = () => entries.stop();
    void (async () => {
      for await (const entry of entries) {
        if (entry.operation !== 'PUT') {
          listener(entry.key, 'gone');
          continue;
        }
        let state: unknown;
        try {
          state = (entry.json() as { state?: unknown }).state;
        } catch {
          continue; // Not ours: someone else wrote to the bucket.
        }
        if (state === 'up' || state === 'leaving') listener(entry.key, state);
      }
    })().catch(() => {
      // The watch ends with the connection.
    });
  }

  async lease(
    id: string,
    node: string,
    takeOver: (holder: string) => boolean,
  ): Promise<{ readonly fence: number } | { readonly holder: string }> {
    const key = leaseKey(id);
    const value = JSON.stringify({ node });
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        return { fence: await this.leases.create(key, value) };
      } catch {
        // Taken (or a race): look at who holds it.
      }
      const entry = await this.leases.get(key);
      if (entry === null || entry.operation !== 'PUT') continue;
      let holder: string | undefined;
      try {
        holder = (entry.json() as { node?: string }).node;
      } catch {
        holder = undefined;
      }
      if (holder !== undefined && !takeOver(holder)) return { holder };
      try {
        // Compare-and-set on the revision: of two nodes taking over, one wins.
        return { fence: await this.leases.update(key, value, entry.revision) };
      } catch {
        // Someone else moved first: look again.
      }
    }
    throw new TroupeError('ERR_TRANSPORT', `could not take the lease of ${id}: too much contention`);
  }

  async release(id: string, fence: number): Promise<void> {
    try {
      await this.leases.delete(leaseKey(id), { previousSeq: fence });
    } catch {
      // Taken over meanwhile: not ours to release any more.
    }
  }

  async fence(id: string): Promise<number | undefined> {
    const entry = await this.leases.get(leaseKey(id));
    return entry === null || entry.operation !== 'PUT' ? undefined : entry.revision;
  }

  async close(): Promise<void> {
    this.stopWatch?.();
    this.statusListeners.clear();
  }
}

/**
 * Creates (or binds to) a KV bucket. Nodes that start together race to create the same bucket, and
 * the server may refuse the loser while the winner's stream is still being set up ("subjects
 * overlap with an existing stream"); a moment later the same call binds to the finished bucket.
 */
export function createBucket(
  kvm: Kvm,
  name: string,
  options: Parameters<Kvm['create']>[1],
  clock: Clock,
): Promise<KV> {
  return retrying(() => kvm.create(name, options), {
    attempts: 5,
    backoff: BUCKET_BACKOFF,
    retryable: (error) => /overlap|already in use/i.test(String((error as Error)?.message ?? '')),
    clock,
  });
}

const BUCKET_BACKOFF = exponential({ baseMs: 50, maxMs: 400 });
