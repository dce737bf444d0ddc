/**
 * What the runner and its node processes say to each other. Clients' calls go over NATS (the
 * node's gateway subject), so they cross the same network, and the same faults, as the cluster's
 * own traffic. Fault commands go down the node's stdin, which no network fault can cut; the node
 * says it is ready on its stdout, and what its workload adds to the checkers' log.
 */
import type { Fault } from '../plan/index.js';

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
  /** An ask to the actor at `address` (a node's own actors, spawned rather than named), and a tell. */
  | {
      readonly op: 'ask-at';
      readonly address: string;
      readonly type: string;
      readonly body: unknown;
      readonly timeoutMs: number;
    }
  | { readonly op: 'tell-at'; readonly address: string; readonly type: string; readonly body: unknown }
  | { readonly op: 'members' }
  /** The node's wall clock (its skew included), epoch ms. */
  | { readonly op: 'clock' };

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
  | { readonly cmd: 'journal'; readonly outage: boolean; readonly latencyMs: number }
  /** The node's wall clock runs `skewMs` off the host's (either sign; 0 puts it right). */
  | { readonly cmd: 'clock'; readonly skewMs: number }
  /** The model fault in force for the workload's scripted model (`null`: none). */
  | { readonly cmd: 'model'; readonly fault: ModelFault | null }
  /**
   * The run's start (epoch ms, the host's clock): the time of the entries a node adds to the
   * checkers' log is counted from it, as the runner counts its history's.
   */
  | { readonly cmd: 'epoch'; readonly wallMs: number };

/** A `model` fault of a plan. */
export type ModelFault = Extract<Fault, { kind: 'model' }>;

/**
 * The line a node process writes on stdout for each entry its workload adds to the checkers' log:
 * `LOG <json>`. Stdout is a pipe no network fault can cut, and a node killed with -9 has written
 * its lines already (writes to a pipe are synchronous on Linux).
 */
export const LOG = 'TROUPE-CHAOS-LOG';

/** Metadata a node adds to every event it appends, for the checkers' log (`time`: epoch ms). */
export const META = { node: 'chaosNode', fence: 'chaosFence', time: 'chaosTime' } as const;
