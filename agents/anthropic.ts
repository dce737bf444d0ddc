/**
 * The Anthropic model adapter: the Messages API (`POST /v1/messages`), streamed or not.
 */

import {
  checkMaxTokens,
  consumeSse,
  type HttpModelOptions,
  httpModelPort,
  isRecord,
  type ModelHttpCall,
  malformedError,
  modelHttpError,
  parseJsonText,
  parseToolArguments,
  type ResolvedHttpOptions,
  readJsonBody,
  resolveHttpOptions,
  type SseEvent,
  sampleOf,
} from './http.js';
import type {
  ChatMessage,
  ModelPort,
  ModelRequest,
  ModelResponse,
  StopReason,
  TokenUsage,
  ToolCall,
  ToolSpec,
} from './model.js';

/** Options of {@link anthropicModel}. `maxTokens` defaults to 1024 (the API requires a limit). */
export type AnthropicModelOptions = HttpModelOptions;

/** Anthropic's public API, the base URL when neither the option nor `ANTHROPIC_BASE_URL` gives one. */
export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';

/** The `anthropic-version` header the adapter speaks. */
export const ANTHROPIC_VERSION = '2023-06-01';

/** The token limit when neither the request nor the options give one. */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 1024;

/**
 * A {@link ModelPort} speaking Anthropic's Messages API to `${baseUrl}/v1/messages`. `baseUrl` defaults
 * to `ANTHROPIC_BASE_URL`, then Anthropic's API; `apiKey` to `ANTHROPIC_API_KEY` (sent as `x-api-key`).
 * Consecutive messages of one role are merged (the API requires alternation); tool results travel in a
 * user message.
 *
 * `complete` rejects with `ERR_MODEL_HTTP` (status >= 400, or an `error` event in the stream: 529 for
 * `overloaded_error`, else 500, with `details.type`), `ERR_MODEL_UNREACHABLE` (`notSent` when the
 * connection was refused), `ERR_MODEL_MALFORMED`, `ERR_CALL_TIMEOUT` (`timeoutMs` passed), or the
 * signal's reason when the caller aborts.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for bad options, and for a missing key on Anthropic's API
 * (naming `ANTHROPIC_API_KEY`; another server through `baseUrl` may need none).
 * @example
 * ```ts
 * const model = anthropicModel({ model: 'claude-sonnet-4-5', maxTokens: 2048 });
 * const answer = await model.complete({
 *   system: 'You answer with one word.',
 *   messages: [{ role: 'user', content: 'The capital of France?' }],
 * });
 * console.log(answer.text, answer.usage.outputTokens);
 * ```
 */
export function anthropicModel(options: AnthropicModelOptions): ModelPort {
  const resolved = resolveHttpOptions(options, {
    baseUrl: process.env.ANTHROPIC_BASE_URL ?? ANTHROPIC_DEFAULT_BASE_URL,
    apiKey: process.env.ANTHROPIC_API_KEY,
    apiKeyVariable: 'ANTHROPIC_API_KEY',
    providerUrl: ANTHROPIC_DEFAULT_BASE_URL,
  });
  const name = `anthropic:${resolved.model}`;
  return httpModelPort(name, resolved, options.guard, {
    path: '/v1/messages',
    headers: {
      'anthropic-version': ANTHROPIC_VERSION,
      ...(resolved.apiKey === undefined ? {} : { 'x-api-key': resolved.apiKey }),
    },
    body: (request) => anthropicBody(request, resolved),
    readStream: (call, response, onText) => readStream(call, response, resolved.model, onText),
    readWhole: (call, response) => readWhole(call, response, resolved.model),
  });
}

// ---------------------------------------------------------------------------------------------------
// The request

/** A content block of the Messages wire format. */
type AnthropicBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | { type: 'tool_result'; tool_use_id: string; content: string; is_error: boolean };

interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: AnthropicBlock[];
}

