import { type AnyProtocol, TroupeError } from '../../protocols/index.js';
import type { ActorRef, AskOptions } from '../../runtime/index.js';
import type { StepContext } from './definition.js';

/**
 * A step function that asks an actor: `to` (a ref, or a function of the step's context giving one,
 * a named actor's ref for instance) gets `type` with the body `body(ctx)`; the reply is the step's
 * result. The ask carries the step's signal, so the step's deadline and the workflow's end cancel it.
 * @example `{ name: 'price', run: askStep(pricing, 'quote', ({ input }) => ({ sku: input.sku })) }`
 */
export function askStep<I = unknown>(
  to: ActorRef<any> | ((ctx: StepContext<I>) => ActorRef<any>),
  type: string,
  body: (ctx: StepContext<I>) => unknown,
  options?: Omit<AskOptions, 'signal'>,
): (ctx: StepContext<I>) => Promise<unknown> {
  return (ctx) => {
    const ref = (typeof to === 'function' ? to(ctx) : to) as ActorRef<AnyProtocol> & {
      ask(type: string, body: unknown, options?: AskOptions): Promise<unknown>;
    };
    return ref.ask(type, body(ctx), { ...options, signal: ctx.signal });
  };
}

/**
 * A step function that runs an agent (`agent()`): its `run` with the input `input(ctx)` and the
 * step's idempotency key as the run id; the result is the agent's final answer. A run the agent ends
 * with an error (`ERR_STEP_LIMIT`, `ERR_BUDGET_EXCEEDED`, ...) fails the step with that code.
 * @example `{ name: 'draft', after: ['plan'], run: agentStep(writer, ({ results }) => String(results.plan)) }`
 */
export function agentStep<I = unknown>(
  agentRef: ActorRef<any> | ((ctx: StepContext<I>) => ActorRef<any>),
  input: (ctx: StepContext<I>) => string,
  options?: Omit<AskOptions, 'signal'>,
): (ctx: StepContext<I>) => Promise<string> {
  const asking = askStep<I>(
    agentRef,
    'run',
    (ctx) => ({ input: input(ctx), runId: ctx.idempotencyKey }),
    options,
  );
  return async (ctx) => {
    const outcome = (await asking(ctx)) as
      | { ok: true; output: string }
      | { ok: false; error: { code: string; message: string } };
    if (outcome.ok) return outcome.output;
    throw new TroupeError(outcome.error.code as never, `the agent's run failed: ${outcome.error.message}`, {
      details: { step: ctx.step },
    });
  };
}
