import type { Behavior } from './api.js';

/** What a member says of itself. */
export type MemberState = 'up' | 'leaving';

/**
 * The shared state of a cluster: membership announcements and single-activation leases. The NATS
 * transport keeps it in JetStream KV buckets; an in-process network keeps it in memory.
 */
export interface ClusterStore {
  /** Announces (or re-announces: a heartbeat) this member. */
  announce(node: string, state: MemberState): Promise<void>;
  /** Removes this member's announcement (a graceful leave). */
  withdraw(node: string): Promise<void>;
  /** Calls `listener` for every announcement and withdrawal, the stored ones first. */
  watch(listener: (node: string, state: MemberState | 'gone') => void): Promise<void>;
  /**
   * Takes the lease on `key` for `node` (create-if-absent, or compare-and-set over a holder that
   * `takeOver` allows), or names the holder that keeps it. The fence is the lease's revision.
   */
  lease(
    key: string,
    node: string,
    takeOver: (holder: string) => boolean,
  ): Promise<{ readonly fence: number } | { readonly holder: string }>;
  /** Gives the lease back, if it is still the one with this fence. */
  release(key: string, fence: number): Promise<void>;
  /** The fence of the lease on `key` now, or undefined when nobody holds it. */
  fence(key: string): Promise<number | undefined>;
  close(): Promise<void>;
}

/** A kind of named (virtual) actor, and when an idle activation is passivated. */
export interface KindOptions {
  readonly behavior: Behavior<any, any>;
  /** Idle time after which an activation stops and gives its lease back. Defaults to 60 s. */
  readonly passivateAfterMs?: number;
}
