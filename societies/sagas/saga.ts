import { invalidOption, type Schema } from '../../protocols/index.js';
import {
  type CompensationContext,
  type CompensationRetry,
  type StepContext,
  type StepRetry,
  type Workflow,
  workflow,
} from '../workflows/index.js';

/** One step of a saga: what it does and how it is undone. */
export interface SagaStep<I = unknown> {
  readonly name: string;
  /** Does the step; its result (plain JSON data) is recorded, and given to the compensation. */
  readonly run: (ctx: StepContext<I>) => unknown;
  /**
   * Undoes the step, when a later step fails. Required on every step but the last (nothing comes
   * after the last step to fail). Retried up to `compensation.attempts`; it may run more than once
   * (after a crash), so it must be idempotent: `ctx.idempotencyKey` is `<id>/<step>/compensate`.
   */
  readonly compensate?: (ctx: CompensationContext<I>) => unknown;
  readonly retry?: StepRetry;
  readonly timeoutMs?: number;
}

/** A saga: steps run in order, each with its compensation. */
export interface SagaDefinition<I = unknown> {
  readonly name: string;
  readonly steps: readonly SagaStep<I>[];
  /** A schema the input must pass at start. */
  readonly input?: Schema;
  /** Retries of each compensation. Defaults to 5 attempts, 10 ms doubling to 1 s. */
  readonly compensation?: CompensationRetry;
  /** The saga's output from the steps' results. Defaults to the last step's result, by name. */
  readonly output?: (results: Readonly<Record<string, unknown>>, input: I) => unknown;
}

/**
 * Defines a saga: its steps run one after the other; when one fails, the steps that completed are
 * compensated in reverse order, each retried until it succeeds or `compensation.attempts` run out.
 * The outcome is then the step's failure (`ERR_STEP_FAILED`, with `compensated` listing what was
 * undone), or `ERR_COMPENSATION_FAILED` with `details.undone` when a compensation gave up. It is a
 * workflow (run it with a `workflowEngine`), so it is durable: after a crash it resumes forwards, or
 * goes on compensating, from its events.
 * @throws TroupeError `ERR_INVALID_OPTION` naming the step that lacks a compensation, and for
 * whatever `workflow()` refuses.
 * @example
 * ```ts
 * const booking = saga({
 *   name: 'booking',
 *   steps: [
 *     { name: 'flight', run: () => 'F1', compensate: () => undefined },
 *     { name: 'hotel', run: () => 'H1' },
 *   ],
 * });
 * ```
 */
export function saga<I = unknown>(definition: SagaDefinition<I>): Workflow<I> {
  if (typeof definition !== 'object' || definition === null)
    throw invalidOption('saga', 'must be an object', definition);
  const { name, steps } = definition;
  if (!Array.isArray(steps) || steps.length === 0)
    throw invalidOption(`saga "${String(name)}".steps`, 'must be a non-empty array', steps);
  steps.forEach((step, i) => {
    if (i < steps.length - 1 && typeof step?.compensate !== 'function') {
      throw invalidOption(
        `saga "${String(name)}".step "${String(step?.name)}".compensate`,
        'is required on every step but the last (a later step may fail)',
        step?.compensate,
      );
    }
  });
  const last = steps[steps.length - 1]!.name;
  return workflow<I>({
    name,
    concurrency: 1,
    ...(definition.input === undefined ? {} : { input: definition.input }),
    ...(definition.compensation === undefined ? {} : { compensation: definition.compensation }),
    output: definition.output ?? ((results) => ({ [last]: results[last] })),
    steps: steps.map((step, i) => ({
      name: step.name,
      run: step.run,
      ...(i === 0 ? {} : { after: [steps[i - 1]!.name] }),
      ...(step.compensate === undefined ? {} : { compensate: step.compensate }),
      ...(step.retry === undefined ? {} : { retry: step.retry }),
      ...(step.timeoutMs === undefined ? {} : { timeoutMs: step.timeoutMs }),
    })),
  });
}
