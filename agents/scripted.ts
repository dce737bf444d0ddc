import { invalidOption } from '../protocols/index.js';
import { type Clock, sleep } from '../runtime/index.js';
import type {
  ModelCallOptions,
  ModelPort,
  ModelRequest,
  ModelResponse,
  StopReason,
  ToolCall,
} from './model.js';

/** One answer of a scripted model: text, tool calls, or both. */
export interface ScriptedAnswer {
  readonly text?: string;
  readonly toolCalls?: readonly {
    readonly name: string;
    readonly arguments: unknown;
    readonly id?: string;
  }[];
}

/** A step of a script: an answer, a text, or a function of the request giving one. */
export type ScriptStep = string | ScriptedAnswer | ((request: ModelRequest) => string | ScriptedAnswer);

/** Options of {@link scriptedModel}. */
export interface ScriptedModelOptions {
  /** Names it in events and usage. Defaults to `scripted`. */
  readonly name?: string;
  /**
   * The answers of one run, in order: the first model call after the user's message gets the first
   * step, the next call (after tool results) the second, and so on; past the end, the last step
   * again. The step depends only on the request, so one scripted model serves any number of agents.
   */
  readonly steps: readonly ScriptStep[];
  /** A delay before each answer, in ms (to stand in for a model's latency). Defaults to 0. */
  readonly latencyMs?: number;
  /** The clock the delay runs on (a simulated one in a simulation). Defaults to the real clock. */
  readonly clock?: Clock;
}

/**
 * A deterministic model for tests, demos and replay: it answers from a script, counts tokens as
 * characters / 4, and never calls out.
 * @throws TroupeError `ERR_INVALID_OPTION` for an empty script or a bad step.
 * @example
 * ```ts
 * const model = scriptedModel({
 *   steps: [{ toolCalls: [{ name: 'search', arguments: { query: 'tides' } }] }, (req) => `Found: ${req.messages.at(-1)?.content}`],
 * });
 * ```
 */
export function scriptedModel(options: ScriptedModelOptions): ModelPort {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const { name = 'scripted', steps, latencyMs = 0, clock } = options;
  if (!Array.isArray(steps) || steps.length === 0)
    throw invalidOption('steps', 'must be a non-empty array', steps);
  for (const step of steps) {
    if (typeof step !== 'string' && typeof step !== 'function' && (typeof step !== 'object' || step === null))
      throw invalidOption('steps', 'each step must be a string, an answer or a function', step);
  }
  if (!(latencyMs >= 0)) throw invalidOption('latencyMs', 'must be a non-negative number', latencyMs);
  return {
    name,
    complete: async (request: ModelRequest, call?: ModelCallOptions): Promise<ModelResponse> => {
      if (latencyMs > 0) await sleep(latencyMs, { signal: call?.signal, clock });
      call?.signal?.throwIfAborted();
      const index = Math.min(stepOfRun(request), steps.length - 1);
      const step = steps[index]!;
      const answer = typeof step === 'function' ? step(request) : step;
      const text = typeof answer === 'string' ? answer : (answer.text ?? '');
      const asked: NonNullable<ScriptedAnswer['toolCalls']> =
        typeof answer === 'string' ? [] : (answer.toolCalls ?? []);
      const toolCalls: ToolCall[] = asked.map((c, i) => ({
        id: c.id ?? `call-${index + 1}-${i + 1}`,
        name: c.name,
        arguments: c.arguments,
      }));
      if (text !== '') call?.onText?.(text);
      const stopReason: StopReason = toolCalls.length > 0 ? 'tool_calls' : 'end';
      return {
        text,
        toolCalls,
        stopReason,
        usage: {
          inputTokens: tokensOf(JSON.stringify(request)),
          outputTokens: tokensOf(text) + tokensOf(JSON.stringify(toolCalls)) * Number(toolCalls.length > 0),
        },
        model: name,
      };
    },
  };
}

/** How many assistant messages follow the last user message: the number of this call within its run. */
function stepOfRun(request: ModelRequest): number {
  let steps = 0;
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const role = request.messages[i]!.role;
    if (role === 'user') break;
    if (role === 'assistant') steps++;
  }
  return steps;
}

function tokensOf(text: string): number {
  return Math.ceil(text.length / 4);
}
