/**
 * Fault plans: data (TypeScript or JSON), checked with zod, made concrete from a seed. A plan names
 * the nodes, the run's length, the workload and a schedule of faults, fixed or drawn at random.
 */
import { z } from 'zod';
import { invalidOption } from '../../../protocols/index.js';
import { type Random, seededRandom } from '../../../runtime/index.js';

const ms = z.number().int().nonnegative();
const node = z.string().min(1);
const window = { at: ms, durationMs: ms.optional() };

/** The schema of one fault. */
export const FaultSchema = z.discriminatedUnion('kind', [
  /** Crashes the actors whose address matches `pattern` (a `*` matches any run of characters). */
  z.object({ kind: z.literal('crash-actor'), at: ms, pattern: z.string().min(1), node: node.optional() }),
  /** A node dies (`crash`: its process ends; `kill`: kill -9) and, after `durationMs`, starts again. */
  z.object({
    kind: z.literal('crash-node'),
    ...window,
    node,
    signal: z.enum(['crash', 'kill']).default('kill'),
  }),
  /** A node stops for `durationMs` (SIGSTOP/SIGCONT, like a long GC pause): no timers, no messages. */
  z.object({ kind: z.literal('pause-node'), at: ms, durationMs: ms, node }),
  /** The sides cannot talk (`oneWay`: only the first side's messages to the others are lost). */
  z.object({
    kind: z.literal('partition'),
    at: ms,
    durationMs: ms,
    sides: z.array(z.array(node).min(1)).min(2),
    oneWay: z.boolean().default(false),
  }),
  /** Messages from `from` to `to` (default: every node) are delayed, dropped, duplicated or reordered. */
  z.object({
    kind: z.literal('network'),
    at: ms,
    durationMs: ms,
    from: z.array(node).optional(),
    to: z.array(node).optional(),
    delayMs: ms.default(0),
    jitterMs: ms.default(0),
    drop: z.number().min(0).max(1).default(0),
    duplicate: z.number().min(0).max(1).default(0),
    reorder: z.number().min(0).max(1).default(0),
  }),
  /** The NATS server goes down for `durationMs`. */
  z.object({ kind: z.literal('nats-restart'), at: ms, durationMs: ms }),
  /** Postgres goes down for `durationMs`. */
  z.object({ kind: z.literal('postgres-restart'), at: ms, durationMs: ms }),
  /** The journal answers after `latencyMs` (`slow`) or not at all (`outage`). */
  z.object({
    kind: z.literal('journal'),
    at: ms,
    durationMs: ms,
    mode: z.enum(['slow', 'outage']),
    latencyMs: ms.default(200),
  }),
  /** The model provider fails: 429 with Retry-After, 500, a hang, a malformed body, a slow stream. */
  z.object({
    kind: z.literal('model'),
    at: ms,
    durationMs: ms,
    mode: z.enum(['429', '500', 'hang', 'malformed', 'slow-stream']),
    retryAfterMs: ms.default(1000),
    probability: z.number().min(0).max(1).default(1),
  }),
  /** A node's wall clock is off by `skewMs` (either sign) for `durationMs`. */
  z.object({ kind: z.literal('clock-skew'), at: ms, durationMs: ms, node, skewMs: z.number().int() }),
]);

/** One fault of a plan, as written (defaults not yet applied). */
export type FaultInput = z.input<typeof FaultSchema>;
/** One fault, with its defaults. */
export type Fault = z.output<typeof FaultSchema>;
/** The kinds of fault. */
export type FaultKind = Fault['kind'];

/** The schema of random faults: how many, of which kinds, how long. */
export const RandomFaultsSchema = z.object({
  count: z.number().int().min(0),
  kinds: z
    .array(
      z.enum([
        'crash-node',
        'pause-node',
        'partition',
        'network',
        'journal',
        'clock-skew',
        'crash-actor',
        'model',
      ]),
    )
    .min(1),
  /** Longest fault. Defaults to a fifth of the run. */
  maxDurationMs: ms.optional(),
  /** Faults start after this (let the cluster form). Defaults to 1000. */
  startAfterMs: ms.default(1000),
  /** Address pattern for `crash-actor`. Defaults to `*`. */
  actorPattern: z.string().default('*'),
});

