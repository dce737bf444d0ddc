/**
 * The OpenAI-compatible model adapter: Chat Completions (`POST /chat/completions`), streamed or not.
 * It serves OpenAI and the servers that speak its API: vLLM, Ollama, llama.cpp's server, LM Studio.
 */
import { invalidOption } from '../protocols/index.js';
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

/** Options of {@link openAIModel}. */
export interface OpenAIModelOptions extends HttpModelOptions {
  /**
   * The body field of the token limit: `max_tokens` (the default, what local servers read) or
   * `max_completion_tokens` (what OpenAI's reasoning models require).
   */
  readonly maxTokensField?: 'max_tokens' | 'max_completion_tokens';
}

/** OpenAI's public API, the base URL when neither the option nor `OPENAI_BASE_URL` gives one. */
export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/**
 * A {@link ModelPort} speaking OpenAI's Chat Completions API to `${baseUrl}/chat/completions`.
 * `baseUrl` defaults to `OPENAI_BASE_URL`, then OpenAI's API; `apiKey` to `OPENAI_API_KEY`. OpenAI's
 * API needs a key; another server (Ollama, vLLM, llama.cpp, LM Studio) may need none:
 * `Authorization: Bearer <key>` is sent only with a key.
 *
 * `complete` rejects with `ERR_MODEL_HTTP` (status >= 400; `retryAfterMs` from `Retry-After`),
 * `ERR_MODEL_UNREACHABLE` (`notSent` when the connection was refused), `ERR_MODEL_MALFORMED`,
 * `ERR_CALL_TIMEOUT` (`timeoutMs` passed), or the signal's reason when the caller aborts.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for bad options, and for a missing key on OpenAI's API
 * (naming `OPENAI_API_KEY`).
 * @example
 * ```ts
 * const model = openAIModel({ model: 'llama3.2', baseUrl: 'http://localhost:11434/v1' });
 * const answer = await model.complete(
 *   { system: 'Be brief.', messages: [{ role: 'user', content: 'Hi' }] },
 *   { onText: (piece) => process.stdout.write(piece) },
 * );
 * ```
 */
export function openAIModel(options: OpenAIModelOptions): ModelPort {
  const resolved = resolveHttpOptions(options, {
    baseUrl: process.env.OPENAI_BASE_URL ?? OPENAI_DEFAULT_BASE_URL,
    apiKey: process.env.OPENAI_API_KEY,
    apiKeyVariable: 'OPENAI_API_KEY',
    providerUrl: OPENAI_DEFAULT_BASE_URL,
  });
  const maxTokensField = options.maxTokensField ?? 'max_tokens';
  if (maxTokensField !== 'max_tokens' && maxTokensField !== 'max_completion_tokens')
    throw invalidOption('maxTokensField', "must be 'max_tokens' or 'max_completion_tokens'", maxTokensField);
  const name = `openai:${resolved.model}`;
  return httpModelPort(name, resolved, options.guard, {
    path: '/chat/completions',
    headers: resolved.apiKey === undefined ? {} : { authorization: `Bearer ${resolved.apiKey}` },
    body: (request) => openAIBody(request, resolved, maxTokensField),
    readStream: (call, response, onText) => readStream(call, response, resolved.model, onText),
    readWhole: (call, response) => readWhole(call, response, resolved.model),
  });
}

// ---------------------------------------------------------------------------------------------------
// The request

/** A message of the Chat Completions wire format. */
type OpenAIMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: OpenAIToolCall[] }
  | { role: 'tool'; tool_call_id: string; content: string };

interface OpenAIToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

