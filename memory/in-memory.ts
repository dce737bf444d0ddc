import type { TroupeError } from '../protocols/index.js';
import type { Clock } from '../runtime/index.js';
import { duplicateKey, indexInAppend, planBatch, type StreamFacts } from './batch.js';
import {
  type AppendRequest,
  type AppendResult,
  type Checkpoint,
  createJournal,
  type Journal,
  type JournalOptions,
  type JournalStore,
  journalDefaults,
  type RawEvent,
} from './journal.js';

interface MemoryEvent extends RawEvent {
  readonly stream: string;
  readonly version: number;
  readonly data: string;
  readonly metadata: string;
  readonly position: number;
}

/**
 * A journal kept in this process's memory: the default, for tests and for state that may be lost
 * with the process. Data is stored as JSON, so what comes back is a copy, as from Postgres.
 *
 * @example
 * ```ts
 * const journal = inMemoryJournal();
 * await journal.append('order-1', [{ type: 'placed', data: { total: 3 } }], { expectedVersion: 0 });
 * ```
 */
export function inMemoryJournal(options?: JournalOptions): Journal {
  return createJournal(new MemoryStore(options?.clock ?? journalDefaults.clock), options);
}

class MemoryStore implements JournalStore {
  readonly concurrency = 1;
  /** Stamps `createdAt` (wall-clock time). */
  constructor(private readonly clock: Clock) {}

  private log: MemoryEvent[] = [];
  private readonly streams = new Map<string, { version: number; fence?: number; events: MemoryEvent[] }>();
  private readonly duplicates = new Map<string, AppendResult>();
  private readonly snapshots = new Map<string, { version: number; state: string; createdAt: number }>();
  private readonly checkpoints = new Map<string, Checkpoint>();
  private readonly listeners = new Set<() => void>();
  private tx = 0;
  private position = 0;

  async appendBatch(requests: readonly AppendRequest[]): Promise<(AppendResult | TroupeError)[]> {
    const facts = new Map<string, StreamFacts>();
    for (const { stream } of requests) {
      const s = this.streams.get(stream);
      facts.set(stream, { version: s?.version ?? 0, fence: s?.fence });
    }
    const plan = planBatch(requests, facts, this.duplicates);
    if (plan.rows.length > 0) this.tx++;
    const createdAt = this.clock.wallNow();
    for (const row of plan.rows) {
      const event: MemoryEvent = {
        ...row,
        tx: this.tx,
        position: ++this.position,
        createdAt,
      };
      this.log.push(event);
      this.stream(row.stream).events.push(event);
    }
    for (const [stream, version] of plan.versions) this.stream(stream).version = version;
    for (const [stream, fence] of plan.fences) this.stream(stream).fence = fence;
    if (plan.rows.length > 0) for (const listener of this.listeners) listener();
    return plan.results;
  }

  private stream(stream: string): { version: number; fence?: number; events: MemoryEvent[] } {
    let s = this.streams.get(stream);
    if (s === undefined) {
      s = { version: 0, events: [] };
      this.streams.set(stream, s);
    }
    return s;
  }

  async readStream(stream: string, fromVersion: number, limit: number): Promise<RawEvent[]> {
    const events = this.streams.get(stream)?.events ?? [];
    const start = lowerBound(events, fromVersion, (e) => e.version);
    return events.slice(start, start + limit).map(parsed);
  }

  async streamVersion(stream: string): Promise<number> {
    return this.streams.get(stream)?.version ?? 0;
  }

  async readAll(after: Checkpoint, limit: number): Promise<RawEvent[]> {
    // One writer, so transaction order is log order: position alone places a checkpoint.
    const start = lowerBound(this.log, after.position + 1, (e) => e.position);
    return this.log.slice(start, start + limit).map(parsed);
  }

  async saveSnapshot(stream: string, version: number, state: string): Promise<void> {
    const old = this.snapshots.get(stream);
    if (old !== undefined && old.version >= version) return;
    this.snapshots.set(stream, { version, state, createdAt: this.clock.wallNow() });
  }

  async loadSnapshot(stream: string) {
    const s = this.snapshots.get(stream);
    return s === undefined
      ? undefined
      : { version: s.version, state: JSON.parse(s.state), createdAt: s.createdAt };
  }

  async pruneToSnapshot(stream: string): Promise<number> {
    const snapshot = this.snapshots.get(stream);
    const s = this.streams.get(stream);
    if (snapshot === undefined || s === undefined) return 0;
    // As in SQL, the newest append stays whole.
    const newest = s.events[s.events.length - 1];
    const first =
      newest === undefined ? 0 : newest.version - indexInAppend(newest.messageId as string | null);
    const covered = (e: MemoryEvent) => e.version <= snapshot.version && e.version < first;
    const keep = s.events.filter((e) => !covered(e));
    // As in SQL, the message ids of pruned appends are forgotten.
    for (const e of s.events) {
      if (covered(e) && typeof e.messageId === 'string' && indexInAppend(e.messageId) === 0) {
        this.duplicates.delete(duplicateKey(stream, e.messageId));
      }
    }
    const pruned = s.events.length - keep.length;
    s.events = keep;
    this.log = this.log.filter((e) => e.stream !== stream || !covered(e));
    return pruned;
  }

  async loadCheckpoint(name: string): Promise<Checkpoint | undefined> {
    return this.checkpoints.get(name);
  }

  async saveCheckpoint(name: string, checkpoint: Checkpoint): Promise<void> {
    this.checkpoints.set(name, checkpoint);
  }

  onCommit(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}

function parsed(e: MemoryEvent): RawEvent {
  return { ...e, data: JSON.parse(e.data), metadata: JSON.parse(e.metadata) };
}

/** The first index whose key is at least `key`, in an array sorted by key. */
function lowerBound<T>(items: readonly T[], key: number, keyOf: (item: T) => number): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyOf(items[mid]!) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
