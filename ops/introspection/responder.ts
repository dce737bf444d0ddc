/** The `troupe-ops` actor: what a node tells operators about itself. */
import type {} from '../../agents/index.js';
import { parseAddress, TroupeError } from '../../protocols/index.js';
import { type ActorSystem, behavior, type SystemEvent, type TreeNode } from '../../runtime/index.js';
import { localActor, stopActor } from '../../runtime/internal.js';
import type {} from '../../societies/index.js';
import type {} from '../../supervisors/index.js';
import { describeSystemEvent } from '../console.js';
import {
  type ActivationInfo,
  type BreakerInfo,
  type NodeInfo,
  OPS_ACTOR,
  type OpsEvent,
  OpsProtocol,
  type TreeRow,
} from './protocol.js';

/** Options of {@link startIntrospection}. */
export interface IntrospectionOptions {
  /** Recent events kept for `troupe events` and the dashboard. Defaults to 1000. */
  readonly eventsKept?: number;
  /** Model prices in US dollars per million tokens, to show agent runs' cost. None by default (cost 0). */
  readonly prices?: Readonly<
    Record<string, { readonly inputPerMillion: number; readonly outputPerMillion: number }>
  >;
}

/** The defaults of {@link IntrospectionOptions}. */
export const introspectionDefaults = { eventsKept: 1000 } as const;

/** A node's introspection: the ops actor and the event log it keeps. */
export interface Introspection {
  /** The events kept, oldest first, numbered after `after`. */
  events(after?: number): OpsEvent[];
  /** Calls `listener` with every event kept from now on; returns a function that stops it. */
  onEvent(listener: (event: OpsEvent) => void): () => void;
  info(): NodeInfo;
  /** Stops the ops actor and the event log. */
  stop(): Promise<void>;
}

/** Events that would flood the log: every actor's start. */
const SKIPPED = new Set(['actor-spawned', 'actor-started']);

interface Run {
  agent: string;
  run: string;
  steps: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  startedAt: number;
}

/**
 * Spawns the ops actor (`troupe-ops`) on `system`, which answers the ops protocol: its info (members
 * view, counters, what is in flight), its tree in pages, its named activations, its breakers, its
 * recent events, and stop requests. `troupe node` starts it on every node; any node of a cluster can.
 *
 * @example
 * ```ts
 * const introspection = startIntrospection(system, { eventsKept: 500 });
 * ```
 */