/** The schema of a plan. */
export const PlanSchema = z.object({
  name: z.string().min(1),
  /** Drives the workload, the delivery order, virtual time and the random faults. */
  seed: z.number().int(),
  /** Length of the run (simulated ms in a simulation). */
  durationMs: ms.min(1),
  /** Time after the last fault ends in which the system must recover (liveness). Defaults to 5000. */
  healMs: ms.default(5000),
  nodes: z.array(node).min(1),
  /** The workload by name with its options (workloads are code; see the simulation). */
  workload: z.object({ name: z.string().min(1) }).catchall(z.unknown()),
  faults: z.union([z.array(FaultSchema), RandomFaultsSchema]).default([]),
});

/** A plan as written. */
export type PlanInput = z.input<typeof PlanSchema>;
/** A checked plan, defaults applied. */
export type Plan = z.output<typeof PlanSchema>;

/**
 * Checks a plan (an object, or JSON text) and applies its defaults.
 * @throws TroupeError `ERR_INVALID_OPTION` naming the first field that is wrong, for every problem.
 * @example
 * ```ts
 * const plan = parsePlan({ name: 'bank', seed: 7, durationMs: 30_000, nodes: ['a', 'b', 'c'],
 *   workload: { name: 'bank' }, faults: [{ kind: 'partition', at: 5000, durationMs: 3000, sides: [['a'], ['b', 'c']] }] });
 * ```
 */
export function parsePlan(input: unknown): Plan {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (error) {
      throw invalidOption('plan', `not JSON: ${(error as Error).message}`);
    }
  }
  const faults = (value as { faults?: unknown } | null)?.faults;
  // A list of faults is checked on its own, so a problem names the fault, not the union.
  if (Array.isArray(faults)) {
    const checked = z.array(FaultSchema).safeParse(faults);
    if (!checked.success) throw fromIssues(checked.error.issues, ['faults'], value);
  }
  const result = PlanSchema.safeParse(value);
  if (!result.success) throw fromIssues(result.error.issues, [], value);
  const plan = result.data;
  const known = new Set(plan.nodes);
  if (known.size !== plan.nodes.length) throw invalidOption('plan.nodes', 'names a node twice', plan.nodes);
  if (Array.isArray(plan.faults)) {
    plan.faults.forEach((fault, i) => {
      for (const n of faultNodes(fault))
        if (!known.has(n))
          throw invalidOption(`plan.faults.${i}`, `names node "${n}" not in plan.nodes`, fault);
    });
  }
  return plan;
}

function fromIssues(issues: readonly z.core.$ZodIssue[], prefix: readonly string[], value: unknown) {
  const issue = issues[0]!;
  const path = ['plan', ...prefix, ...issue.path.map(String)].join('.');
  return invalidOption(path, `${issue.message} (${issues.length} problem(s) in all)`, value);
}

function faultNodes(fault: Fault): string[] {
  switch (fault.kind) {
    case 'crash-node':
    case 'pause-node':
    case 'clock-skew':
      return [fault.node];
    case 'crash-actor':
      return fault.node === undefined ? [] : [fault.node];
    case 'partition':
      return fault.sides.flat();
    case 'network':
      return [...(fault.from ?? []), ...(fault.to ?? [])];
    default:
      return [];
  }
}

/** When a fault ends (its start for an instant one). */
export function faultEnd(fault: Fault): number {
  return fault.at + ('durationMs' in fault ? (fault.durationMs ?? 0) : 0);
}

/**
 * The plan's concrete schedule: its fixed faults, or faults drawn from its seed, sorted by start.
 * The same plan always gives the same schedule.
 */