function anthropicBody(request: ModelRequest, options: ResolvedHttpOptions): Record<string, unknown> {
  const maxTokens =
    request.maxTokens === undefined
      ? (options.maxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS)
      : checkMaxTokens('maxTokens', request.maxTokens);
  const tools = request.tools ?? [];
  return {
    model: options.model,
    max_tokens: maxTokens,
    ...(request.system === undefined ? {} : { system: request.system }),
    messages: anthropicMessages(request.messages),
    ...(tools.length === 0 ? {} : { tools: tools.map(anthropicTool) }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    stream: options.stream,
  };
}

/** The messages as the API wants them: one per turn, roles alternating, tool results first in a turn. */
function anthropicMessages(messages: readonly ChatMessage[]): AnthropicMessage[] {
  const merged: AnthropicMessage[] = [];
  for (const message of messages) {
    const next = anthropicMessage(message);
    const last = merged.at(-1);
    if (last !== undefined && last.role === next.role) last.content.push(...next.content);
    else merged.push(next);
  }
  for (const message of merged) message.content = toolResultsFirst(message.content);
  // An empty answer (Claude sometimes ends a turn with no text after tool results) would be an
  // empty assistant turn, which the API refuses: it says nothing, so it goes; the turns around it
  // then share a role and are merged.
  return merged.some((m) => m.content.length === 0)
    ? anthropicMessages(messages.filter(saysSomething))
    : merged;
}

function saysSomething(message: ChatMessage): boolean {
  return message.role !== 'assistant' || message.content !== '' || (message.toolCalls?.length ?? 0) > 0;
}

function anthropicMessage(message: ChatMessage): AnthropicMessage {
  switch (message.role) {
    case 'user':
      return { role: 'user', content: [{ type: 'text', text: message.content }] };
    case 'assistant': {
      // The API refuses empty text blocks; an assistant turn that only calls tools has none.
      const text: AnthropicBlock[] = message.content === '' ? [] : [{ type: 'text', text: message.content }];
      return { role: 'assistant', content: [...text, ...(message.toolCalls ?? []).map(toolUseBlock)] };
    }
    case 'tool':
      return {
        role: 'user',
        content: [
          {
            type: 'tool_result',
            tool_use_id: message.toolCallId,
            content: message.content,
            is_error: message.isError ?? false,
          },
        ],
      };
  }
}

/**
 * A tool call as a `tool_use` block. The API takes only an object as `input`: arguments that are not
 * one (raw text that did not parse, kept for the tool to refuse) go back as `{}`.
 */
function toolUseBlock(call: ToolCall): AnthropicBlock {
  return {
    type: 'tool_use',
    id: call.id,
    name: call.name,
    input: isRecord(call.arguments) ? call.arguments : {},
  };
}

/** The API wants a user turn's tool results before its text. */
function toolResultsFirst(blocks: AnthropicBlock[]): AnthropicBlock[] {
  const results = blocks.filter((block) => block.type === 'tool_result');
  return results.length === 0
    ? blocks
    : [...results, ...blocks.filter((block) => block.type !== 'tool_result')];
}

function anthropicTool(tool: ToolSpec): Record<string, unknown> {
  return { name: tool.name, description: tool.description, input_schema: tool.parameters };
}

// ---------------------------------------------------------------------------------------------------
// A whole answer

async function readWhole(call: ModelHttpCall, response: Response, model: string): Promise<ModelResponse> {
  const body = await readJsonBody(call, response);
  if (!isRecord(body) || !Array.isArray(body.content))
    throw malformedError(call, 'the answer lacks a content array', sampleOf(body));
  let text = '';
  const toolCalls: ToolCall[] = [];
  for (const block of body.content) {
    if (!isRecord(block)) throw malformedError(call, 'a content block is not an object', sampleOf(body));
    if (block.type === 'text' && typeof block.text === 'string') text += block.text;
    else if (block.type === 'tool_use') toolCalls.push(toolCallOf(call, block, sampleOf(body)));
  }
  return {
    text,
    toolCalls,
    stopReason: stopReasonOf(body.stop_reason),
    usage: usageOf(body.usage, { inputTokens: 0, outputTokens: 0 }),
    model: typeof body.model === 'string' && body.model !== '' ? body.model : model,
  };
}

function toolCallOf(call: ModelHttpCall, block: Record<string, unknown>, sample: string): ToolCall {
  if (typeof block.id !== 'string' || typeof block.name !== 'string' || block.name === '')
    throw malformedError(call, 'a tool_use block lacks its id or name', sample);
  return { id: block.id, name: block.name, arguments: block.input ?? {} };
}

function stopReasonOf(reason: unknown): StopReason {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'end';
    case 'tool_use':
      return 'tool_calls';
    case 'max_tokens':
      return 'max_tokens';
    default:
      return 'other';
  }
}

/** The counts `usage` gives, the others from `base`. */
function usageOf(usage: unknown, base: TokenUsage): TokenUsage {
  if (!isRecord(usage)) return base;
  return {
    inputTokens: countOf(usage.input_tokens) ?? base.inputTokens,
    outputTokens: countOf(usage.output_tokens) ?? base.outputTokens,
  };
}

function countOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

// ---------------------------------------------------------------------------------------------------
// A streamed answer

/** A content block being assembled from its deltas. */
type PartialBlock =
  | { readonly kind: 'text'; text: string }
  | { readonly kind: 'tool'; readonly id: string; readonly name: string; json: string; input?: unknown }
  | { readonly kind: 'other' };

/** What the events of a stream have said so far. */
interface StreamState {
  model: string;
  stopReason: unknown;
  usage: TokenUsage;
  readonly blocks: Map<number, PartialBlock>;
}

