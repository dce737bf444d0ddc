import type { Behavior } from '../kernel/api.js';
import type { Backoff } from '../time/retry.js';

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
  /**
   * Calls `listener` when the store becomes unreachable (`false`) and reachable again (`true`), as
   * far as the adapter can tell. Optional: the cluster also notices failed heartbeats by itself.
   */
  status?(listener: (reachable: boolean) => void): void;
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
  /**
   * Which keys exist, checked before anything is activated or written: at most `maxLength`
   * characters (default 256), well-formed Unicode without control characters, and, with
   * `pattern`, matching it. A message to any other key is a `malformed` dead letter
   * (`ERR_INVALID_NAME`); `actorOf` throws it.
   */
  readonly keys?: KeyRules;
  /** How a key's activation is restarted when it crashes, and given up. See {@link ActivationPolicy}. */
  readonly restart?: ActivationPolicy;
}

/** The keys a kind of named actor accepts. */
export interface KeyRules {
  /** Longest key, in UTF-16 code units. Defaults to 256. */
  readonly maxLength?: number;
  /** A pattern every key must match, e.g. `/^[a-z0-9-]+$/`. None by default. */
  readonly pattern?: RegExp;
}

/**
 * How the node supervises one kind's activations. Each key has its own restart window, so one key
 * that keeps failing never stops the others, nor the node.
 *
 * - A crash restarts the activation (its mailbox kept), after `backoff` if given. More than
 *   `intensity` crashes within `periodMs` and the key is given up: the activation stops, its lease
 *   is given back, an `activation-failed` event says why, and for `quarantine` (growing with each
 *   give-up in a row) its messages are refused with `ERR_ACTIVATION_FAILED`; the next message after
 *   that activates it again.
 * - A dependency outage (a failure caused by `ERR_JOURNAL_UNAVAILABLE`) is not counted: with
 *   `outage: 'wait'` the activation is restarted after `outageBackoff` until the journal answers,
 *   its messages waiting in its mailbox (each ask still ends at its own deadline); with
 *   `'fail-fast'` it stops and its key answers `ERR_JOURNAL_UNAVAILABLE` at once for `outageBackoff`.
 * - `ERR_FENCED` (another node holds the key's lease now) stops the activation without a restart,
 *   and its queued messages go to the key's current owner.
 */
export interface ActivationPolicy {
  /** Crashes of one key's activation within `periodMs` that are restarted. Defaults to 3. */
  readonly intensity?: number;
  /** Defaults to 5000. */
  readonly periodMs?: number;
  /** Delay before each restart after a crash. None by default. */
  readonly backoff?: Backoff;
  /** How long a given-up key refuses messages. Defaults to 1 s doubling to 30 s, ±20%. */
  readonly quarantine?: Backoff;
  /** Defaults to `'wait'`. */
  readonly outage?: 'wait' | 'fail-fast';
  /** Delay between attempts while the journal is unavailable. Defaults to 100 ms doubling to 1 s, ±20%. */
  readonly outageBackoff?: Backoff;
}
