/**
 * Supervision scenarios that run the same on Erlang/OTP and on Troupe: a tree of supervisors (static
 * of every strategy, and dynamic), workers of every restart type, some of whose starts fail, and
 * steps (crashes, normal exits, dynamic starts, waits of whole seconds). Also their Erlang term form
 * for oracle.escript, and the one-step simplifications the shrinker tries.
 */
import fc from 'fast-check';
import type { RestartType, Strategy } from '../../index.js';

export interface WorkerNode {
  readonly kind: 'worker';
  readonly name: string;
  readonly restart: RestartType;
  /** Which of its starts fail (1 is the first start, 2 the first restart, ...). */
  readonly failStarts: readonly number[];
}

export interface SupNode {
  readonly kind: 'sup';
  readonly name: string;
  readonly restart: RestartType;
  readonly strategy: Strategy;
  readonly intensity: number;
  /** OTP's period is whole seconds; Troupe gets `periodSeconds * 1000` ms. */
  readonly periodSeconds: number;
  readonly children: readonly TreeNode[];
}

/** A dynamic supervisor (OTP `simple_one_for_one`): its children share one restart type. */
export interface DynNode {
  readonly kind: 'dyn';
  readonly name: string;
  readonly restart: RestartType;
  readonly intensity: number;
  readonly periodSeconds: number;
  readonly childRestart: RestartType;
}

export type TreeNode = WorkerNode | SupNode | DynNode;

export type Step =
  | { readonly op: 'crash' | 'exit'; readonly target: string }
  | {
      readonly op: 'start';
      readonly dyn: string;
      readonly name: string;
      readonly failStarts: readonly number[];
    }
  | { readonly op: 'wait'; readonly seconds: number };

export interface Scenario {
  readonly id: string;
  readonly root: SupNode;
  readonly steps: readonly Step[];
}

/** The root's name, on both sides: OTP's top supervisor and Troupe's top-level actor. */
export const ROOT = 'root';

/** A dynamic child is named `<dyn>_d<k>`: the trace comparison reads its supervisor from its name. */
export function dynamicParent(name: string): string | undefined {
  const match = /^(.*)_d\d+$/.exec(name);
  return match?.[1];
}

/** The supervisor of every static node and of every dynamic child a step starts. */
export function parentsOf(scenario: Scenario): Map<string, string | undefined> {
  const parents = new Map<string, string | undefined>();
  const walk = (node: TreeNode, parent: string | undefined) => {
    parents.set(node.name, parent);
    if (node.kind === 'sup') for (const child of node.children) walk(child, node.name);
  };
  walk(scenario.root, undefined);
  for (const step of scenario.steps) if (step.op === 'start') parents.set(step.name, step.dyn);
  return parents;
}

export function nodes(root: TreeNode): TreeNode[] {
  return root.kind === 'sup' ? [root, ...root.children.flatMap(nodes)] : [root];
}

// ---- Generation ----

type RawNode =
  | { kind: 'worker'; restart: RestartType; failStarts: number[] }
  | {
      kind: 'sup';
      restart: RestartType;
      strategy: Strategy;
      intensity: number;
      periodSeconds: number;
      children: RawNode[];
    }
  | {
      kind: 'dyn';
      restart: RestartType;
      intensity: number;
      periodSeconds: number;
      childRestart: RestartType;
    };

type RawStep =
  | { op: 'crash' | 'exit'; pick: number }
  /** Crashes of one worker `seconds` apart: the steps that make restart windows matter. */
  | { op: 'crashes'; pick: number; seconds: number; times: number }
  | { op: 'start'; pick: number; failStarts: number[] }
  | { op: 'wait'; seconds: number };