async function readStream(
  call: ModelHttpCall,
  response: Response,
  model: string,
  onText: ((text: string) => void) | undefined,
): Promise<ModelResponse> {
  const state: StreamState = {
    model,
    stopReason: undefined,
    usage: { inputTokens: 0, outputTokens: 0 },
    blocks: new Map(),
  };
  await consumeSse(call, response, (event) => takeEvent(call, state, event, onText), 'message_stop');
  return finalResponse(state);
}

/** Applies one event to `state`; true at `message_stop`. */
function takeEvent(
  call: ModelHttpCall,
  state: StreamState,
  event: SseEvent,
  onText: ((text: string) => void) | undefined,
): boolean {
  const data = parseJsonText(call, event.data, 'a stream event is not JSON');
  if (!isRecord(data)) throw malformedError(call, 'a stream event is not an object', event.data);
  const type = typeof data.type === 'string' ? data.type : event.event;
  switch (type) {
    case 'message_start':
      takeMessageStart(state, data.message);
      return false;
    case 'content_block_start': {
      const block = startBlock(call, data.content_block, event);
      state.blocks.set(blockIndex(call, data, event), block);
      if (block.kind === 'text' && block.text !== '') onText?.(block.text);
      return false;
    }
    case 'content_block_delta':
      takeDelta(call, state.blocks.get(blockIndex(call, data, event)), data.delta, event, onText);
      return false;
    case 'content_block_stop':
      stopBlock(state.blocks.get(blockIndex(call, data, event)));
      return false;
    case 'message_delta':
      if (isRecord(data.delta) && typeof data.delta.stop_reason === 'string')
        state.stopReason = data.delta.stop_reason;
      state.usage = usageOf(data.usage, state.usage);
      return false;
    case 'message_stop':
      return true;
    case 'error':
      throw streamedError(call, data.error);
    default:
      // `ping`, and events this adapter does not know yet.
      return false;
  }
}

function takeMessageStart(state: StreamState, message: unknown): void {
  if (!isRecord(message)) return;
  if (typeof message.model === 'string' && message.model !== '') state.model = message.model;
  state.usage = usageOf(message.usage, state.usage);
}

function blockIndex(call: ModelHttpCall, data: Record<string, unknown>, event: SseEvent): number {
  if (typeof data.index !== 'number')
    throw malformedError(call, 'a content block event lacks its index', event.data);
  return data.index;
}

function startBlock(call: ModelHttpCall, block: unknown, event: SseEvent): PartialBlock {
  if (!isRecord(block)) throw malformedError(call, 'content_block_start lacks its content_block', event.data);
  if (block.type === 'text') return { kind: 'text', text: typeof block.text === 'string' ? block.text : '' };
  if (block.type !== 'tool_use') return { kind: 'other' };
  if (typeof block.id !== 'string' || typeof block.name !== 'string' || block.name === '')
    throw malformedError(call, 'a tool_use block lacks its id or name', event.data);
  return { kind: 'tool', id: block.id, name: block.name, json: '' };
}

function takeDelta(
  call: ModelHttpCall,
  block: PartialBlock | undefined,
  delta: unknown,
  event: SseEvent,
  onText: ((text: string) => void) | undefined,
): void {
  if (!isRecord(delta)) throw malformedError(call, 'content_block_delta lacks its delta', event.data);
  if (delta.type === 'text_delta' && typeof delta.text === 'string') {
    if (block?.kind !== 'text')
      throw malformedError(call, 'a text delta for a block that is not text', event.data);
    block.text += delta.text;
    if (delta.text !== '') onText?.(delta.text);
  } else if (delta.type === 'input_json_delta' && typeof delta.partial_json === 'string') {
    if (block?.kind !== 'tool')
      throw malformedError(call, 'a json delta for a block that is not tool_use', event.data);
    block.json += delta.partial_json;
  }
}

/** Parses a tool block's arguments once its JSON is complete. */
function stopBlock(block: PartialBlock | undefined): void {
  if (block?.kind === 'tool' && block.input === undefined) block.input = parseToolArguments(block.json);
}

/** An `error` event: `{ type: 'error', error: { type, message } }`. */
function streamedError(call: ModelHttpCall, error: unknown): Error {
  const record = isRecord(error) ? error : {};
  const type = typeof record.type === 'string' ? record.type : 'error';
  const message = typeof record.message === 'string' ? record.message : sampleOf(error);
  return modelHttpError(call, type === 'overloaded_error' ? 529 : 500, message, { type });
}

function finalResponse(state: StreamState): ModelResponse {
  const blocks = [...state.blocks.entries()].sort(([a], [b]) => a - b).map(([, block]) => block);
  let text = '';
  const toolCalls: ToolCall[] = [];
  for (const block of blocks) {
    if (block.kind === 'text') text += block.text;
    else if (block.kind === 'tool') {
      stopBlock(block);
      toolCalls.push({ id: block.id, name: block.name, arguments: block.input });
    }
  }
  return {
    text,
    toolCalls,
    stopReason: stopReasonOf(state.stopReason),
    usage: state.usage,
    model: state.model,
  };
}
