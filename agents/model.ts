/**
 * The model port: what an agent asks a language model, and what comes back, in one shape for every
 * provider. Adapters translate it to a wire format (OpenAI Chat Completions, Anthropic Messages) or
 * answer from a script.
 */

/** A tool call the model asked for: its id (to pair the result), the tool and the arguments. */
export interface ToolCall {
  readonly id: string;
  readonly name: string;
  /** The arguments as the model gave them, parsed from JSON (unchecked: tools validate them). */
  readonly arguments: unknown;
}

/** One message of a conversation. */
export type ChatMessage =
  | { readonly role: 'user'; readonly content: string }
  | { readonly role: 'assistant'; readonly content: string; readonly toolCalls?: readonly ToolCall[] }
  | {
      readonly role: 'tool';
      readonly toolCallId: string;
      readonly name: string;
      readonly content: string;
      /** True when the content is an error (invalid arguments, a tool that threw or timed out). */
      readonly isError?: boolean;
    };

/** A tool as the model sees it: a name, what it does, and its arguments as a JSON Schema. */
export interface ToolSpec {
  readonly name: string;
  readonly description: string;
  readonly parameters: Readonly<Record<string, unknown>>;
}

/** What an agent asks a model. Plain JSON data, so it can be recorded and compared. */
export interface ModelRequest {
  /** The system prompt. */
  readonly system?: string;
  readonly messages: readonly ChatMessage[];
  readonly tools?: readonly ToolSpec[];
  /** The most tokens of output. Adapters use their default when absent. */
  readonly maxTokens?: number;
  readonly temperature?: number;
}

/** Tokens a call used. */
export interface TokenUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/** Why the model stopped. */
export type StopReason = 'end' | 'tool_calls' | 'max_tokens' | 'other';

/** What a model answered. Plain JSON data. */
export interface ModelResponse {
  /** The text of the answer ('' when it only calls tools). */
  readonly text: string;
  readonly toolCalls: readonly ToolCall[];
  readonly stopReason: StopReason;
  readonly usage: TokenUsage;
  /** The model that answered, as the provider names it. */
  readonly model: string;
}

/** Options of one model call. */
export interface ModelCallOptions {
  /** Aborting it cancels the HTTP request. */
  readonly signal?: AbortSignal;
  /** Called with each piece of text as it streams in (streaming adapters only). */
  readonly onText?: (text: string) => void;
  /** The address of the agent making the call, when an agent makes it (for traces and logs). */
  readonly agent?: string;
  /** The agent's run the call belongs to, when an agent makes it. */
  readonly run?: string;
}

/**
 * A language model. `complete` rejects with a `TroupeError`: `ERR_MODEL_HTTP` (with `status` and,
 * for a 429 or 503, `retryAfterMs`), `ERR_MODEL_UNREACHABLE`, `ERR_MODEL_MALFORMED`,
 * `ERR_CALL_TIMEOUT`, or the signal's reason when the caller aborted.
 */
export interface ModelPort {
  /** Names the provider and model, for breakers, usage accounting and events (`openai:gpt-4o-mini`). */
  readonly name: string;
  complete(request: ModelRequest, options?: ModelCallOptions): Promise<ModelResponse>;
}
