import { invalidOption, type Schema } from '../../protocols/index.js';
import { type ActorSystem, type Backoff, exponential } from '../../runtime/index.js';
import type { Guard } from '../../supervisors/index.js';

/** What a step's function sees: the workflow's input, the results of the steps before it, its key. */
export interface StepContext<I = unknown> {
  /** The workflow instance's id (its named actor's key). */
  readonly workflowId: string;
  /** The step's name (for an item of a `map` step, `name[index]`). */
  readonly step: string;
  /** The workflow's input, as it was started. */
  readonly input: I;
  /** The results of the completed steps, by name (a skipped step's is `undefined`). */
  readonly results: Readonly<Record<string, unknown>>;
  /**
   * The same for every attempt of this step, and again when it runs after a crash (a step in flight
   * at a crash runs again): pass it to whatever the step calls, so the effect happens once.
   */
  readonly idempotencyKey: string;
  /** 1 for the first attempt, counting retries within this run of the step. */
  readonly attempt: number;
  /** Aborted at the step's deadline, when the workflow fails or its actor stops. */
  readonly signal: AbortSignal;
  /** The system the workflow's actor runs on. */
  readonly system: ActorSystem;
}

/** What a compensation sees: the step's context and the result the step had. */
export interface CompensationContext<I = unknown> extends StepContext<I> {
  readonly result: unknown;
}

/** Retries of one step: attempts (the first included) and the wait between them. */
export interface StepRetry {
  /** Most attempts, the first included. Defaults to 1 (no retry). */
  readonly attempts: number;
  /** Defaults to 10 ms doubling to 1 s, ±20%. */
  readonly backoff?: Backoff;
}

/** Map a step over a list computed when the step runs: one journaled result per item. */
export interface MapSpec<I = unknown> {
  /** The items (plain JSON data), from the input and the results before the step. */
  readonly over: (ctx: StepContext<I>) => readonly unknown[] | PromiseLike<readonly unknown[]>;
  /** Runs for each item; its result is the item's, the step's result is the array of them. */
  readonly run: (item: unknown, ctx: StepContext<I> & { readonly index: number }) => unknown;
  /** Items running at once. Defaults to the workflow's `concurrency`. */
  readonly concurrency?: number;
}

/** Wait for an external signal (a human's approval) sent with the engine's `signal`, up to a deadline. */
export interface SignalSpec {
  /** How long to wait once the step is reached; then the step fails with `ERR_SIGNAL_TIMEOUT`. */
  readonly timeoutMs: number;
}

interface StepCommon<I> {
  /** Unique within the workflow. */
  readonly name: string;
  /** The steps whose results this one needs (fan-in); none for a step that starts at once. */
  readonly after?: readonly string[];
  /**
   * A conditional edge: decides, once the steps in `after` are done, whether this step runs. A
   * skipped step counts as done (its result is `undefined`), and the steps after it still run.
   */
  readonly when?: (ctx: StepContext<I>) => boolean;
  /** Retries of the step. None by default. */
  readonly retry?: StepRetry;
  /** Each attempt's deadline, in ms: its signal aborts and the attempt fails with `ERR_CALL_TIMEOUT`. */
  readonly timeoutMs?: number;
  /** A guard (breaker, bulkhead, retries, deadline) each attempt runs under, e.g. one per provider. */
  readonly guard?: Guard;
  /** Undoes the step, for a saga: runs, in reverse order of completion, when a later step fails. */
  readonly compensate?: (ctx: CompensationContext<I>) => unknown;
}

/**
 * One step of a workflow: exactly one of `run` (a function: it may ask an actor or an agent, see
 * `askStep` and `agentStep`), `map` (over a list computed at run time) or `signal` (an external
 * signal with a deadline). Results must be plain JSON data: they are stored in the journal.
 */
export type StepDefinition<I = unknown> = StepCommon<I> &
  (
    | { readonly run: (ctx: StepContext<I>) => unknown; readonly map?: never; readonly signal?: never }
    | { readonly map: MapSpec<I>; readonly run?: never; readonly signal?: never }
    | { readonly signal: SignalSpec; readonly run?: never; readonly map?: never }
  );

/** Retries of each compensation of a saga. */
export interface CompensationRetry {
  /** Most attempts of one compensation. Defaults to 5. */
  readonly attempts: number;
  /** Defaults to 10 ms doubling to 1 s, ±20%. */
  readonly backoff?: Backoff;
}

/** A workflow: a DAG of named steps (a pipeline is the linear case). */
export interface WorkflowDefinition<I = unknown> {
  /** Names the definition; every node that hosts workflows registers it under this name. */
  readonly name: string;
  /** The steps, in any order; `after` makes the edges. */
  readonly steps: readonly StepDefinition<I>[];
  /** A schema the input must pass at start (`ERR_VALIDATION` otherwise). None by default. */
  readonly input?: Schema;
  /** Steps running at once. Defaults to 64. */
  readonly concurrency?: number;
  /**
   * The workflow's output, from the results of its steps (plain JSON data). Defaults to the results
   * of the steps no other step comes after, by name.
   */
  readonly output?: (results: Readonly<Record<string, unknown>>, input: I) => unknown;
  /** Retries of each compensation (steps with `compensate`). Defaults to 5 attempts. */
  readonly compensation?: CompensationRetry;
}