const restartArb = fc.constantFrom<RestartType>('permanent', 'transient', 'temporary');
const strategyArb = fc.constantFrom<Strategy>('one_for_one', 'one_for_all', 'rest_for_one');
/** Low intensities often, so that supervisors give up, and give up in cascades. */
const intensityArb = fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 2, max: 3 }));
const periodArb = fc.integer({ min: 1, max: 3 });
/** Mostly none; sometimes a few restarts fail (often enough to exhaust an intensity); rarely the first start. */
const failStartsArb: fc.Arbitrary<number[]> = fc.oneof(
  { arbitrary: fc.constant<number[]>([]), weight: 14 },
  { arbitrary: fc.subarray([2, 3, 4, 5], { minLength: 1 }), weight: 4 },
  { arbitrary: fc.constant<number[]>([1]), weight: 1 },
);
/** A dynamic child's first start is the one `startChild` waits for: make its failure common enough. */
const dynamicFailStartsArb: fc.Arbitrary<number[]> = fc.oneof(
  { arbitrary: fc.constant<number[]>([]), weight: 6 },
  { arbitrary: fc.constant<number[]>([1]), weight: 2 },
  { arbitrary: fc.subarray([2, 3, 4, 5], { minLength: 1 }), weight: 2 },
);

const treeArb = fc.letrec<{ node: RawNode; sup: Extract<RawNode, { kind: 'sup' }> }>((tie) => ({
  node: fc.oneof(
    { depthIdentifier: 'tree', maxDepth: 3, withCrossShrink: true },
    {
      arbitrary: fc.record({
        kind: fc.constant('worker' as const),
        restart: restartArb,
        failStarts: failStartsArb,
      }),
      weight: 4,
    },
    { arbitrary: tie('sup'), weight: 2 },
    {
      arbitrary: fc.record({
        kind: fc.constant('dyn' as const),
        restart: restartArb,
        intensity: intensityArb,
        periodSeconds: periodArb,
        childRestart: restartArb,
      }),
      weight: 2,
    },
  ),
  sup: fc.record({
    kind: fc.constant('sup' as const),
    restart: restartArb,
    strategy: strategyArb,
    intensity: intensityArb,
    periodSeconds: periodArb,
    children: fc.array(tie('node'), { minLength: 1, maxLength: 4, depthIdentifier: 'tree' }),
  }),
})).sup;

const stepArb: fc.Arbitrary<RawStep> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('crash' as const), pick: fc.nat() }), weight: 6 },
  { arbitrary: fc.record({ op: fc.constant('exit' as const), pick: fc.nat() }), weight: 2 },
  {
    arbitrary: fc.record({
      op: fc.constant('start' as const),
      pick: fc.nat(),
      failStarts: dynamicFailStartsArb,
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({ op: fc.constant('wait' as const), seconds: fc.integer({ min: 1, max: 3 }) }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('crashes' as const),
      pick: fc.nat(),
      seconds: fc.integer({ min: 1, max: 3 }),
      times: fc.integer({ min: 2, max: 4 }),
    }),
    weight: 2,
  },
);

/** Real seconds a scenario may wait on OTP in all: the batch lasts about as long as its longest scenario. */
const MAX_WAIT_SECONDS = 6;

/** Random scenarios; `id` is filled in by {@link sampleScenarios}. */
const scenarioArb: fc.Arbitrary<Omit<Scenario, 'id'>> = fc
  .tuple(treeArb, fc.array(stepArb, { maxLength: 14 }))
  .map(([raw, rawSteps]) => {
    const root = name(raw, ROOT) as SupNode;
    return { root, steps: resolveSteps(root, rawSteps) };
  });

/** `count` scenarios from `seed`, always the same ones for the same pair. */
export function sampleScenarios(seed: number, count: number): Scenario[] {
  return fc
    .sample(scenarioArb, { seed, numRuns: count })
    .map((scenario, i) => ({ id: `s${i}`, ...scenario }));
}

function name(raw: RawNode, given: string): TreeNode {
  if (raw.kind !== 'sup') return { ...raw, name: given };
  const prefix = given === ROOT ? 'c' : `${given}_`;
  return { ...raw, name: given, children: raw.children.map((child, i) => name(child, `${prefix}${i}`)) };
}

