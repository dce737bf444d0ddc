/**
 * An agent's conversation: its messages as events. With a journal they are an event-sourced stream
 * of the memory layer (recovered, fenced and appended by `recoverStream`), so the conversation
 * survives crashes, restarts and moves; without one they live in memory, folded the same way.
 */
import { z } from 'zod';
import {
  type Journal,
  type NewEvent,
  type PersistentStream,
  recoverStream,
  type StreamDefinition,
  storableText,
} from '../memory/index.js';
import { TroupeError } from '../protocols/index.js';
import type { ActorContext } from '../runtime/index.js';
import type { ChatMessage, ToolCall } from './model.js';
import { errorResult } from './tools.js';

const toolCallSchema = z.object({ id: z.string(), name: z.string(), arguments: z.unknown() });

/** A message of the conversation, as the agent's protocol and its journal give it. */
export const messageSchema = z.discriminatedUnion('role', [
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

/** An agent's state: its conversation and, with a journal, its stream. */
export interface AgentState {
  readonly messages: ChatMessage[];
  /** Runs so far: one per user message. */
  runs: number;
  /** Where the conversation is kept (undefined without a journal): its stream, fence and version. */
  stream: PersistentStream<AgentState> | undefined;
}

const conversationEvents = {
  message: z.object({ run: z.string(), message: messageSchema }),
  'run-ended': z.object({
    run: z.string(),
    ok: z.boolean(),
    steps: z.number(),
    error: z.string().optional(),
  }),
} as const;

/** An event of the conversation: a message of a run, or the end of a run. */
export type ConversationEvent =
  | { readonly type: 'message'; readonly data: { readonly run: string; readonly message: ChatMessage } }
  | {
      readonly type: 'run-ended';
      readonly data: {
        readonly run: string;
        readonly ok: boolean;
        readonly steps: number;
        readonly error?: string;
      };
    };

// The appliers change the state in place, which a stream's appliers usually must not: an agent's
// state belongs to one incarnation, and a run holds on to it (a run that outlives its incarnation
// stops at its next append, and nothing reads that state again). Copying the conversation at every
// step would cost more than the rule saves.
const apply = {
  message: (state: AgentState, { message }: z.infer<(typeof conversationEvents)['message']>) => {
    state.messages.push(message as ChatMessage);
    if (message.role === 'user') state.runs++;
    return state;
  },
  'run-ended': (state: AgentState) => state,
};

/** A new agent's state, before anything is recovered. */
export function emptyConversation(): AgentState {
  return { messages: [], runs: 0, stream: undefined };
}

/** How an agent's conversation is kept in `journal`, on the stream `persistenceId` names. */
export function conversationStream(
  journal: Journal,
  persistenceId: (self: { readonly address: string; readonly name: string }) => string,
): StreamDefinition<AgentState, typeof conversationEvents> {
  return { journal, persistenceId, initialState: emptyConversation, events: conversationEvents, apply };
}

/**
 * Recovers the conversation from the agent's stream, keeping at most `maxHistory` messages of
 * earlier runs in memory even for a long stream (the journal keeps them all).
 */
export async function recoverConversation(
  ctx: ActorContext<AgentState, any>,
  definition: StreamDefinition<AgentState, typeof conversationEvents>,
  maxHistory: number,
): Promise<void> {
  const { stream, state } = await recoverStream(ctx, definition, (s) => {
    trim(s, maxHistory);
    return s;
  });
  state.stream = stream;
  ctx.state = state;
}

/** Errors thrown while a run appended to its conversation: they crash the agent. */
const appendFailures = new WeakSet<object>();

/** True for an error {@link record} threw because the conversation could not be appended to. */
export function isAppendFailure(error: unknown): boolean {
  return typeof error === 'object' && error !== null && appendFailures.has(error);
}

/**
 * Records a run's events: appended durably first when the agent has a journal, then folded into
 * `state` (so its messages change only once they are durable). A run whose incarnation is over
 * (`signal` aborted) stops with the signal's reason before and after: a restarted agent's old run
 * must not write into the new one's conversation.
 */
export async function record(
  state: AgentState,
  signal: AbortSignal,
  events: readonly ConversationEvent[],
): Promise<void> {
  if (signal.aborted) throw signal.reason;
  if (events.length === 0) return;
  if (state.stream === undefined) {
    for (const event of events) {
      if (event.type === 'message') apply.message(state, event.data);
    }
    return;
  }
  try {
    await state.stream.append(state, events as readonly NewEvent[]);
  } catch (error) {
    if (typeof error === 'object' && error !== null) appendFailures.add(error);
    throw error;
  }
  if (signal.aborted) throw signal.reason;
}

/** Messages of a run as events of the conversation. */
export function said(run: string, messages: readonly ChatMessage[]): ConversationEvent[] {
  return messages.map((message) => ({ type: 'message', data: { run, message } }));
}

/** Keeps at most `max` messages of earlier runs, starting at a user's message. */
export function trim(state: AgentState, max: number): void {
  const messages = state.messages;
  if (messages.length <= max) return;
  let from = messages.length - max;
  while (from < messages.length && messages[from]!.role !== 'user') from++;
  messages.splice(0, from);
}

/** Tool results for calls of the last assistant message that never got one (a crash, the step limit). */
export function unanswered(messages: readonly ChatMessage[], why: () => TroupeError): ChatMessage[] {
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
}

/** Tool calls the journal can store: their ids, names and every string in their arguments. */
export function storableCalls(calls: readonly ToolCall[]): ToolCall[] {
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

/** The error a tool call interrupted by a restart gets, so the model hears why it has no result. */
export function interrupted(): TroupeError {
  return new TroupeError(
    'ERR_TOOL_FAILED',
    'the call was interrupted: the agent restarted before it answered',
  );
}