export function schedule(plan: Plan): Fault[] {
  if (Array.isArray(plan.faults)) return [...plan.faults].sort((a, b) => a.at - b.at);
  return drawFaults(plan, plan.faults, seededRandom(plan.seed ^ 0x5eed));
}

type RandomFaults = z.output<typeof RandomFaultsSchema>;

function drawFaults(plan: Plan, spec: RandomFaults, random: Random): Fault[] {
  const out: Fault[] = [];
  const end = Math.max(spec.startAfterMs + 1, plan.durationMs - plan.healMs);
  const maxDuration = spec.maxDurationMs ?? Math.max(1, Math.floor(plan.durationMs / 5));
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  for (let i = 0; i < spec.count; i++) {
    const kind = pick(spec.kinds);
    const at = int(spec.startAfterMs, end - 1);
    const durationMs = Math.min(int(Math.ceil(maxDuration / 10), maxDuration), Math.max(1, end - at));
    const n = pick(plan.nodes);
    const fault: FaultInput = (() => {
      switch (kind) {
        case 'crash-node':
          return { kind, at, durationMs, node: n, signal: 'kill' as const };
        case 'pause-node':
          return { kind, at, durationMs, node: n };
        case 'partition': {
          const shuffled = [...plan.nodes].sort(() => random() - 0.5);
          const cut = int(1, Math.max(1, shuffled.length - 1));
          return {
            kind,
            at,
            durationMs,
            sides: [shuffled.slice(0, cut), shuffled.slice(cut)],
            oneWay: random() < 0.25,
          };
        }
        case 'network':
          return {
            kind,
            at,
            durationMs,
            delayMs: int(0, 50),
            jitterMs: int(0, 50),
            drop: Math.round(random() * 30) / 100,
            duplicate: Math.round(random() * 20) / 100,
            reorder: Math.round(random() * 30) / 100,
          };
        case 'journal':
          return { kind, at, durationMs, mode: random() < 0.5 ? ('slow' as const) : ('outage' as const) };
        case 'clock-skew':
          return { kind, at, durationMs, node: n, skewMs: int(-2000, 2000) };
        case 'crash-actor':
          return { kind, at, pattern: spec.actorPattern };
        case 'model':
          return {
            kind,
            at,
            durationMs,
            mode: pick(['429', '500', 'hang', 'malformed', 'slow-stream'] as const),
          };
      }
    })();
    if (plan.nodes.length < 2 && fault.kind === 'partition') continue;
    out.push(FaultSchema.parse(fault));
  }
  return out.sort((a, b) => a.at - b.at);
}

/** A one-line description of a fault, for summaries. */
export function describeFault(fault: Fault): string {
  const span = 'durationMs' in fault && fault.durationMs !== undefined ? ` for ${fault.durationMs} ms` : '';
  switch (fault.kind) {
    case 'crash-actor':
      return `@${fault.at} crash actors ${fault.pattern}${fault.node ? ` on ${fault.node}` : ''}`;
    case 'crash-node':
      return `@${fault.at} ${fault.signal} node ${fault.node}${span}`;
    case 'pause-node':
      return `@${fault.at} pause node ${fault.node}${span}`;
    case 'partition':
      return `@${fault.at} partition ${fault.sides.map((s) => s.join(',')).join(fault.oneWay ? ' -/-> ' : ' | ')}${span}`;
    case 'network':
      return `@${fault.at} network delay ${fault.delayMs}±${fault.jitterMs} drop ${fault.drop} dup ${fault.duplicate} reorder ${fault.reorder}${span}`;
    case 'journal':
      return `@${fault.at} journal ${fault.mode}${span}`;
    case 'model':
      return `@${fault.at} model ${fault.mode}${span}`;
    case 'clock-skew':
      return `@${fault.at} clock of ${fault.node} off by ${fault.skewMs} ms${span}`;
    default:
      return `@${fault.at} ${fault.kind}${span}`;
  }
}
