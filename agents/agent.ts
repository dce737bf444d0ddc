import { z } from 'zod';
import type { Journal } from '../memory/index.js';
import { ask, defineProtocol, invalidOption } from '../protocols/index.js';
import { type Behavior, behavior, type Capabilities, type MailboxOptions } from '../runtime/index.js';
import type { Budgets } from '../supervisors/index.js';
import {
  type AgentState,
  conversationStream,
  emptyConversation,
  messageSchema,
  recoverConversation,
} from './conversation.js';
import type { ModelPort } from './model.js';
import { type AgentSettings, runReply, runTask } from './run.js';
import type { Tool } from './tools.js';
import type { UsageLedger } from './usage.js';

/**
 * What every agent speaks: `run` gives it a task and answers with the outcome (a failed run, such
 * as one past its step limit or budget, is an `ok: false` answer, not a crash); `history` gives the
 * conversation so far.
 */
export const AgentProtocol = defineProtocol('troupe.agent', {
  run: ask(z.object({ input: z.string().min(1), runId: z.string().min(1).optional() }), runReply),
  history: ask(z.object({}), z.array(messageSchema)),
});

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
  const settings = resolveAgentOptions(options);
  const { journal } = options;
  const persistenceId = options.persistenceId ?? (({ name }) => `agent-${name}`);
  const conversation = journal === undefined ? undefined : conversationStream(journal, persistenceId);
  return behavior<typeof AgentProtocol, AgentState>({
    protocols: [AgentProtocol],
    initialState: emptyConversation,
    handlers: {
      run: (body, ctx) => runTask(settings, body, ctx),
      history: (_, ctx) => ctx.state.messages.slice(),
    },
    ...(conversation === undefined
      ? {}
      : { preStart: (ctx) => recoverConversation(ctx, conversation, settings.maxHistory) }),
    ...(options.capabilities === undefined ? {} : { capabilities: options.capabilities }),
    ...(options.mailbox === undefined ? {} : { mailbox: options.mailbox }),
  });
}

/** Checks an agent's options and completes them with their defaults. */
function resolveAgentOptions(options: AgentOptions): AgentSettings {
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
  return {
    model,
    instructions,
    tools: byName,
    specs: tools.map((t) => t.spec),
    maxSteps,
    maxHistory,
    maxTokens,
    temperature,
    budgets,
    usage,
  };
}
