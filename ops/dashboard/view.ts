/**
 * The dashboard's picture of a cluster: polled from every node's ops actor while someone watches,
 * pushed to the watchers as snapshots and events.
 */
import { realClock, type TimerHandle, type TreeNode } from '../../runtime/index.js';
import type { ClusterClient } from '../introspection/client.js';
import type { BreakerInfo, NodeInfo, OpsEvent } from '../introspection/protocol.js';

/** One member as the dashboard shows it. */
export interface DashboardMember {
  readonly node: string;
  readonly state: string;
  readonly heartbeatAgeMs: number;
  readonly answered: boolean;
  readonly error?: string;
  readonly info?: NodeInfo;
  readonly tree?: TreeNode;
  /** Why the tree is not shown (too many actors to draw). */
  readonly treeNote?: string;
  readonly breakers?: readonly BreakerInfo[];
}

/** What the page gets every poll. */
export interface DashboardSnapshot {
  readonly cluster: string;
  readonly at: number;
  readonly members: readonly DashboardMember[];
}

/** Options of {@link ClusterView}. */
export interface ClusterViewOptions {
  /** Time between polls. Defaults to 1000 ms. */
  readonly intervalMs?: number;
  /** Nodes with more actors than this show counts, not their tree. Defaults to 2000. */
  readonly maxTreeActors?: number;
}

type Listener = { snapshot(s: DashboardSnapshot): void; event(e: OpsEvent): void };

/**
 * Polls the cluster while it has listeners, and stops when the last one leaves, so a dashboard no
 * one watches costs the nodes nothing. Its timer runs on the real clock: it paces requests to
 * servers, whatever clock the nodes use.
 */
export class ClusterView {
  private readonly listeners = new Set<Listener>();
  private timer: TimerHandle | undefined;
  private polling = false;
  private readonly cursors = new Map<string, number>();
  private readonly recent: OpsEvent[] = [];
  private last: DashboardSnapshot | undefined;
  private readonly intervalMs: number;
  private readonly maxTreeActors: number;

  constructor(
    private readonly client: ClusterClient,
    options: ClusterViewOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.maxTreeActors = options.maxTreeActors ?? 2000;
  }

  /** Adds a listener: it gets the last snapshot and recent events at once, then every change. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.last !== undefined) listener.snapshot(this.last);
    for (const event of this.recent) listener.event(event);
    if (this.timer === undefined && !this.polling) void this.poll();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) {
        this.timer?.cancel();
        this.timer = undefined;
      }
    };
  }

  /** One poll now, its snapshot returned (for `/dashboard/state.json`). */
  async snapshot(): Promise<DashboardSnapshot> {
    return this.last ?? (await this.take());
  }

  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.listeners.clear();
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      const snapshot = await this.take();
      for (const listener of this.listeners) listener.snapshot(snapshot);
    } catch {
      // NATS away for a moment: the next poll tries again.
    } finally {
      this.polling = false;
    }
    if (this.listeners.size > 0) this.timer = realClock.setTimeout(() => void this.poll(), this.intervalMs);
    else this.timer = undefined;
  }

  private async take(): Promise<DashboardSnapshot> {
    const now = realClock.wallNow();
    const entries = await this.client.members();
    const members = await Promise.all(
      entries.map(async (entry): Promise<DashboardMember> => {
        const base = { node: entry.node, state: entry.state, heartbeatAgeMs: now - entry.heartbeatAt };
        const info = await this.client.info(entry.node);
        if (!info.ok) return { ...base, answered: false, error: info.error };
        const [breakers, events, tree] = await Promise.all([
          this.client.breakers(entry.node),
          this.client.events(entry.node, this.cursors.get(entry.node) ?? 0),
          info.value.actors <= this.maxTreeActors ? this.client.tree(entry.node) : undefined,
        ]);
        if (events.ok) {
          this.cursors.set(entry.node, events.value.next);
          for (const event of events.value.events) this.push(event);
        }
        return {
          ...base,
          answered: true,
          info: info.value,
          ...(breakers.ok ? { breakers: breakers.value } : {}),
          ...(tree?.ok === true
            ? { tree: tree.value }
            : { treeNote: tree === undefined ? `${info.value.actors} actors: too many to draw` : 'no tree' }),
        };
      }),
    );
    this.last = { cluster: this.client.cluster, at: now, members };
    return this.last;
  }

  private push(event: OpsEvent): void {
    this.recent.push(event);
    if (this.recent.length > 200) this.recent.shift();
    for (const listener of this.listeners) listener.event(event);
  }
}