export function startIntrospection(system: ActorSystem, options: IntrospectionOptions = {}): Introspection {
  const kept = options.eventsKept ?? introspectionDefaults.eventsKept;
  const prices = options.prices ?? {};
  const ring: OpsEvent[] = [];
  let seq = 0;
  const counters: Record<string, number> = {
    crashes: 0,
    restarts: 0,
    deadLetters: 0,
    escalations: 0,
    agentRuns: 0,
    agentRunsFailed: 0,
    inputTokens: 0,
    outputTokens: 0,
    costUsd: 0,
    workflowsEnded: 0,
    chatsEnded: 0,
  };
  const breakers = new Map<string, BreakerInfo>();
  const runs = new Map<string, Run>();
  const workflows = new Map<
    string,
    { workflow: string; definition: string; steps: number; startedAt: number }
  >();
  const chats = new Map<string, { chat: string; turns: number; startedAt: number }>();
  const listeners = new Set<(event: OpsEvent) => void>();
  const startedAt = system.clock.wallNow();

  const record = (event: SystemEvent) => {
    count(event);
    if (SKIPPED.has(event.type) || kept === 0) return;
    const words = describeSystemEvent(event);
    const entry: OpsEvent = {
      seq: ++seq,
      node: system.node,
      at: system.clock.wallNow(),
      type: event.type,
      kind: words.kind,
      subject: words.subject,
      detail: words.detail,
      data: plainFields(event),
    };
    ring.push(entry);
    if (ring.length > kept) ring.shift();
    for (const listener of listeners) listener(entry);
  };

  const count = (event: SystemEvent) => {
    const now = system.clock.wallNow();
    switch (event.type) {
      case 'actor-crashed':
        counters.crashes! += 1;
        return;
      case 'actor-restarted':
        counters.restarts! += 1;
        return;
      case 'dead-letter':
        counters.deadLetters! += 1;
        return;
      case 'supervisor-escalated':
        counters.escalations! += 1;
        return;
      case 'breaker-transition': {
        const before = breakers.get(event.breaker);
        breakers.set(event.breaker, {
          name: event.breaker,
          state: event.to,
          since: now,
          transitions: (before?.transitions ?? 0) + 1,
        });
        return;
      }
      case 'agent-run': {
        const key = `${event.agent}#${event.run}`;
        if (event.phase === 'started') {
          counters.agentRuns! += 1;
          runs.set(key, {
            agent: event.agent,
            run: event.run,
            steps: 0,
            inputTokens: 0,
            outputTokens: 0,
            costUsd: 0,
            startedAt: now,
          });
        } else {
          if (event.phase === 'failed') counters.agentRunsFailed! += 1;
          runs.delete(key);
        }
        return;
      }
      case 'agent-step': {
        const run = runs.get(`${event.agent}#${event.run}`);
        if (event.kind !== 'model' || event.usage === undefined) return;
        const price = prices[event.name] ?? prices[event.name.slice(event.name.indexOf(':') + 1)];
        const cost =
          price === undefined
            ? 0
            : (event.usage.inputTokens * price.inputPerMillion +
                event.usage.outputTokens * price.outputPerMillion) /
              1e6;
        counters.inputTokens! += event.usage.inputTokens;
        counters.outputTokens! += event.usage.outputTokens;
        counters.costUsd! += cost;
        if (run !== undefined) {
          run.steps = Math.max(run.steps, event.step);
          run.inputTokens += event.usage.inputTokens;
          run.outputTokens += event.usage.outputTokens;
          run.costUsd += cost;
        }
        return;
      }
      case 'workflow-step': {
        const flow = workflows.get(event.workflow) ?? {
          workflow: event.workflow,
          definition: event.definition,
          steps: 0,
          startedAt: now,
        };
        flow.steps += 1;
        workflows.set(event.workflow, flow);
        return;
      }
      case 'workflow-ended':
        counters.workflowsEnded! += 1;
        workflows.delete(event.workflow);
        return;
      case 'group-chat-turn': {
        const chat = chats.get(event.chat) ?? { chat: event.chat, turns: 0, startedAt: now };
        chat.turns = Math.max(chat.turns, event.turn);
        chats.set(event.chat, chat);
        return;
      }
      case 'group-chat-ended':
        counters.chatsEnded! += 1;
        chats.delete(event.chat);
        return;
      default:
        return;
    }
  };

  const subscription = system.events$.subscribe(record);

  // One snapshot of the tree serves every page of one listing (offset 0 takes a new one).
  let snapshot: TreeRow[] = [];
  const info = (): NodeInfo => {
    let actors = 0;
    let mailboxes = 0;
    const walk = (node: TreeNode) => {
      actors += 1;
      mailboxes += node.mailboxSize;
      for (const child of node.children) walk(child);
    };
    walk(system.tree());
    return {
      cluster: system.name,
      node: system.node,
      status: system.status.tag,
      startedAt,
      actors: actors - 1,
      mailboxes,
      members: system.members().map((m) => ({ node: m.node, state: m.state })),
      counters: { ...counters },
      lastEvent: seq,
      activity: {
        agentRuns: [...runs.values()].map((r) => ({ ...r })),
        workflows: [...workflows.values()].map((w) => ({ ...w })),
        chats: [...chats.values()].map((c) => ({ ...c })),
      },
    };
  };

  const ops = behavior({
    protocols: [OpsProtocol],
    handlers: {
      info: () => info(),
      tree: ({ offset, limit }) => {
        if (offset === 0) snapshot = flatten(system.tree());
        return { rows: snapshot.slice(offset, offset + limit), total: snapshot.length };
      },
      activations: () => activations(system.tree()),
      breakers: () => [...breakers.values()].sort((a, b) => a.name.localeCompare(b.name)),
      events: ({ after, limit }) => {
        const events = ring.filter((e) => e.seq > after).slice(0, limit);
        return { events, next: events.at(-1)?.seq ?? Math.max(after, ring.length === 0 ? seq : after) };
      },
      stop: async ({ address }) => {
        let path: string;
        try {
          const parts = parseAddress(address);
          path = parts.path;
          if (parts.system !== system.name || (parts.node !== system.node && !parts.node.startsWith('@'))) {
            return { stopped: false, detail: `${address} is not an actor of node ${system.node}` };
          }
        } catch (error) {
          return { stopped: false, detail: (error as Error).message };
        }
        if (path === OPS_ACTOR) return { stopped: false, detail: 'the ops actor is not stopped this way' };
        // Any live actor of this node, at any depth: stopped as its parent would, with no restart.
        const actor = localActor(system, address);
        if (actor === undefined) {
          return { stopped: false, detail: `no live actor ${address} on node ${system.node}` };
        }
        try {
          await stopActor(actor);
          return { stopped: true, detail: `stopped ${address} on node ${system.node}` };
        } catch (error) {
          return {
            stopped: false,
            detail: TroupeError.is(error) ? `${error.code}: ${error.message}` : String(error),
          };
        }
      },
    },
  });
  const ref = system.spawn(ops, { name: OPS_ACTOR, restart: 'permanent' });
  return {
    events: (after = 0) => ring.filter((e) => e.seq > after),
    onEvent(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    info,
    async stop() {
      subscription.unsubscribe();
      listeners.clear();
      if (system.status.tag === 'running') await system.stop(ref).catch(() => {});
    },
  };
}

function flatten(root: TreeNode): TreeRow[] {
  const rows: TreeRow[] = [];
  const walk = (node: TreeNode, depth: number) => {
    rows.push([
      depth,
      node.name,
      node.address,
      node.kind,
      node.status,
      node.restarts,
      node.mailboxSize,
      node.strategy,
    ]);
    for (const child of node.children) walk(child, depth + 1);
  };
  walk(root, 0);
  return rows;
}

function activations(root: TreeNode): ActivationInfo[] {
  const out: ActivationInfo[] = [];
  const walk = (node: TreeNode) => {
    const at = node.address.indexOf('/@');
    if (at >= 0) {
      const [kind = '', ...key] = node.address.slice(at + 2).split('/');
      out.push({
        address: node.address,
        kind,
        key: key.join('/'),
        status: node.status,
        restarts: node.restarts,
        mailboxSize: node.mailboxSize,
      });
      return;
    }
    for (const child of node.children) walk(child);
  };
  walk(root);
  return out.sort((a, b) => (a.address < b.address ? -1 : 1));
}

/** An event's fields as plain data: errors as `{ name, message, code }`, message bodies left out. */
function plainFields(event: SystemEvent): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    if (key === 'type' || key === 'at' || key === 'body') continue;
    if (value instanceof Error) {
      out[key] = {
        name: value.name,
        message: value.message,
        ...(TroupeError.is(value) ? { code: value.code } : {}),
      };
    } else if (key === 'message' && typeof value === 'object' && value !== null) {
      out[key] = { type: (value as { type?: unknown }).type };
    } else if (value === undefined || value === null || typeof value !== 'object' || isPlain(value)) {
      out[key] = value;
    }
  }
  return out;
}

function isPlain(value: object): boolean {
  try {
    JSON.stringify(value);
    return true;
  } catch {
    return false;
  }
}
