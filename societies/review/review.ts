import { invalidOption, TroupeError } from '../../protocols/index.js';
import type { ActorRef } from '../../runtime/index.js';
import type { StepContext } from '../workflows/index.js';

/** A critic's judgement of a candidate. */
export interface Verdict {
  readonly pass: boolean;
  /** What to repair, for the generator's next round. */
  readonly feedback?: string;
}

/** What the generator gets in each round. */
export interface GenerateRequest<In, C> {
  readonly input: In;
  /** 1 for the first draft, then one more per repair round. */
  readonly round: number;
  /** The candidate the critics rejected in the round before, if any. */
  readonly previous: C | undefined;
  /** The feedback of the critics that rejected it. */
  readonly feedback: readonly string[];
  readonly signal: AbortSignal | undefined;
}

/** A critic: judges a candidate. */
export type Critic<In, C> = (
  candidate: C,
  context: { readonly input: In; readonly round: number; readonly signal: AbortSignal | undefined },
) => Verdict | PromiseLike<Verdict>;

/** Options of {@link reviewLoop}. */
export interface ReviewLoopOptions<In, C> {
  /** Makes a candidate: the first draft, then a repair given the critics' feedback. */
  readonly generate: (request: GenerateRequest<In, C>) => C | PromiseLike<C>;
  /** One or more critics; they judge each candidate at once (in parallel). */
  readonly critics: readonly Critic<In, C>[];
  /** `'all'` (default): every critic must pass; `'majority'`: more than half of them. */
  readonly decide?: 'all' | 'majority';
  /** Most rounds (the first draft included). Defaults to 3. */
  readonly maxRounds?: number;
}

/** How a review loop ended. */
export type ReviewOutcome<C> =
  | { readonly ok: true; readonly output: C; readonly rounds: number; readonly verdicts: readonly Verdict[] }
  | {
      readonly ok: false;
      /** `ERR_REVIEW_REJECTED`. */
      readonly error: TroupeError;
      /** The last candidate, which the critics rejected. */
      readonly last: C;
      readonly rounds: number;
      readonly verdicts: readonly Verdict[];
    };

/** A generator, critics and repair rounds: a verification gate. */
export interface ReviewLoop<In, C> {
  /** Runs rounds until the critics pass a candidate or `maxRounds` is reached. A throw of the generator or a critic rejects. */
  run(input: In, options?: { readonly signal?: AbortSignal }): Promise<ReviewOutcome<C>>;
}

/** Defaults of {@link reviewLoop}. */
export const reviewLoopDefaults = { decide: 'all', maxRounds: 3 } as const;

/**
 * Builds a review-and-repair loop: the generator drafts, the critics judge (all must pass, or a
 * simple majority), and a rejected draft goes back to the generator with the critics' feedback,
 * until a draft passes or `maxRounds` is reached (then the outcome is `ERR_REVIEW_REJECTED`). Use it
 * in a workflow with {@link reviewStep}; with agents, {@link agentGenerator} and {@link agentCritic}.
 * @throws TroupeError `ERR_INVALID_OPTION` for no critics, a bad `decide` or `maxRounds`.
 * @example
 * ```ts
 * const gate = reviewLoop({
 *   generate: ({ round }) => `draft ${round}`,
 *   critics: [(draft) => ({ pass: draft === 'draft 2', feedback: 'try again' })],
 * });
 * const outcome = await gate.run('write a haiku');
 * ```
 */
