import { z } from 'zod';
import { type Journal, type NewEvent, type StoredEvent, storableText, streamPages } from '../memory/index.js';
import {
  type AgentStepEvent,
  ask,
  defineProtocol,
  invalidOption,
  parseAddress,
  TroupeError,
} from '../protocols/index.js';
import {
  type ActorContext,
  activationFence,
  type Behavior,
  behavior,
  type Capabilities,
  type MailboxOptions,
} from '../runtime/index.js';
import type { Budgets } from '../supervisors/index.js';
import type { ChatMessage, ModelPort, ModelRequest, ModelResponse, ToolCall } from './model.js';
import { errorResult, type Tool, type ToolResult } from './tools.js';
import type { UsageLedger } from './usage.js';

const usageSchema = z.object({ inputTokens: z.number(), outputTokens: z.number() });
const toolCallSchema = z.object({ id: z.string(), name: z.string(), arguments: z.unknown() });
const messageSchema = z.discriminatedUnion('role', [
  z.object({ role: z.literal('user'), content: z.string() }),
  z.object({
    role: z.literal('assistant'),
    content: z.string(),
    toolCalls: z.array(toolCallSchema).readonly().optional(),
  }),
  z.object({
    role: z.literal('tool'),
    toolCallId: z.string(),
    name: z.string(),
    content: z.string(),
    isError: z.boolean().optional(),
  }),
]);
const runReply = z.discriminatedUnion('ok', [
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

/**
 * What every agent speaks: `run` gives it a task and answers with the outcome (a failed run, such
 * as one past its step limit or budget, is an `ok: false` answer, not a crash); `history` gives the
 * conversation so far.
 */
export const AgentProtocol = defineProtocol('troupe.agent', {
  run: ask(z.object({ input: z.string().min(1), runId: z.string().min(1).optional() }), runReply),
  history: ask(z.object({}), z.array(messageSchema)),
});

/** The answer of an agent's `run`. */
export type RunOutcome = z.infer<typeof runReply>;

/** Options of {@link agent}. */
export interface AgentOptions {
  /** The model: a port, usually guarded (`guardedModel`) or a fallback chain (`fallbackModels`). */
  readonly model: ModelPort;
  /** The system prompt. */
  readonly instructions?: string;
  readonly tools?: readonly Tool[];
  /** Most model calls in one run; one more is refused with `ERR_STEP_LIMIT`. Defaults to 8. */
  readonly maxSteps?: number;
  /**
   * Most messages of earlier runs the agent keeps in memory and sends to the model (the current
   * run's are always sent); the window starts at a user's message. With a journal every message
   * stays in the journal. Defaults to no limit; 0 makes every run start afresh.
   */
  readonly maxHistory?: number;
  /** Passed to the model with every call. */
  readonly maxTokens?: number;
  readonly temperature?: number;
  /**
   * Conversation memory: every message is an event in the journal, so an agent that crashes or
   * moves continues where it was. Without one, the conversation lives in memory only.
   */
  readonly journal?: Journal;
  /** The agent's stream in the journal. Defaults to `agent-<name>` (its name: the last part of its path). */
  readonly persistenceId?: (self: { readonly address: string; readonly name: string }) => string;
  /** Budgets of tokens, cost and calls, by agent and subtree; checked before every model call. */
  readonly budgets?: Budgets;
  /** Usage accounting (and the prices that turn tokens into cost, for cost budgets too). */
  readonly usage?: UsageLedger;
  /** What this agent can handle, for `system.route`. */
  readonly capabilities?: Capabilities;
  readonly mailbox?: MailboxOptions;
}

/** An agent's state: its conversation and where it stands in its stream. */
export interface AgentState {
  readonly messages: ChatMessage[];
  runs: number;
  version: number;
  stream: string | undefined;
  fence: number | undefined;
}

/** What one run works with, fixed when it starts. */
interface Turn {
  readonly state: AgentState;
  readonly signal: AbortSignal;
  readonly address: string;
  readonly system: ActorContext<AgentState, typeof AgentProtocol>['system'];
  readonly run: string;
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

/** Errors thrown by the journal while a run appended: they crash the agent. */
const journalFailures = new WeakSet<object>();

/** Tool calls the journal can store: their ids, names and every string in their arguments. */
function storableCalls(calls: readonly ToolCall[]): ToolCall[] {
  const clean = (value: unknown): unknown =>
    typeof value === 'string'
      ? storableText(value)
      : Array.isArray(value)
        ? value.map(clean)
        : typeof value === 'object' && value !== null
          ? Object.fromEntries(Object.entries(value).map(([k, v]) => [storableText(k), clean(v)]))
          : value;
  return calls.map((c) => ({
    id: storableText(c.id),
    name: storableText(c.name),
    arguments: clean(c.arguments),
  }));
}

const agentEvents = {
  message: z.object({ run: z.string(), message: messageSchema }),
  'run-ended': z.object({
    run: z.string(),
    ok: z.boolean(),
    steps: z.number(),
    error: z.string().optional(),
  }),
} as const;

/**
 * An agent: an actor that runs a model-and-tools loop for each `run` (model call, tool calls, next
 * model call, final answer), bounded by `maxSteps`. Every step is an `agent-step` event on the
 * system's stream, and runs are framed by `agent-run` events. Tool arguments are checked against
 * the tool's schema first: invalid ones go back to the model as an error and the tool does not run.
 * With a journal the conversation is event-sourced: it survives crashes, restarts and moves.
 *
 * Failures the run can name (`ERR_STEP_LIMIT`, `ERR_BUDGET_EXCEEDED`, a provider that failed past
 * its guards) end the run with an `ok: false` answer. A journal failure, or a defect (an error that
 * is not a `TroupeError`), crashes the agent: its supervisor restarts it from the journal.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for bad options.
 * @example
 * ```ts
 * const researcher = system.spawn(
 *   agent({ model, instructions: 'You research.', tools: [search], journal, capabilities: { research: 0.9 } }),
 *   { name: 'researcher' },
 * );
 * const outcome = await researcher.ask('run', { input: 'What moves the tides?' });
 * ```
 */
export function agent(options: AgentOptions): Behavior<typeof AgentProtocol, AgentState> {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const {
    model,
    instructions,
    tools = [],
    maxSteps = 8,
    maxHistory = Number.POSITIVE_INFINITY,
    maxTokens,
    temperature,
    journal,
    budgets,
    usage,
  } = options;
  if (!(maxHistory >= 0)) throw invalidOption('maxHistory', 'must be a non-negative number', maxHistory);
  if (typeof model?.complete !== 'function') throw invalidOption('model', 'must be a model port', model);
  if (!Number.isInteger(maxSteps) || maxSteps < 1)
    throw invalidOption('maxSteps', 'must be a positive integer', maxSteps);
  if (!Array.isArray(tools) || tools.some((t) => typeof t?.call !== 'function'))
    throw invalidOption('tools', 'must be an array of tools', tools);
  const byName = new Map(tools.map((t) => [t.name, t]));
  if (byName.size !== tools.length)
    throw invalidOption(
      'tools',
      'must have distinct names',
      tools.map((t) => t.name),
    );
  if (journal !== undefined && typeof journal.append !== 'function')
    throw invalidOption('journal', 'must be a journal', journal);
  const specs = tools.map((t) => t.spec);
  const persistenceId = options.persistenceId ?? (({ name }) => `agent-${name}`);

  /**
   * Appends a run's events; the state's messages change only once they are durable. The run stops
   * (with its signal's reason) once its incarnation is over: a restarted agent's old run must not
   * write into the new one's conversation. Any failure to append crashes the agent.
   */
  const persist = async (turn: Turn, events: NewEvent[]) => {
    const { state, signal } = turn;
    if (signal.aborted) throw signal.reason;
    if (journal === undefined || state.stream === undefined) return;
    try {
      const result = await journal.append(state.stream, events, {
        expectedVersion: state.version,
        fence: state.fence,
      });
      state.version = result.toVersion;
    } catch (error) {
      if (typeof error === 'object' && error !== null) journalFailures.add(error);
      throw error;
    }
    if (signal.aborted) throw signal.reason;
  };
  const say = async (turn: Turn, messages: ChatMessage[]) => {
    if (messages.length === 0) return;
    await persist(
      turn,
      messages.map((message) => ({ type: 'message', data: { run: turn.run, message } })),
    );
    turn.state.messages.push(...messages);
  };

  const recover = async (ctx: ActorContext<AgentState, typeof AgentProtocol>) => {
    if (journal === undefined) return;
    const { address } = ctx.self;
    const path = parseAddress(address).path;
    const stream = persistenceId({ address, name: path.slice(path.lastIndexOf('/') + 1) });
    if (typeof stream !== 'string' || stream === '')
      throw invalidOption('persistenceId', `gave no stream name for ${address}`, stream);
    const fence = activationFence(ctx);
    if (fence !== undefined) await journal.append(stream, [], { fence });
    const state = ctx.state;
    state.stream = stream;
    state.fence = fence;
    for await (const page of streamPages(journal, stream)) {
      for (const event of page) {
        foldEvent(state, event, stream);
        state.version = event.version;
      }
      // Memory stays bounded by maxHistory even for a long stream (the journal keeps it all).
      trim(state, maxHistory);
    }
  };

  /** Tool results for calls of the last assistant message that never got one (a crash, the step limit). */
  const unanswered = (messages: readonly ChatMessage[], why: () => TroupeError): ChatMessage[] => {
    const answered = new Set<string>();
    for (let i = messages.length - 1; i >= 0; i--) {
      const m = messages[i]!;
      if (m.role === 'tool') answered.add(m.toolCallId);
      else if (m.role === 'assistant') {
        const open = (m.toolCalls ?? []).filter((c) => !answered.has(c.id));
        if (open.length === 0) return [];
        const result = errorResult(why());
        return open.map((c) => ({
          role: 'tool',
          toolCallId: c.id,
          name: c.name,
          content: result.content,
          isError: true,
        }));
      } else return [];
    }
    return [];
  };

  /**
   * Runs the tool calls of one step side by side; their events are published in the order the model
   * asked for them, so a replay publishes the same events whatever order they finished in.
   */
  const callTools = async (turn: Turn, step: number, calls: readonly ToolCall[]): Promise<ToolResult[]> => {
    const { signal, address: agentAddress, run } = turn;
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
            : await tool.call(call, { signal, agent: agentAddress });
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
  };

  const callModel = async (turn: Turn, step: number): Promise<ModelResponse> => {
    const { state, signal, address } = turn;
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
      response = await model.complete(request, { signal });
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
  };

  const runTask = async (
    body: { input: string; runId?: string | undefined },
    ctx: ActorContext<AgentState, typeof AgentProtocol>,
  ): Promise<RunOutcome> => {
    // Fixed for the whole run: after a restart, ctx has the next incarnation's state and signal.
    const state = ctx.state;
    const run = body.runId === undefined ? `run-${state.runs + 1}` : storableText(body.runId);
    const turn: Turn = { state, signal: ctx.signal, address: ctx.self.address, system: ctx.system, run };
    const publishRun = (phase: 'started' | 'finished' | 'failed', steps: number, error?: string) =>
      turn.system.publish({
        type: 'agent-run',
        agent: turn.address,
        run,
        phase,
        steps,
        ...(error === undefined ? {} : { error }),
      });
    state.runs++;
    trim(state, maxHistory);
    const interrupted = unanswered(
      state.messages,
      () =>
        new TroupeError(
          'ERR_TOOL_FAILED',
          'the call was interrupted: the agent restarted before it answered',
        ),
    );
    await say(turn, [...interrupted, { role: 'user', content: storableText(body.input) }]);
    publishRun('started', 0);
    let steps = 0;
    const spent = { inputTokens: 0, outputTokens: 0 };
    try {
      for (;;) {
        steps++;
        const response = await callModel(turn, steps);
        spent.inputTokens += response.usage.inputTokens;
        spent.outputTokens += response.usage.outputTokens;
        const calls = storableCalls(response.toolCalls);
        await say(turn, [
          {
            role: 'assistant',
            content: storableText(response.text),
            ...(calls.length === 0 ? {} : { toolCalls: calls }),
          },
        ]);
        if (calls.length === 0) {
          await persist(turn, [{ type: 'run-ended', data: { run, ok: true, steps } }]);
          publishRun('finished', steps);
          return { ok: true, run, output: response.text, steps, usage: spent };
        }
        if (steps >= maxSteps) {
          throw new TroupeError(
            'ERR_STEP_LIMIT',
            `the run reached its limit of ${maxSteps} model calls without an answer`,
            { details: { maxSteps, run } },
          );
        }
        const results = await callTools(turn, steps, calls);
        await say(
          turn,
          calls.map((call, i) => ({
            role: 'tool',
            toolCallId: call.id,
            name: call.name,
            content: storableText(results[i]!.content),
            ...(results[i]!.isError ? { isError: true } : {}),
          })),
        );
      }
    } catch (error) {
      // Journal failures, an incarnation that is over, and defects crash the agent (or end it, when
      // it is stopping); its supervisor restarts it from the journal.
      if (!TroupeError.is(error) || journalFailures.has(error) || turn.signal.aborted) throw error;
      await say(
        turn,
        unanswered(state.messages, () => error),
      );
      await persist(turn, [{ type: 'run-ended', data: { run, ok: false, steps, error: error.code } }]);
      publishRun('failed', steps, error.code);
      return { ok: false, run, error: { code: error.code, message: error.message }, steps, usage: spent };
    }
  };

  return behavior<typeof AgentProtocol, AgentState>({
    protocols: [AgentProtocol],
    initialState: () => ({ messages: [], runs: 0, version: 0, stream: undefined, fence: undefined }),
    handlers: {
      run: runTask,
      history: (_, ctx) => ctx.state.messages.slice(),
    },
    preStart: recover,
    ...(options.capabilities === undefined ? {} : { capabilities: options.capabilities }),
    ...(options.mailbox === undefined ? {} : { mailbox: options.mailbox }),
  });
}

/** Keeps at most `max` messages of earlier runs, starting at a user's message. */
function trim(state: AgentState, max: number): void {
  const messages = state.messages;
  if (messages.length <= max) return;
  let from = messages.length - max;
  while (from < messages.length && messages[from]!.role !== 'user') from++;
  messages.splice(0, from);
}

/** Folds one stored event into the state; a damaged one fails the recovery, naming stream and version. */
function foldEvent(state: AgentState, event: StoredEvent, stream: string): void {
  const schema = agentEvents[event.type as keyof typeof agentEvents];
  const parsed = schema?.safeParse(event.data);
  if (parsed === undefined || !parsed.success) {
    throw new TroupeError(
      'ERR_JOURNAL_CORRUPT',
      `event ${event.version} of "${stream}" is not an agent event (${schema === undefined ? `unknown type "${event.type}"` : parsed?.error?.message})`,
      { details: { stream, version: event.version } },
    );
  }
  if (event.type === 'message') {
    const { message } = parsed.data as z.infer<(typeof agentEvents)['message']>;
    state.messages.push(message as ChatMessage);
    if (message.role === 'user') state.runs++;
  }
}