/** Gives each step a target by name: a worker of the tree or a dynamic child started before it. */
function resolveSteps(root: SupNode, raw: readonly RawStep[]): Step[] {
  const all = nodes(root);
  const targets = all.filter((n) => n.kind === 'worker').map((n) => n.name);
  const dyns = all.filter((n) => n.kind === 'dyn').map((n) => n.name);
  const started = new Map<string, number>();
  let waited = 0;
  const steps: Step[] = [];
  for (const step of raw) {
    if (step.op === 'wait') {
      if (waited + step.seconds > MAX_WAIT_SECONDS) continue;
      waited += step.seconds;
      steps.push(step);
    } else if (step.op === 'crashes') {
      if (targets.length === 0) continue;
      const target = targets[step.pick % targets.length]!;
      steps.push({ op: 'crash', target });
      for (let i = 1; i < step.times && waited + step.seconds <= MAX_WAIT_SECONDS; i++) {
        waited += step.seconds;
        steps.push({ op: 'wait', seconds: step.seconds }, { op: 'crash', target });
      }
    } else if (step.op === 'start') {
      if (dyns.length === 0) continue;
      const dyn = dyns[step.pick % dyns.length]!;
      const k = started.get(dyn) ?? 0;
      started.set(dyn, k + 1);
      const child = `${dyn}_d${k}`;
      targets.push(child);
      steps.push({ op: 'start', dyn, name: child, failStarts: step.failStarts });
    } else if (targets.length > 0) {
      steps.push({ op: step.op, target: targets[step.pick % targets.length]! });
    }
  }
  return steps;
}

// ---- Erlang terms for oracle.escript ----

/** The scenario as the term oracle.escript reads with file:consult/1 (ending in `.`). */
export function toErlang(scenario: Scenario): string {
  return `{scenario, ${bin(scenario.id)}, ${nodeTerm(scenario.root)}, [${scenario.steps.map(stepTerm).join(', ')}]}.`;
}

function stepTerm(step: Step): string {
  if (step.op === 'wait') return `{wait, ${step.seconds}}`;
  if (step.op === 'start') return `{start, ${bin(step.dyn)}, ${bin(step.name)}, ${list(step.failStarts)}}`;
  return `{${step.op}, ${bin(step.target)}}`;
}

function nodeTerm(node: TreeNode): string {
  switch (node.kind) {
    case 'worker':
      return `{worker, ${bin(node.name)}, ${node.restart}, ${list(node.failStarts)}}`;
    case 'dyn':
      return `{dyn, ${bin(node.name)}, ${node.restart}, ${node.intensity}, ${node.periodSeconds}, ${node.childRestart}}`;
    case 'sup':
      return `{sup, ${bin(node.name)}, ${node.restart}, ${node.strategy}, ${node.intensity}, ${node.periodSeconds}, [${node.children.map(nodeTerm).join(', ')}]}`;
  }
}

function bin(text: string): string {
  if (!/^[A-Za-z0-9_]+$/.test(text)) throw new Error(`not a scenario name: ${JSON.stringify(text)}`);
  return `<<"${text}">>`;
}

function list(numbers: readonly number[]): string {
  return `[${numbers.join(', ')}]`;
}

// ---- Shrinking: every scenario one simplification away ----

