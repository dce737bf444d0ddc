/**
 * Looking into a live cluster from outside: the nodes come from the membership bucket (every node,
 * whatever it hosts), and each answers the ops protocol through a client node that does not join.
 */
import { randomUUID } from 'node:crypto';
import type { Address } from '../../protocols/index.js';
import {
  type ActorRef,
  type ActorSystem,
  type ClusterMembership,
  clusterMembership,
  createNode,
  type MembershipEntry,
  natsTransport,
  type TreeNode,
} from '../../runtime/index.js';
import {
  type ActivationInfo,
  type BreakerInfo,
  type NodeInfo,
  OPS_ACTOR,
  type OpsEvent,
  OpsProtocol,
  type TreeRow,
} from './protocol.js';

/** Options of {@link connectCluster}. */
export interface ClusterClientOptions {
  /** NATS server URLs. */
  readonly servers: string | readonly string[];
  readonly cluster: string;
  /** The subject prefix of the cluster's nodes. Defaults to `troupe.<cluster>`. */
  readonly prefix?: string;
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /** How long a node has to answer before it is listed as not answering. Defaults to 2000 ms. */
  readonly timeoutMs?: number;
}

/** The defaults of {@link ClusterClientOptions}. */
export const clusterClientDefaults = { timeoutMs: 2000 } as const;

/** A node's answer, or why there was none. */
export type NodeAnswer<T> =
  | { readonly node: string; readonly ok: true; readonly value: T }
  | { readonly node: string; readonly ok: false; readonly error: string };

/** A tree page's progress: rows received of the total, per node. */
export type TreeProgress = (node: string, received: number, total: number) => void;

/** A connection to a cluster for operators. */
export interface ClusterClient {
  readonly cluster: string;
  readonly timeoutMs: number;
  /** The nodes in the membership bucket now (a killed node stays until its heartbeat expires). */
  members(): Promise<MembershipEntry[]>;
  info(node: string): Promise<NodeAnswer<NodeInfo>>;
  /** A node's whole tree, asked for in pages (`onProgress` after each). */
  tree(node: string, onProgress?: TreeProgress): Promise<NodeAnswer<TreeNode>>;
  activations(node: string): Promise<NodeAnswer<ActivationInfo[]>>;
  breakers(node: string): Promise<NodeAnswer<BreakerInfo[]>>;
  /** A node's events numbered after `after`. */
  events(
    node: string,
    after: number,
    limit?: number,
  ): Promise<NodeAnswer<{ events: OpsEvent[]; next: number }>>;
  /** Stops the actor at `address` on its node (a named actor: on whichever node hosts it). */
  stop(address: Address): Promise<NodeAnswer<{ stopped: boolean; detail: string }>[]>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const TREE_PAGE = 5000;

/**
 * Connects to a cluster's NATS as an observer (a client node that does not join the membership).
 * @throws TroupeError `ERR_TRANSPORT` when NATS cannot be reached.
 * @example
 * ```ts
 * await using cluster = await connectCluster({ servers: 'nats://127.0.0.1:4222', cluster: 'shop' });
 * for (const member of await cluster.members()) console.log(member.node, await cluster.info(member.node));
 * ```
 */
export async function connectCluster(options: ClusterClientOptions): Promise<ClusterClient> {
  const credentials = {
    ...(options.user === undefined ? {} : { user: options.user }),
    ...(options.pass === undefined ? {} : { pass: options.pass }),
    ...(options.token === undefined ? {} : { token: options.token }),
  };
  const membership = await clusterMembership({
    servers: options.servers,
    cluster: options.cluster,
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    ...credentials,
  });
  let system: ActorSystem;
  try {
    const transport = await natsTransport({
      servers: options.servers,
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
      ...credentials,
      connection: { name: `troupe ops client of ${options.cluster}` },
    });
    // The id only has to be unique among the cluster's nodes and observers: its reply subject.
    const id = `ops-${randomUUID().slice(0, 8)}`;
    system = await createNode({
      name: options.cluster,
      node: id,
      transport,
      devChecks: false,
      deadLetterLog: () => {},
    });
  } catch (error) {
    await membership.close();
    throw error;
  }
  return new Client(
    options.cluster,
    options.timeoutMs ?? clusterClientDefaults.timeoutMs,
    membership,
    system,
  );
}

class Client implements ClusterClient {
  constructor(
    readonly cluster: string,
    readonly timeoutMs: number,
    private readonly membership: ClusterMembership,
    private readonly system: ActorSystem,
  ) {}

