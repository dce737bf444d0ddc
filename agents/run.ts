/**
 * One agent run: the model-and-tools loop, bounded by `maxSteps`, with budgets checked before each
 * model call, usage recorded after it, and every step published as an `agent-step` event.
 */
import { z } from 'zod';
import { storableText } from '../memory/index.js';
import { TroupeError } from '../protocols/index.js';
import type { ActorContext } from '../runtime/index.js';
import type { Budgets } from '../supervisors/index.js';
import {
  type AgentState,
  interrupted,
  isAppendFailure,
  record,
  said,
  storableCalls,
  trim,
  unanswered,
} from './conversation.js';
import type { AgentStepEvent } from './events.js';
import type { ModelPort, ModelRequest, ModelResponse, ToolCall, ToolSpec } from './model.js';
import { errorResult, type Tool, type ToolResult } from './tools.js';
import type { UsageLedger } from './usage.js';

const usageSchema = z.object({ inputTokens: z.number(), outputTokens: z.number() });

/** The answer of an agent's `run`, as its protocol declares it. */
export const runReply = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    run: z.string(),
    output: z.string(),
    steps: z.number(),
    usage: usageSchema,
  }),
  z.object({
    ok: z.literal(false),
    run: z.string(),
    error: z.object({ code: z.string(), message: z.string() }),
    steps: z.number(),
    usage: usageSchema,
  }),
]);

/** The answer of an agent's `run`. */
export type RunOutcome = z.infer<typeof runReply>;

/** An agent's options, checked and completed with their defaults: what each of its runs works with. */
export interface AgentSettings {
  readonly model: ModelPort;
  readonly instructions: string | undefined;
  readonly tools: ReadonlyMap<string, Tool>;
  readonly specs: readonly ToolSpec[];
  readonly maxSteps: number;
  readonly maxHistory: number;
  readonly maxTokens: number | undefined;
  readonly temperature: number | undefined;
  readonly budgets: Budgets | undefined;
  readonly usage: UsageLedger | undefined;
}

/** What one run works with, fixed when it starts. */
interface Turn {
  readonly settings: AgentSettings;
  readonly state: AgentState;
  readonly signal: AbortSignal;
  readonly address: string;
  readonly system: ActorContext<AgentState, any>['system'];
  readonly run: string;
}

/**
 * Runs a task to its outcome. Failures the run can name (`ERR_STEP_LIMIT`, `ERR_BUDGET_EXCEEDED`, a
 * provider that failed past its guards) end it with an `ok: false` answer; a failure to record the
 * conversation, a defect, or an incarnation that ended (a restart) is thrown, which crashes the agent.
 */
export async function runTask(
  settings: AgentSettings,
  body: { input: string; runId?: string | undefined },
  ctx: ActorContext<AgentState, any>,
): Promise<RunOutcome> {
  // Fixed for the whole run: after a restart, ctx has the next incarnation's state and signal.
  const state = ctx.state;
  const run = body.runId === undefined ? `run-${state.runs + 1}` : storableText(body.runId);
  const turn: Turn = {
    settings,
    state,
    signal: ctx.signal,
    address: ctx.self.address,
    system: ctx.system,
    run,
  };
  trim(state, settings.maxHistory);
  await record(
    state,
    turn.signal,
    said(run, [
      ...unanswered(state.messages, interrupted),
      { role: 'user', content: storableText(body.input) },
    ]),
  );
  publishRun(turn, 'started', 0);
  let steps = 0;
  const spent = { inputTokens: 0, outputTokens: 0 };
  try {
    for (;;) {
      steps++;
      const response = await callModel(turn, steps);
      spent.inputTokens += response.usage.inputTokens;
      spent.outputTokens += response.usage.outputTokens;
      const calls = storableCalls(response.toolCalls);
      await record(
        state,
        turn.signal,
        said(run, [
          {
            role: 'assistant',
            content: storableText(response.text),
            ...(calls.length === 0 ? {} : { toolCalls: calls }),
          },
        ]),
      );
      if (calls.length === 0) {
        await record(state, turn.signal, [{ type: 'run-ended', data: { run, ok: true, steps } }]);
        publishRun(turn, 'finished', steps);
        return { ok: true, run, output: response.text, steps, usage: spent };
      }
      if (steps >= settings.maxSteps) {
        throw new TroupeError(
          'ERR_STEP_LIMIT',
          `the run reached its limit of ${settings.maxSteps} model calls without an answer`,
          { details: { maxSteps: settings.maxSteps, run } },
        );
      }
      const results = await callTools(turn, steps, calls);
      await record(
        state,
        turn.signal,
        said(
          run,
          calls.map((call, i) => ({
            role: 'tool',
            toolCallId: call.id,
            name: call.name,
            content: storableText(results[i]!.content),
            ...(results[i]!.isError ? { isError: true } : {}),
          })),
        ),
      );
    }
  } catch (error) {
    // Journal failures, an incarnation that is over, and defects crash the agent (or end it, when
    // it is stopping); its supervisor restarts it from the journal.
    if (!TroupeError.is(error) || isAppendFailure(error) || turn.signal.aborted) throw error;
    await record(state, turn.signal, [
      ...said(
        run,
        unanswered(state.messages, () => error),
      ),
      { type: 'run-ended', data: { run, ok: false, steps, error: error.code } },
    ]);
    publishRun(turn, 'failed', steps, error.code);
    return { ok: false, run, error: { code: error.code, message: error.message }, steps, usage: spent };
  }
}

