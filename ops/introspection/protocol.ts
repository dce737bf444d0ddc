/**
 * The ops protocol every node answers on its `troupe-ops` actor (`troupe://<cluster>/<node>/troupe-ops`),
 * over the cluster's own subjects and connection, so it is authenticated like the rest of the
 * cluster's traffic. Replies are plain data; a large tree comes in pages.
 */
import { z } from 'zod';
import { ask, defineProtocol } from '../../protocols/index.js';

/** The name of the ops actor on every node. */
export const OPS_ACTOR = 'troupe-ops';

/**
 * One actor of a tree page: `[depth, name, address, kind, status, restarts, mailboxSize, strategy]`,
 * depth-first in start order (the root, the guardian, at depth 0).
 */
export type TreeRow = [
  depth: number,
  name: string,
  address: string,
  kind: 'worker' | 'supervisor' | 'guardian',
  status: string,
  restarts: number,
  mailboxSize: number,
  strategy: string,
];

/** An event as a node keeps it for operators: plain data, numbered. */
export interface OpsEvent {
  /** Its number on its node: increasing, never reused while the node runs. */
  readonly seq: number;
  readonly node: string;
  /** Wall-clock time (epoch ms) when the node saw it. */
  readonly at: number;
  readonly type: string;
  /** A short kind for people (`crashed`, `restarted`, `dead-letter`). */
  readonly kind: string;
  readonly subject: string;
  readonly detail: string;
  /** The event's fields as plain data (errors as `{ name, message, code }`; message bodies left out). */
  readonly data: Readonly<Record<string, unknown>>;
}

/** What a node says of itself. */
export interface NodeInfo {
  readonly cluster: string;
  readonly node: string;
  readonly status: string;
  /** Wall-clock time (epoch ms) the ops actor started. */
  readonly startedAt: number;
  readonly actors: number;
  /** Messages waiting in every mailbox of the node. */
  readonly mailboxes: number;
  /** The node's own view of the cluster's members. */
  readonly members: readonly { readonly node: string; readonly state: string }[];
  /** Counters since the node started: crashes, restarts, dead letters, agent tokens and cost... */
  readonly counters: Readonly<Record<string, number>>;
  /** The newest event's number (0 before any). */
  readonly lastEvent: number;
  /** What is in flight on the node: agent runs (with tokens and cost), workflows, group chats. */
  readonly activity: NodeActivity;
}

/** What is in flight on a node, from its events. */
export interface NodeActivity {
  readonly agentRuns: readonly {
    readonly agent: string;
    readonly run: string;
    readonly steps: number;
    readonly inputTokens: number;
    readonly outputTokens: number;
    readonly costUsd: number;
    readonly startedAt: number;
  }[];
  readonly workflows: readonly {
    readonly workflow: string;
    readonly definition: string;
    readonly steps: number;
    readonly startedAt: number;
  }[];
  readonly chats: readonly { readonly chat: string; readonly turns: number; readonly startedAt: number }[];
}

/** A named actor's activation on a node. */
export interface ActivationInfo {
  readonly address: string;
  readonly kind: string;
  readonly key: string;
  readonly status: string;
  readonly restarts: number;
  readonly mailboxSize: number;
}

/** A circuit breaker's state as the node last saw it change. */
export interface BreakerInfo {
  readonly name: string;
  readonly state: string;
  /** Wall-clock time (epoch ms) of its last transition. */
  readonly since: number;
  readonly transitions: number;
}

const plain = z.custom<any>(() => true);

/** The protocol of the `troupe-ops` actor. */
export const OpsProtocol = defineProtocol('troupe.ops', {
  info: ask(z.object({}), plain as z.ZodType<NodeInfo>),
  /** A page of the tree: rows `offset` to `offset + limit`, and how many rows there are. */
  tree: ask(
    z.object({ offset: z.number().int().min(0), limit: z.number().int().min(1).max(20_000) }),
    z.object({ rows: z.array(plain as z.ZodType<TreeRow>), total: z.number() }),
  ),
  activations: ask(z.object({}), z.array(plain as z.ZodType<ActivationInfo>)),
  breakers: ask(z.object({}), z.array(plain as z.ZodType<BreakerInfo>)),
  /** Events numbered after `after`, oldest first, at most `limit`; `next` is the number to ask after. */
  events: ask(
    z.object({ after: z.number().int().min(0), limit: z.number().int().min(1).max(10_000) }),
    z.object({ events: z.array(plain as z.ZodType<OpsEvent>), next: z.number() }),
  ),
  /** Stops an actor of this node (a top-level actor). */
  stop: ask(z.object({ address: z.string() }), z.object({ stopped: z.boolean(), detail: z.string() })),
});