  members(): Promise<MembershipEntry[]> {
    return this.membership.members();
  }

  private ops(node: string): ActorRef<typeof OpsProtocol> {
    return this.system.ref(`troupe://${this.cluster}/${node}/${OPS_ACTOR}`, OpsProtocol);
  }

  private async answer<T>(node: string, work: () => Promise<T>): Promise<NodeAnswer<T>> {
    try {
      return { node, ok: true, value: await work() };
    } catch (error) {
      const e = error as { code?: string; message?: string };
      return {
        node,
        ok: false,
        error:
          e.code === 'ERR_ASK_TIMEOUT'
            ? `no answer within ${this.timeoutMs} ms`
            : `${e.code === undefined ? '' : `${e.code}: `}${e.message ?? String(error)}`,
      };
    }
  }

  info(node: string): Promise<NodeAnswer<NodeInfo>> {
    return this.answer(node, () => this.ops(node).ask('info', {}, { timeoutMs: this.timeoutMs }));
  }

  tree(node: string, onProgress?: TreeProgress): Promise<NodeAnswer<TreeNode>> {
    return this.answer(node, async () => {
      const rows: TreeRow[] = [];
      let total = 1;
      while (rows.length < total) {
        const page = await this.ops(node).ask(
          'tree',
          { offset: rows.length, limit: TREE_PAGE },
          { timeoutMs: this.timeoutMs },
        );
        total = page.total;
        if (page.rows.length === 0) break;
        rows.push(...page.rows);
        onProgress?.(node, rows.length, total);
      }
      return treeOf(rows);
    });
  }

  activations(node: string): Promise<NodeAnswer<ActivationInfo[]>> {
    return this.answer(node, () => this.ops(node).ask('activations', {}, { timeoutMs: this.timeoutMs }));
  }

  breakers(node: string): Promise<NodeAnswer<BreakerInfo[]>> {
    return this.answer(node, () => this.ops(node).ask('breakers', {}, { timeoutMs: this.timeoutMs }));
  }

  events(
    node: string,
    after: number,
    limit = 1000,
  ): Promise<NodeAnswer<{ events: OpsEvent[]; next: number }>> {
    return this.answer(node, () =>
      this.ops(node).ask('events', { after, limit }, { timeoutMs: this.timeoutMs }),
    );
  }

  async stop(address: Address): Promise<NodeAnswer<{ stopped: boolean; detail: string }>[]> {
    const match = /^troupe:\/\/[^/]+\/([^/]+)\//.exec(address);
    const target = match?.[1];
    const nodes =
      target === undefined || target.startsWith('@') ? (await this.members()).map((m) => m.node) : [target];
    return Promise.all(
      nodes.map((node) =>
        this.answer(node, () => this.ops(node).ask('stop', { address }, { timeoutMs: this.timeoutMs })),
      ),
    );
  }

  async close(): Promise<void> {
    await this.system.close();
    await this.membership.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The tree the rows of a listing describe (depth-first, the root first). */
export function treeOf(rows: readonly TreeRow[]): TreeNode {
  type Mutable = { -readonly [K in keyof TreeNode]: TreeNode[K] } & { children: Mutable[] };
  const stack: Mutable[] = [];
  let root: Mutable | undefined;
  for (const [depth, name, address, kind, status, restarts, mailboxSize, strategy] of rows) {
    const node: Mutable = {
      name,
      address,
      kind,
      status: status as TreeNode['status'],
      restarts,
      mailboxSize,
      strategy: strategy as TreeNode['strategy'],
      children: [],
    };
    stack.length = depth;
    if (depth === 0) root = node;
    else stack[depth - 1]?.children.push(node);
    stack[depth] = node;
  }
  if (root === undefined) throw new Error('an empty tree listing');
  return root;
}