/** Calls the model with the conversation so far, within the agent's budgets. */
async function callModel(turn: Turn, step: number): Promise<ModelResponse> {
  const { settings, state, signal, address } = turn;
  const { model, instructions, specs, maxTokens, temperature, budgets, usage } = settings;
  if (signal.aborted) throw signal.reason;
  const request: ModelRequest = {
    ...(instructions === undefined ? {} : { system: instructions }),
    // A copy: the conversation grows after the call, and a model may keep its request.
    messages: state.messages.slice(),
    ...(specs.length === 0 ? {} : { tools: specs }),
    ...(maxTokens === undefined ? {} : { maxTokens }),
    ...(temperature === undefined ? {} : { temperature }),
  };
  let reservation: ReturnType<Budgets['reserve']> | undefined;
  if (budgets !== undefined) {
    const inputTokens = Math.ceil(JSON.stringify(request).length / 4);
    const outputTokens = maxTokens ?? 0;
    reservation = budgets.reserve(address, {
      tokens: inputTokens + outputTokens,
      costUsd: usage?.costOf(model.name, { inputTokens, outputTokens }) ?? 0,
    });
  }
  const started = turn.system.clock.now();
  let response: ModelResponse;
  try {
    response = await model.complete(request, { signal, agent: address, run: turn.run });
  } catch (error) {
    reservation?.release();
    if (!signal.aborted)
      publishModelStep(turn, step, model.name, started, {
        error: TroupeError.is(error) ? error.code : 'defect',
      });
    throw error;
  }
  const { inputTokens, outputTokens } = response.usage;
  reservation?.settle({
    tokens: inputTokens + outputTokens,
    costUsd: usage?.costOf(response.model, response.usage) ?? 0,
  });
  usage?.record(address, response.model, response.usage);
  publishModelStep(turn, step, response.model, started, {
    usage: { inputTokens, outputTokens },
    toolCalls: response.toolCalls.map((c) => c.name),
  });
  return response;
}

/**
 * Runs the tool calls of one step side by side; their events are published in the order the model
 * asked for them, so a replay publishes the same events whatever order they finished in.
 */
async function callTools(turn: Turn, step: number, calls: readonly ToolCall[]): Promise<ToolResult[]> {
  const { signal, address: agentAddress, run } = turn;
  const byName = turn.settings.tools;
  if (signal.aborted) throw signal.reason;
  const done = await Promise.all(
    calls.map(async (call) => {
      const started = turn.system.clock.now();
      const tool = byName.get(call.name);
      const result =
        tool === undefined
          ? errorResult(
              new TroupeError(
                'ERR_TOOL_FAILED',
                `there is no tool "${call.name}"; the tools are: ${[...byName.keys()].join(', ') || 'none'}`,
                { details: { tool: call.name } },
              ),
            )
          : await tool.call(call, { signal, agent: agentAddress, run });
      return { result, ms: turn.system.clock.now() - started };
    }),
  );
  for (let i = 0; i < calls.length; i++) {
    const { result, ms } = done[i]!;
    turn.system.publish({
      type: 'agent-step',
      agent: agentAddress,
      run,
      step,
      kind: 'tool',
      name: calls[i]!.name,
      ms,
      ...(result.isError ? { error: result.code ?? 'ERR_TOOL_FAILED' } : {}),
    });
  }
  return done.map((d) => d.result);
}

/** Publishes a model call of a run: what it used and asked for, or its error. */
function publishModelStep(
  turn: Turn,
  step: number,
  name: string,
  started: number,
  outcome: Pick<AgentStepEvent, 'usage' | 'toolCalls' | 'error'>,
): void {
  turn.system.publish({
    type: 'agent-step',
    agent: turn.address,
    run: turn.run,
    step,
    kind: 'model',
    name,
    ms: turn.system.clock.now() - started,
    ...outcome,
  });
}

/** Publishes that a run started, finished or failed. */
function publishRun(
  turn: Turn,
  phase: 'started' | 'finished' | 'failed',
  steps: number,
  error?: string,
): void {
  turn.system.publish({
    type: 'agent-run',
    agent: turn.address,
    run: turn.run,
    phase,
    steps,
    ...(error === undefined ? {} : { error }),
  });
}