function openAIBody(
  request: ModelRequest,
  options: ResolvedHttpOptions,
  maxTokensField: 'max_tokens' | 'max_completion_tokens',
): Record<string, unknown> {
  const maxTokens =
    request.maxTokens === undefined ? options.maxTokens : checkMaxTokens('maxTokens', request.maxTokens);
  const tools = request.tools ?? [];
  return {
    model: options.model,
    messages: openAIMessages(request),
    ...(tools.length === 0 ? {} : { tools: tools.map(openAITool) }),
    ...(maxTokens === undefined ? {} : { [maxTokensField]: maxTokens }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    stream: options.stream,
    ...(options.stream ? { stream_options: { include_usage: true } } : {}),
  };
}

function openAIMessages(request: ModelRequest): OpenAIMessage[] {
  const system: OpenAIMessage[] =
    request.system === undefined ? [] : [{ role: 'system', content: request.system }];
  return [...system, ...request.messages.map(openAIMessage)];
}

function openAIMessage(message: ChatMessage): OpenAIMessage {
  switch (message.role) {
    case 'user':
      return { role: 'user', content: message.content };
    case 'assistant': {
      const calls = message.toolCalls ?? [];
      if (calls.length === 0) return { role: 'assistant', content: message.content };
      return {
        role: 'assistant',
        content: message.content === '' ? null : message.content,
        tool_calls: calls.map(openAIToolCall),
      };
    }
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
  }
}

/** Arguments kept raw (they did not parse) go back as they came; others as JSON. */
function openAIToolCall(call: ToolCall): OpenAIToolCall {
  const args = typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments ?? {});
  return { id: call.id, type: 'function', function: { name: call.name, arguments: args } };
}

function openAITool(tool: ToolSpec): Record<string, unknown> {
  return {
    type: 'function',
    function: { name: tool.name, description: tool.description, parameters: tool.parameters },
  };
}

// ---------------------------------------------------------------------------------------------------
// A whole answer

async function readWhole(call: ModelHttpCall, response: Response, model: string): Promise<ModelResponse> {
  const body = await readJsonBody(call, response);
  const choice = isRecord(body) && Array.isArray(body.choices) ? body.choices[0] : undefined;
  const message = isRecord(choice) ? choice.message : undefined;
  if (!isRecord(body) || !isRecord(choice) || !isRecord(message))
    throw malformedError(call, 'the answer lacks choices[0].message', sampleOf(body));
  const content = message.content;
  if (content !== undefined && content !== null && typeof content !== 'string')
    throw malformedError(call, 'choices[0].message.content is not a string', sampleOf(body));
  return {
    text: content ?? '',
    toolCalls: wholeToolCalls(call, message.tool_calls, body),
    stopReason: stopReasonOf(choice.finish_reason),
    usage: usageOf(body.usage),
    model: typeof body.model === 'string' && body.model !== '' ? body.model : model,
  };
}

function wholeToolCalls(call: ModelHttpCall, raw: unknown, body: unknown): ToolCall[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw malformedError(call, 'tool_calls is not an array', sampleOf(body));
  return raw.map((entry, index) => {
    const fn = isRecord(entry) ? entry.function : undefined;
    if (!isRecord(entry) || !isRecord(fn) || typeof fn.name !== 'string' || fn.name === '')
      throw malformedError(call, `tool_calls[${index}] lacks function.name`, sampleOf(body));
    const args = typeof fn.arguments === 'string' ? parseToolArguments(fn.arguments) : (fn.arguments ?? {});
    return { id: idOf(entry.id, index), name: fn.name, arguments: args };
  });
}

/** The call's id; some servers leave it out, so one is made from the position. */
function idOf(id: unknown, index: number): string {
  return typeof id === 'string' && id !== '' ? id : `call_${index}`;
}

function stopReasonOf(reason: unknown): StopReason {
  switch (reason) {
    case 'stop':
      return 'end';
    case 'tool_calls':
    case 'function_call':
      return 'tool_calls';
    case 'length':
      return 'max_tokens';
    default:
      return 'other';
  }
}

function usageOf(usage: unknown): TokenUsage {
  if (!isRecord(usage)) return { inputTokens: 0, outputTokens: 0 };
  return { inputTokens: countOf(usage.prompt_tokens), outputTokens: countOf(usage.completion_tokens) };
}

function countOf(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0;
}

// ---------------------------------------------------------------------------------------------------
// A streamed answer

/** A tool call being assembled from its deltas. */
interface PartialToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** What the chunks of a stream have said so far. */
interface StreamState {
  text: string;
  model: string;
  finishReason: unknown;
  usage: TokenUsage;
  readonly toolCalls: Map<number, PartialToolCall>;
}

async function readStream(
  call: ModelHttpCall,
  response: Response,
  model: string,
  onText: ((text: string) => void) | undefined,
): Promise<ModelResponse> {
  const state: StreamState = {
    text: '',
    model,
    finishReason: undefined,
    usage: { inputTokens: 0, outputTokens: 0 },
    toolCalls: new Map(),
  };
  await consumeSse(call, response, (event) => takeEvent(call, state, event, onText), 'data: [DONE]');
  return finalResponse(call, state);
}