/** A checked workflow definition, ready for `workflowEngine({ workflows })`. */
export interface Workflow<I = unknown> {
  readonly name: string;
  /** The step names in a topological order. */
  readonly steps: readonly string[];
  /** Phantom: the input type. */
  readonly __input?: I;
}

/** Defaults of a workflow's options. */
export const workflowDefaults = {
  /** Steps running at once. */
  concurrency: 64,
  /** Wait between retries of a step or a compensation. */
  backoff: exponential({ baseMs: 10, maxMs: 1000, jitter: true }),
  /** Attempts of one compensation. */
  compensationAttempts: 5,
} as const;

/** What the engine works with: steps by index, edges resolved. */
export interface ResolvedWorkflow {
  readonly name: string;
  readonly steps: readonly ResolvedStep[];
  readonly byName: ReadonlyMap<string, ResolvedStep>;
  readonly input: Schema | undefined;
  readonly concurrency: number;
  readonly output: (results: Readonly<Record<string, unknown>>, input: unknown) => unknown;
  readonly compensation: { readonly attempts: number; readonly backoff: Backoff };
}

export interface ResolvedStep {
  readonly index: number;
  readonly name: string;
  readonly definition: StepDefinition<unknown>;
  readonly kind: 'run' | 'map' | 'signal';
  /** Indices of the steps this one waits for. */
  readonly after: readonly number[];
  /** Indices of the steps that wait for this one. */
  readonly dependents: number[];
}

const resolved = new WeakMap<Workflow<any>, ResolvedWorkflow>();

/** The engine's view of a definition made by {@link workflow}. */
export function resolvedWorkflow(flow: Workflow<any>): ResolvedWorkflow {
  const found = resolved.get(flow);
  if (found === undefined) throw invalidOption('workflows', 'must be made by workflow() or saga()', flow);
  return found;
}

function positiveInteger(where: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    throw invalidOption(where, 'must be a positive integer', value);
  return value;
}

function optionalFunction(where: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function')
    throw invalidOption(where, 'must be a function', value);
}

/**
 * Defines a workflow: a DAG of steps, checked once here. Each step runs a function, maps over a list
 * computed at run time, or waits for an external signal; `after` gives fan-out and fan-in, `when`
 * conditional edges, and each step has its own `retry`, `timeoutMs` and `guard`. Run it with a
 * `workflowEngine` on a journal: every step's result is an event before the steps after it start.
 * @throws TroupeError `ERR_INVALID_OPTION` naming the part: an empty or duplicate step name, a step
 * with none or several of `run`/`map`/`signal`, an unknown step in `after`, a cycle (named by its
 * steps), a bad `retry`, `timeoutMs`, `concurrency` or function.
 * @example
 * ```ts
 * const order = workflow<{ sku: string }>({
 *   name: 'order',
 *   steps: [
 *     { name: 'reserve', run: ({ input }) => ({ reserved: input.sku }) },
 *     { name: 'charge', after: ['reserve'], retry: { attempts: 3 }, run: ({ idempotencyKey }) => idempotencyKey },
 *   ],
 * });
 * ```
 */