export function reviewLoop<In, C>(options: ReviewLoopOptions<In, C>): ReviewLoop<In, C> {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('reviewLoop', 'must be an object', options);
  const { generate, critics } = options;
  if (typeof generate !== 'function')
    throw invalidOption('reviewLoop.generate', 'must be a function', generate);
  if (!Array.isArray(critics) || critics.length === 0)
    throw invalidOption('reviewLoop.critics', 'must be a non-empty array of functions', critics);
  critics.forEach((c, i) => {
    if (typeof c !== 'function') throw invalidOption(`reviewLoop.critics[${i}]`, 'must be a function', c);
  });
  const decide = options.decide ?? reviewLoopDefaults.decide;
  if (decide !== 'all' && decide !== 'majority')
    throw invalidOption('reviewLoop.decide', "must be 'all' or 'majority'", decide);
  const maxRounds = options.maxRounds ?? reviewLoopDefaults.maxRounds;
  if (!Number.isInteger(maxRounds) || maxRounds < 1)
    throw invalidOption('reviewLoop.maxRounds', 'must be a positive integer', maxRounds);
  const passes = (verdicts: readonly Verdict[]) => {
    const passed = verdicts.filter((v) => v.pass === true).length;
    return decide === 'all' ? passed === verdicts.length : passed * 2 > verdicts.length;
  };
  return {
    async run(input, runOptions) {
      const signal = runOptions?.signal;
      let previous: C | undefined;
      let feedback: string[] = [];
      let verdicts: Verdict[] = [];
      for (let round = 1; ; round++) {
        if (signal?.aborted) throw signal.reason;
        const candidate = await generate({ input, round, previous, feedback, signal });
        verdicts = await Promise.all(critics.map((critic) => critic(candidate, { input, round, signal })));
        for (const v of verdicts) {
          if (typeof v !== 'object' || v === null || typeof v.pass !== 'boolean')
            throw new TroupeError(
              'ERR_VALIDATION',
              'a critic gave no verdict ({ pass: boolean, feedback? })',
              {
                details: { verdict: v },
              },
            );
        }
        if (passes(verdicts)) return { ok: true, output: candidate, rounds: round, verdicts };
        if (round >= maxRounds) {
          return {
            ok: false,
            error: new TroupeError(
              'ERR_REVIEW_REJECTED',
              `the critics rejected every candidate in ${round} rounds (${decide} must pass)`,
              {
                details: {
                  rounds: round,
                  feedback: verdicts.flatMap((v) => (v.feedback === undefined ? [] : [v.feedback])),
                },
              },
            ),
            last: candidate,
            rounds: round,
            verdicts,
          };
        }
        previous = candidate;
        feedback = verdicts
          .filter((v) => !v.pass)
          .flatMap((v) => (v.feedback === undefined ? [] : [v.feedback]));
      }
    },
  };
}

/**
 * A workflow step function running a review loop on `input(ctx)`: its result is the candidate that
 * passed; a loop that ends rejected fails the step (`ERR_STEP_FAILED` caused by `ERR_REVIEW_REJECTED`).
 * @example `{ name: 'draft', after: ['plan'], run: reviewStep(gate, ({ results }) => String(results.plan)) }`
 */
export function reviewStep<I, In, C>(
  loop: ReviewLoop<In, C>,
  input: (ctx: StepContext<I>) => In,
): (ctx: StepContext<I>) => Promise<C> {
  return async (ctx) => {
    const outcome = await loop.run(input(ctx), { signal: ctx.signal });
    if (outcome.ok) return outcome.output;
    throw outcome.error;
  };
}

type AgentOutcome = { ok: true; output: string } | { ok: false; error: { code: string; message: string } };

async function runAgent(
  ref: ActorRef<any>,
  input: string,
  signal: AbortSignal | undefined,
  timeoutMs?: number,
) {
  const agentRef = ref as unknown as {
    ask(type: 'run', body: { input: string }, options?: object): Promise<AgentOutcome>;
  };
  const outcome = await agentRef.ask(
    'run',
    { input },
    { ...(signal === undefined ? {} : { signal }), ...(timeoutMs === undefined ? {} : { timeoutMs }) },
  );
  if (outcome.ok) return outcome.output;
  throw new TroupeError(outcome.error.code as never, `the agent's run failed: ${outcome.error.message}`);
}

/**
 * A generator backed by an agent (`agent()`): asks it to `run` with `prompt(request)`; the default
 * prompt is the input, then, in a repair round, the previous draft and the critics' feedback.
 */
export function agentGenerator<In>(
  agentRef: ActorRef<any>,
  prompt?: (request: GenerateRequest<In, string>) => string,
  options?: { readonly timeoutMs?: number },
): (request: GenerateRequest<In, string>) => Promise<string> {
  const text =
    prompt ??
    ((r: GenerateRequest<In, string>) =>
      r.previous === undefined
        ? String(r.input)
        : `${String(r.input)}\n\nYour previous answer:\n${r.previous}\n\nRepair it. Feedback:\n${r.feedback.join('\n')}`);
  return (request) => runAgent(agentRef, text(request), request.signal, options?.timeoutMs);
}

/**
 * A critic backed by an agent: asks it to review the candidate; an answer that starts with `PASS`
 * passes, any other answer fails with the answer as the feedback.
 */
export function agentCritic<In>(
  agentRef: ActorRef<any>,
  prompt?: (candidate: string, input: In) => string,
  options?: { readonly timeoutMs?: number },
): Critic<In, string> {
  const text =
    prompt ??
    ((candidate: string, input: In) =>
      `Task: ${String(input)}\n\nCandidate:\n${candidate}\n\nAnswer PASS if it is right, otherwise what to fix.`);
  return async (candidate, { input, signal }) => {
    const answer = (await runAgent(agentRef, text(candidate, input), signal, options?.timeoutMs)).trim();
    return /^pass\b/i.test(answer) ? { pass: true } : { pass: false, feedback: answer };
  };
}