/** Applies one event to `state`; true at `[DONE]`. */
function takeEvent(
  call: ModelHttpCall,
  state: StreamState,
  event: SseEvent,
  onText: ((text: string) => void) | undefined,
): boolean {
  if (event.data.trim() === '[DONE]') return true;
  const chunk = parseJsonText(call, event.data, 'a stream event is not JSON');
  if (!isRecord(chunk)) throw malformedError(call, 'a stream event is not an object', event.data);
  if (chunk.error !== undefined) throw streamedError(call, chunk.error);
  if (typeof chunk.model === 'string' && chunk.model !== '') state.model = chunk.model;
  if (isRecord(chunk.usage)) state.usage = usageOf(chunk.usage);
  if (chunk.choices !== undefined && !Array.isArray(chunk.choices))
    throw malformedError(call, 'choices is not an array', event.data);
  for (const choice of chunk.choices ?? []) takeChoice(call, state, choice, event.data, onText);
  return false;
}

function takeChoice(
  call: ModelHttpCall,
  state: StreamState,
  choice: unknown,
  data: string,
  onText: ((text: string) => void) | undefined,
): void {
  if (!isRecord(choice)) throw malformedError(call, 'a choice is not an object', data);
  if (typeof choice.index === 'number' && choice.index !== 0) return;
  if (choice.finish_reason !== undefined && choice.finish_reason !== null)
    state.finishReason = choice.finish_reason;
  const delta = choice.delta;
  if (delta === undefined || delta === null) return;
  if (!isRecord(delta)) throw malformedError(call, 'a delta is not an object', data);
  if (typeof delta.content === 'string' && delta.content !== '') {
    state.text += delta.content;
    onText?.(delta.content);
  }
  if (delta.tool_calls === undefined || delta.tool_calls === null) return;
  if (!Array.isArray(delta.tool_calls)) throw malformedError(call, 'delta.tool_calls is not an array', data);
  delta.tool_calls.forEach((piece, position) => {
    takeToolCallDelta(call, state, piece, position, data);
  });
}

/** Adds a tool-call delta to its call (by `index`): id and name when given, arguments appended. */
function takeToolCallDelta(
  call: ModelHttpCall,
  state: StreamState,
  piece: unknown,
  position: number,
  data: string,
): void {
  if (!isRecord(piece)) throw malformedError(call, 'a tool call delta is not an object', data);
  const index = typeof piece.index === 'number' ? piece.index : position;
  let partial = state.toolCalls.get(index);
  if (partial === undefined) {
    partial = { id: '', name: '', arguments: '' };
    state.toolCalls.set(index, partial);
  }
  if (typeof piece.id === 'string' && piece.id !== '') partial.id = piece.id;
  const fn = piece.function;
  if (!isRecord(fn)) return;
  if (typeof fn.name === 'string' && fn.name !== '') partial.name = fn.name;
  if (typeof fn.arguments === 'string') partial.arguments += fn.arguments;
}

/** An error a server sent inside the stream (vLLM, for one): `{ error: { message, code } }`. */
function streamedError(call: ModelHttpCall, error: unknown): Error {
  const record = isRecord(error) ? error : {};
  const status = typeof record.code === 'number' && record.code >= 400 ? record.code : 500;
  const message = typeof record.message === 'string' ? record.message : sampleOf(error);
  return modelHttpError(call, status, message, typeof record.type === 'string' ? { type: record.type } : {});
}

function finalResponse(call: ModelHttpCall, state: StreamState): ModelResponse {
  const entries = [...state.toolCalls.entries()].sort(([a], [b]) => a - b);
  const toolCalls = entries.map(([index, partial], position) => {
    if (partial.name === '')
      throw malformedError(call, `streamed tool call ${index} has no function.name`, sampleOf(partial));
    return {
      id: idOf(partial.id, position),
      name: partial.name,
      arguments: parseToolArguments(partial.arguments),
    };
  });
  return {
    text: state.text,
    toolCalls,
    stopReason: stopReasonOf(state.finishReason),
    usage: state.usage,
    model: state.model,
  };
}