/** Scenarios one step simpler than `scenario`, the likeliest to keep a failure first. */
export function simplifications(scenario: Scenario): Scenario[] {
  const out: Scenario[] = [];
  const { root, steps } = scenario;
  const withSteps = (next: readonly Step[]) => out.push({ ...scenario, steps: next });
  const withRoot = (next: SupNode, keep: (step: Step) => boolean = () => true) =>
    out.push({ ...scenario, root: next, steps: steps.filter(keep) });

  if (steps.length > 0) withSteps(steps.slice(0, -1));
  steps.forEach((_, i) => {
    withSteps(steps.filter((_, j) => j !== i));
  });
  for (const node of nodes(root)) {
    if (node.kind === 'sup' && node.children.length > 2) {
      // Big steps first (each round runs all its candidates in one OTP batch): one child alone.
      node.children.forEach((child, i) => {
        const gone = new Set(
          node.children.filter((_, j) => j !== i).flatMap((c) => nodes(c).map((n) => n.name)),
        );
        withRoot(
          replace(root, node.name, { ...node, children: [child] }) as SupNode,
          (step) => !touches(step, gone),
        );
      });
    }
  }
  for (const node of nodes(root)) {
    if (node.kind === 'sup') {
      node.children.forEach((child, i) => {
        const gone = new Set(nodes(child).map((n) => n.name));
        const children = node.children.filter((_, j) => j !== i);
        withRoot(replace(root, node.name, { ...node, children }) as SupNode, (step) => !touches(step, gone));
      });
    }
    if (node !== root && node.kind !== 'worker') {
      const gone = new Set(nodes(node).map((n) => n.name));
      const worker: WorkerNode = { kind: 'worker', name: node.name, restart: node.restart, failStarts: [] };
      withRoot(replace(root, node.name, worker) as SupNode, (step) => !touches(step, gone, node.name));
    }
    const simplest = simplestNode(node);
    if (JSON.stringify(simplest) !== JSON.stringify(node))
      withRoot(replace(root, node.name, simplest) as SupNode);
    for (const simpler of simplerNode(node)) withRoot(replace(root, node.name, simpler) as SupNode);
  }
  steps.forEach((step, i) => {
    const simpler: Step | undefined =
      step.op === 'wait' && step.seconds > 1
        ? { ...step, seconds: step.seconds - 1 }
        : step.op === 'start' && step.failStarts.length > 0
          ? { ...step, failStarts: [] }
          : undefined;
    if (simpler !== undefined) withSteps(steps.map((s, j) => (j === i ? simpler : s)));
  });
  return out;
}

function simplerNode(node: TreeNode): TreeNode[] {
  const out: TreeNode[] = [];
  if (node.kind === 'worker') {
    if (node.failStarts.length > 0) out.push({ ...node, failStarts: [] });
  } else {
    if (node.intensity > 0) out.push({ ...node, intensity: node.intensity - 1 });
    if (node.periodSeconds > 1) out.push({ ...node, periodSeconds: node.periodSeconds - 1 });
    if (node.kind === 'sup' && node.strategy !== 'one_for_one')
      out.push({ ...node, strategy: 'one_for_one' });
    if (node.kind === 'dyn' && node.childRestart !== 'permanent')
      out.push({ ...node, childRestart: 'permanent' });
  }
  if (node.restart !== 'permanent') out.push({ ...node, restart: 'permanent' });
  return out;
}

/** Every simplification of {@link simplerNode} but the intensity's at once. */
function simplestNode(node: TreeNode): TreeNode {
  if (node.kind === 'worker') return { ...node, restart: 'permanent', failStarts: [] };
  if (node.kind === 'dyn')
    return { ...node, restart: 'permanent', periodSeconds: 1, childRestart: 'permanent' };
  return { ...node, restart: 'permanent', periodSeconds: 1, strategy: 'one_for_one' };
}

function replace(node: TreeNode, target: string, by: TreeNode): TreeNode {
  if (node.name === target) return by;
  if (node.kind !== 'sup') return node;
  return { ...node, children: node.children.map((child) => replace(child, target, by)) };
}

/** True when `step` acts on a node of `subtree` (other than `kept`) or on a dynamic child of one. */
function touches(step: Step, subtree: ReadonlySet<string>, kept?: string): boolean {
  if (step.op === 'start') return subtree.has(step.dyn);
  if (step.op === 'wait') return false;
  return (subtree.has(step.target) && step.target !== kept) || subtree.has(dynamicParent(step.target) ?? '');
}
