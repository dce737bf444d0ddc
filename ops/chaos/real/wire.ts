/**
 * What the runner and its node processes say to each other. Clients' calls go over NATS (the
 * node's gateway subject), so they cross the same network, and the same faults, as the cluster's
 * own traffic. Fault commands go down the node's stdin, which no network fault can cut; the node
 * says it is ready on its stdout.
 */

/** The environment variables a node process reads. */
export const NODE_ENV = {
  cluster: 'TROUPE_CHAOS_CLUSTER',
  node: 'TROUPE_CHAOS_NODE',
  nats: 'TROUPE_CHAOS_NATS_URL',
  journal: 'TROUPE_CHAOS_JOURNAL',
  workload: 'TROUPE_CHAOS_WORKLOAD',
  plan: 'TROUPE_CHAOS_PLAN',
  heartbeatMs: 'TROUPE_CHAOS_HEARTBEAT_MS',
  downAfterMissed: 'TROUPE_CHAOS_DOWN_AFTER_MISSED',
  logLevel: 'TROUPE_CHAOS_LOG_LEVEL',
} as const;

/** The line a node process writes on stdout once it has joined: `READY <pid>`. */
export const READY = 'TROUPE-CHAOS-READY';

/** The NATS subject of a node's gateway. */
export function gatewaySubject(cluster: string, node: string): string {
  return `troupe-chaos.${cluster}.${node}`;
}

/** A request to a node's gateway. */
export type GatewayRequest =
  | {
      readonly op: 'ask';
      readonly kind: string;
      readonly key: string;
      readonly type: string;
      readonly body: unknown;
      readonly timeoutMs: number;
    }
  | {
      readonly op: 'tell';
      readonly kind: string;
      readonly key: string;
      readonly type: string;
      readonly body: unknown;
    }
  | { readonly op: 'members' };

/** A gateway's answer. */
export type GatewayReply =
  | { readonly ok: true; readonly value?: unknown }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** A command down a node's stdin, one JSON object a line. */
export type ControlCommand =
  /** The next message to each local actor whose address matches crashes it. */
  | { readonly cmd: 'crash-actor'; readonly pattern: string }
  /** The process dies of an uncaught error: a crash, not a drain. */
  | { readonly cmd: 'crash' }
  /** The journal as this node sees it: refusing (`outage`) or slow. */
  | { readonly cmd: 'journal'; readonly outage: boolean; readonly latencyMs: number };

/** Metadata a node adds to every event it appends, for the checkers' log (`time`: epoch ms). */
export const META = { node: 'chaosNode', fence: 'chaosFence', time: 'chaosTime' } as const;