export function workflow<I = unknown>(definition: WorkflowDefinition<I>): Workflow<I> {
  if (typeof definition !== 'object' || definition === null)
    throw invalidOption('workflow', 'must be an object', definition);
  const { name, steps } = definition;
  if (typeof name !== 'string' || name === '')
    throw invalidOption('workflow.name', 'must be a non-empty string', name);
  const where = `workflow "${name}"`;
  if (!Array.isArray(steps) || steps.length === 0)
    throw invalidOption(`${where}.steps`, 'must be a non-empty array', steps);
  const concurrency = positiveInteger(
    `${where}.concurrency`,
    definition.concurrency,
    workflowDefaults.concurrency,
  );
  optionalFunction(`${where}.output`, definition.output);
  if (definition.input !== undefined && typeof definition.input?.['~standard']?.validate !== 'function')
    throw invalidOption(`${where}.input`, 'must be a Standard Schema', definition.input);
  const compensation = {
    attempts: positiveInteger(
      `${where}.compensation.attempts`,
      definition.compensation?.attempts,
      workflowDefaults.compensationAttempts,
    ),
    backoff: definition.compensation?.backoff ?? workflowDefaults.backoff,
  };
  const byName = new Map<string, ResolvedStep>();
  const list: ResolvedStep[] = [];
  for (const [i, step] of steps.entries()) {
    if (typeof step !== 'object' || step === null)
      throw invalidOption(`${where}.steps[${i}]`, 'must be an object', step);
    const stepName = step.name;
    if (typeof stepName !== 'string' || stepName === '' || /[[\]]/.test(stepName))
      throw invalidOption(
        `${where}.steps[${i}].name`,
        'must be a non-empty string without brackets',
        stepName,
      );
    const at = `${where}.step "${stepName}"`;
    if (byName.has(stepName)) throw invalidOption(at, 'is defined twice (duplicate step name)', stepName);
    const kinds = (['run', 'map', 'signal'] as const).filter((k) => step[k] !== undefined);
    if (kinds.length !== 1)
      throw invalidOption(
        at,
        `must have exactly one of run, map or signal (has ${kinds.join(', ') || 'none'})`,
      );
    const kind = kinds[0]!;
    if (kind === 'run') optionalFunction(`${at}.run`, step.run);
    if (kind === 'map') {
      const map = step.map!;
      if (typeof map?.over !== 'function' || typeof map.run !== 'function')
        throw invalidOption(`${at}.map`, 'must have the functions over and run', map);
      positiveInteger(`${at}.map.concurrency`, map.concurrency, 1);
    }
    if (kind === 'signal' && !(typeof step.signal?.timeoutMs === 'number' && step.signal.timeoutMs > 0))
      throw invalidOption(`${at}.signal.timeoutMs`, 'must be a positive number', step.signal?.timeoutMs);
    optionalFunction(`${at}.when`, step.when);
    optionalFunction(`${at}.compensate`, step.compensate);
    if (step.timeoutMs !== undefined && !(typeof step.timeoutMs === 'number' && step.timeoutMs > 0))
      throw invalidOption(`${at}.timeoutMs`, 'must be a positive number', step.timeoutMs);
    if (step.retry !== undefined) positiveInteger(`${at}.retry.attempts`, step.retry?.attempts, 1);
    if (step.guard !== undefined && typeof step.guard?.call !== 'function')
      throw invalidOption(`${at}.guard`, 'must be a guard', step.guard);
    if (step.after !== undefined && !Array.isArray(step.after))
      throw invalidOption(`${at}.after`, 'must be an array of step names', step.after);
    const entry: ResolvedStep = {
      index: i,
      name: stepName,
      definition: step as StepDefinition<unknown>,
      kind,
      after: [],
      dependents: [],
    };
    byName.set(stepName, entry);
    list.push(entry);
  }
  for (const entry of list) {
    const after = entry.definition.after ?? [];
    const seen = new Set<number>();
    for (const dependency of after) {
      const target = byName.get(dependency);
      if (target === undefined)
        throw invalidOption(
          `${where}.step "${entry.name}".after`,
          `names the unknown step "${String(dependency)}"`,
        );
      if (seen.has(target.index)) continue;
      seen.add(target.index);
      (entry.after as number[]).push(target.index);
      target.dependents.push(entry.index);
    }
  }
  const order = topologicalOrder(list, where);
  const sinks = list.filter((s) => s.dependents.length === 0).map((s) => s.name);
  const output =
    (definition.output as ResolvedWorkflow['output'] | undefined) ??
    ((results: Readonly<Record<string, unknown>>) => {
      const out: Record<string, unknown> = {};
      for (const sink of sinks) out[sink] = results[sink];
      return out;
    });
  const flow: Workflow<I> = Object.freeze({ name, steps: Object.freeze(order.map((i) => list[i]!.name)) });
  resolved.set(flow, {
    name,
    steps: list,
    byName,
    input: definition.input,
    concurrency,
    output,
    compensation,
  });
  return flow;
}

/** Kahn's algorithm; a cycle is refused naming the steps on it. */
function topologicalOrder(list: readonly ResolvedStep[], where: string): number[] {
  const waiting = list.map((s) => s.after.length);
  const ready: number[] = [];
  for (const s of list) if (waiting[s.index] === 0) ready.push(s.index);
  const order: number[] = [];
  while (ready.length > 0) {
    const i = ready.pop()!;
    order.push(i);
    for (const d of list[i]!.dependents) if (--waiting[d]! === 0) ready.push(d);
  }
  if (order.length === list.length) return order;
  const cycle = findCycle(list, new Set(list.filter((s) => waiting[s.index]! > 0).map((s) => s.index)));
  throw invalidOption(`${where}.steps`, `have a cycle: ${cycle.map((i) => list[i]!.name).join(' -> ')}`);
}

/** A cycle among the steps that Kahn's algorithm could not order: walk back along `after` until a repeat. */
function findCycle(list: readonly ResolvedStep[], stuck: ReadonlySet<number>): number[] {
  let at = stuck.values().next().value!;
  const position = new Map<number, number>();
  const path: number[] = [];
  while (!position.has(at)) {
    position.set(at, path.length);
    path.push(at);
    at = list[at]!.after.find((d) => stuck.has(d))!;
  }
  return [...path.slice(position.get(at)!), at].reverse();
}
