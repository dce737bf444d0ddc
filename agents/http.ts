/**
 * HTTP plumbing shared by the model adapters (`openai.ts`, `anthropic.ts`): option checks, one POST of
 * JSON under a deadline that covers the whole call, the mapping of every failure to a `TroupeError`,
 * and a Server-Sent Events reader. Nothing here logs, and the API key never reaches an error.
 */

import { createParser } from 'eventsource-parser';
import { invalidOption, TroupeError } from '../protocols/index.js';
import { parseRetryAfter, withDeadline } from '../supervisors/index.js';
import { type GuardedModelOptions, guardedModel } from './guarded.js';
import type { ModelCallOptions, ModelPort, ModelRequest, ModelResponse } from './model.js';

/** The `fetch` an adapter calls: the global one by default; inject another to proxy or record calls. */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Options both HTTP model adapters take. */
export interface HttpModelOptions {
  /** The model, as the provider names it (`gpt-4o-mini`, `claude-sonnet-4-5`, `llama3.2`). Required. */
  readonly model: string;
  /** The API's root URL; each adapter has its own default. */
  readonly baseUrl?: string;
  /** The API key; each adapter reads its environment variable when absent. `''` means none. */
  readonly apiKey?: string;
  /** Streams the answer (Server-Sent Events), calling `onText` per piece of text. Defaults to true. */
  readonly stream?: boolean;
  /** Deadline of the whole call, reading the streamed answer included, in ms. Defaults to 60 000. */
  readonly timeoutMs?: number;
  /** The most output tokens when a request does not say. */
  readonly maxTokens?: number;
  /** Extra HTTP headers, sent after (and so over) the adapter's own. */
  readonly headers?: Readonly<Record<string, string>>;
  /** The fetch to call. Defaults to the global `fetch`. */
  readonly fetch?: FetchLike;
  /**
   * The guard around every call (see `guardedModel`): a circuit breaker that counts provider
   * failures, and retries of them honouring `Retry-After`; give `system` to publish its transitions
   * and `bulkhead` to bound its calls. One model object, one guard, shared by every agent using it.
   * Defaults to a breaker and 3 attempts; false for none.
   */
  readonly guard?: GuardedModelOptions | false;
}

/** {@link HttpModelOptions} checked, with their defaults applied. */
export interface ResolvedHttpOptions {
  readonly model: string;
  /** Without a trailing slash. */
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  readonly stream: boolean;
  readonly timeoutMs: number;
  readonly maxTokens: number | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly fetch: FetchLike;
}

/** The defaults of {@link HttpModelOptions} common to both adapters. */
export const httpModelDefaults = { stream: true, timeoutMs: 60_000 } as const;

/** The longest deadline `setTimeout` can hold (about 24.8 days). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * Checks `options` and applies the defaults; `fallback` gives the adapter's default base URL and key.
 * @throws TroupeError `ERR_INVALID_OPTION` naming the first bad option (never echoing the key).
 */
export function resolveHttpOptions(
  options: HttpModelOptions,
  fallback: {
    readonly baseUrl: string;
    readonly apiKey: string | undefined;
    /** The environment variable the key comes from. */
    readonly apiKeyVariable: string;
    /** The provider's own API: the one base URL that surely needs a key. */
    readonly providerUrl: string;
  },
): ResolvedHttpOptions {
  if (!isRecord(options)) throw invalidOption('options', 'must be an object');
  const { model, stream = httpModelDefaults.stream, timeoutMs = httpModelDefaults.timeoutMs } = options;
  if (typeof model !== 'string' || model.trim() === '')
    throw invalidOption('model', 'must be a non-empty string', model);
  if (typeof stream !== 'boolean') throw invalidOption('stream', 'must be a boolean', stream);
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || timeoutMs > MAX_TIMEOUT_MS)
    throw invalidOption('timeoutMs', `must be a number of ms in (0, ${MAX_TIMEOUT_MS}]`, timeoutMs);
  if (options.maxTokens !== undefined) checkMaxTokens('maxTokens', options.maxTokens);
  if (options.fetch !== undefined && typeof options.fetch !== 'function')
    throw invalidOption('fetch', 'must be a function', options.fetch);
  const baseUrl = resolveBaseUrl(options.baseUrl ?? fallback.baseUrl);
  const apiKey = resolveApiKey(options.apiKey === undefined ? fallback.apiKey : options.apiKey);
  // Other servers (Ollama, vLLM, a proxy) may need no key: they say so with a 401 if they do.
  if (apiKey === undefined && new URL(baseUrl).host === new URL(fallback.providerUrl).host) {
    throw invalidOption(
      'apiKey',
      `is missing: set ${fallback.apiKeyVariable} or pass \`apiKey\` (a local server through \`baseUrl\`, such as Ollama at http://localhost:11434/v1, needs none)`,
    );
  }
  return {
    model,
    baseUrl,
    apiKey,
    stream,
    timeoutMs,
    maxTokens: options.maxTokens,
    headers: resolveHeaders(options.headers),
    fetch: options.fetch ?? ((input, init) => fetch(input, init)),
  };
}

/**
 * Checks a token limit: a positive integer.
 * @throws TroupeError `ERR_INVALID_OPTION` naming `option`.
 */
export function checkMaxTokens(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    throw invalidOption(option, 'must be a positive integer', value);
  return value;
}

function resolveBaseUrl(baseUrl: unknown): string {
  if (typeof baseUrl !== 'string') throw invalidOption('baseUrl', 'must be a string', baseUrl);
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw invalidOption('baseUrl', 'must be an absolute URL', baseUrl);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalidOption('baseUrl', 'must be an http or https URL', baseUrl);
  return baseUrl.replace(/\/+$/, '');
}

function resolveApiKey(apiKey: unknown): string | undefined {
  if (apiKey === undefined) return undefined;
  // The key is never passed as the option's value: it would land in the error's details.
  if (typeof apiKey !== 'string') throw invalidOption('apiKey', 'must be a string');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(apiKey)) throw invalidOption('apiKey', 'must not hold control characters');
  return apiKey === '' ? undefined : apiKey;
}

function resolveHeaders(headers: unknown): Readonly<Record<string, string>> {
  if (headers === undefined) return {};
  if (!isRecord(headers)) throw invalidOption('headers', 'must be an object of strings');
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string') throw invalidOption(`headers.${name}`, 'must be a string', value);
  }
  return { ...(headers as Record<string, string>) };
}

/** One HTTP call of a model: where it goes, what it carries, and its limits. */
export interface ModelHttpCall {
  /** The adapter's name (`openai:gpt-4o-mini`), put in every error's details. */
  readonly provider: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Sent as JSON. */
  readonly body: unknown;
  readonly timeoutMs: number;
  readonly fetch: FetchLike;
  /** Strings (the API key) replaced by `[redacted]` wherever an error could carry them. */
  readonly secrets: readonly string[];
}

/**
 * POSTs `call.body` as JSON and hands the response (status < 400) to `read`, all under the deadline
 * `call.timeoutMs` and the caller's `signal`. When either ends the call, the HTTP request is aborted.
 *
 * @throws TroupeError `ERR_MODEL_HTTP` for a status >= 400 (`details.status`, `error`, `retryAfterMs`),
 * `ERR_MODEL_UNREACHABLE` when fetch rejects (`details.notSent` for a refused connection),
 * `ERR_CALL_TIMEOUT` when the deadline passes, whatever `read` throws, or the signal's reason when the
 * caller aborts.
 */
export async function callModelHttp<T>(
  call: ModelHttpCall,
  options: ModelCallOptions | undefined,
  read: (response: Response) => Promise<T>,
): Promise<T> {
  const payload = JSON.stringify(call.body);
  // On the real clock: the deadline is for a request to a real server over a real network.
  return withDeadline(async (signal) => read(await send(call, payload, signal)), {
    timeoutMs: call.timeoutMs,
    signal: options?.signal,
    timeout: () => timeoutError(call),
  });
}

function timeoutError(call: Pick<ModelHttpCall, 'provider' | 'timeoutMs'>): TroupeError {
  return new TroupeError('ERR_CALL_TIMEOUT', `${call.provider} did not answer within ${call.timeoutMs} ms`, {
    details: { provider: call.provider, timeoutMs: call.timeoutMs },
  });
}

async function send(call: ModelHttpCall, payload: string, signal: AbortSignal): Promise<Response> {
  let response: Response;
  try {
    response = await call.fetch(call.url, {
      method: 'POST',
      headers: { ...call.headers },
      body: payload,
      signal,
    });
  } catch (error) {
    throw unreachableError(call, error);
  }
  if (response.status >= 400) throw await httpError(call, response);
  return response;
}

function unreachableError(call: ModelHttpCall, cause: unknown): TroupeError {
  const refused = errorCodeInChain(cause) === 'ECONNREFUSED';
  const error = new TroupeError(
    'ERR_MODEL_UNREACHABLE',
    refused ? `${call.provider} refused the connection` : `${call.provider} could not be reached`,
    {
      cause: scrubCause(cause, call.secrets),
      details: refused ? { provider: call.provider, notSent: true } : { provider: call.provider },
    },
  );
  return error;
}

/** The first `code` property along the cause chain (and an AggregateError's errors), if any. */
function errorCodeInChain(error: unknown, depth = 0): string | undefined {
  if (!isRecord(error) || depth > 5) return undefined;
  if (typeof error.code === 'string') return error.code;
  if (Array.isArray(error.errors)) {
    for (const inner of error.errors) {
      const code = errorCodeInChain(inner, depth + 1);
      if (code !== undefined) return code;
    }
  }
  return errorCodeInChain(error.cause, depth + 1);
}

/** The most characters of the provider's error text kept in `details.error`. */
const ERROR_TEXT_CHARS = 500;

async function httpError(call: ModelHttpCall, response: Response): Promise<TroupeError> {
  let text = '';
  try {
    text = await response.text();
  } catch {
    // The status says enough; a body that breaks off adds nothing.
  }
  const described = describeErrorBody(text);
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
  return modelHttpError(call, response.status, described.message, {
    ...(described.type === undefined ? {} : { type: described.type }),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

/**
 * An `ERR_MODEL_HTTP` error for `status` with the provider's error text (redacted, at most 500
 * characters) and `extra` details (`type`, `retryAfterMs`).
 */
export function modelHttpError(
  call: Pick<ModelHttpCall, 'provider' | 'secrets'>,
  status: number,
  errorText: string,
  extra: Record<string, unknown> = {},
): TroupeError {
  const error = truncate(redact(errorText, call.secrets), ERROR_TEXT_CHARS);
  const summary = error === '' ? '' : `: ${truncate(error, 200)}`;
  return new TroupeError('ERR_MODEL_HTTP', `${call.provider} answered HTTP ${status}${summary}`, {
    details: { status, provider: call.provider, error, ...extra },
  });
}

/** The message (and type) of an error body: OpenAI's and Anthropic's `{error: {message, type}}`, or the text. */
function describeErrorBody(text: string): { message: string; type?: string } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { message: text.trim() };
  }
  const error = isRecord(body) ? body.error : undefined;
  if (isRecord(error) && typeof error.message === 'string') {
    return typeof error.type === 'string'
      ? { message: error.message, type: error.type }
      : { message: error.message };
  }
  if (typeof error === 'string') return { message: error };
  if (isRecord(body) && typeof body.message === 'string') return { message: body.message };
  return { message: text.trim() };
}

/** The most characters of the offending text kept in `details.sample`. */
const SAMPLE_CHARS = 200;

/** An `ERR_MODEL_MALFORMED` error saying what is wrong, with the start of the offending text. */
export function malformedError(
  call: Pick<ModelHttpCall, 'provider' | 'secrets'>,
  problem: string,
  sample: string,
): TroupeError {
  return new TroupeError('ERR_MODEL_MALFORMED', `${call.provider}: ${problem}`, {
    details: { provider: call.provider, sample: truncate(redact(sample, call.secrets), SAMPLE_CHARS) },
  });
}

/**
 * Reads the whole body as JSON.
 * @throws TroupeError `ERR_MODEL_MALFORMED` when it is not JSON, `ERR_MODEL_UNREACHABLE` when the body
 * breaks off.
 */
export async function readJsonBody(call: ModelHttpCall, response: Response): Promise<unknown> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throw brokenOff(call, error);
  }
  return parseJsonText(call, text, 'the answer is not JSON');
}

/**
 * Parses `text` as JSON.
 * @throws TroupeError `ERR_MODEL_MALFORMED` with `problem` and the start of the text.
 */
export function parseJsonText(
  call: Pick<ModelHttpCall, 'provider' | 'secrets'>,
  text: string,
  problem: string,
): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw malformedError(call, problem, text);
  }
}

/** The start of a value as JSON text, for `details.sample`. */
export function sampleOf(value: unknown): string {
  try {
    return truncate(JSON.stringify(value) ?? String(value), SAMPLE_CHARS * 4);
  } catch {
    return String(value);
  }
}

function brokenOff(call: ModelHttpCall, cause: unknown): TroupeError {
  return new TroupeError('ERR_MODEL_UNREACHABLE', `${call.provider}: the connection broke off mid-answer`, {
    cause: scrubCause(cause, call.secrets),
    details: { provider: call.provider },
  });
}

/** One Server-Sent Event: its type (`message` when unnamed) and its data lines joined by `\n`. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

/**
 * An incremental Server-Sent Events parser (the WHATWG `text/event-stream` format), on
 * `eventsource-parser`. Push the body's bytes in chunks of any size: UTF-8 characters and lines may
 * be split between chunks. Lines end in `\n`, `\r\n` or `\r`; an event ends at a blank line; `data:`
 * lines are joined with `\n`; comments (`:`), `id:` and `retry:` are skipped; an event without data is
 * not dispatched; an unfinished event at the end of the stream is dropped.
 *
 * @example
 * ```ts
 * const parser = new SseParser();
 * parser.push(new TextEncoder().encode('event: ping\ndata: {}\n\n')); // [{ event: 'ping', data: '{}' }]
 * ```
 */
export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  /** The events completed by the text fed so far and not yet returned. */
  private events: SseEvent[] = [];
  /** The text fed so far ends in `\r`. */
  private endsInCr = false;
  private readonly parser = createParser({
    onEvent: ({ event, data }) => {
      this.events.push({ event: event || 'message', data });
    },
  });

  /** Feeds the next bytes; returns the events they complete. */
  push(bytes: Uint8Array): SseEvent[] {
    return this.feed(this.decoder.decode(bytes, { stream: true }));
  }

  /** Ends the stream; returns the events the last bytes complete. An unfinished event is dropped. */
  finish(): SseEvent[] {
    const events = this.feed(this.decoder.decode());
    // eventsource-parser holds a final `\r` until it sees whether a `\n` follows; at the end of the
    // stream none can, so that `\r` ends its line (and may end an event). The `\n` completes a
    // `\r\n` and so adds no line of its own.
    if (this.endsInCr) events.push(...this.feed('\n'));
    // Without `consume`, what is left of an unfinished event is dropped, as the format says.
    this.parser.reset();
    this.endsInCr = false;
    return events;
  }

  private feed(text: string): SseEvent[] {
    if (text.length > 0) {
      this.parser.feed(text);
      this.endsInCr = text.charCodeAt(text.length - 1) === 13;
    }
    const events = this.events;
    this.events = [];
    return events;
  }
}

/**
 * The Server-Sent Events of a response body, as they arrive. Stopping early (a `break`) cancels the
 * body.
 * @throws TroupeError `ERR_MODEL_UNREACHABLE` when the body breaks off, `ERR_MODEL_MALFORMED` when there
 * is no body.
 */
export async function* readSseEvents(call: ModelHttpCall, response: Response): AsyncGenerator<SseEvent> {
  if (response.body === null) throw malformedError(call, 'the answer has no body', '');
  const reader = response.body.getReader();
  const parser = new SseParser();
  let done = false;
  try {
    while (!done) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        done = true;
        throw brokenOff(call, error);
      }
      done = chunk.done;
      yield* chunk.done ? parser.finish() : parser.push(chunk.value);
    }
  } finally {
    if (!done) reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * Feeds each event of a streamed answer to `take` until it returns true (the end marker).
 * @throws TroupeError `ERR_MODEL_MALFORMED` when the stream ends before `take` saw its end marker;
 * `ERR_MODEL_UNREACHABLE` when it breaks off; whatever `take` throws.
 */
export async function consumeSse(
  call: ModelHttpCall,
  response: Response,
  take: (event: SseEvent) => boolean,
  endMarker: string,
): Promise<void> {
  let last = '';
  for await (const event of readSseEvents(call, response)) {
    if (take(event)) return;
    last = event.data;
  }
  throw malformedError(call, `the stream ended before ${endMarker}`, last);
}

/**
 * Parses tool-call arguments: the JSON value, `{}` for empty text, or the raw text when it is not
 * JSON (the tool's schema refuses it later, and the model sees why).
 */
export function parseToolArguments(text: string): unknown {
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** True for a non-null object that is not an array. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function truncate(text: string, chars: number): string {
  return text.length <= chars ? text : text.slice(0, chars);
}

/** `text` with every secret replaced by `[redacted]`. */
function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret !== '') out = out.split(secret).join('[redacted]');
  return out;
}

/**
 * The cause itself when no secret appears in its chain (message, stack, code); otherwise a copy of the
 * chain (plain Errors keeping name and code) with the secrets redacted.
 */
function scrubCause(cause: unknown, secrets: readonly string[], depth = 0): unknown {
  if (secrets.length === 0 || !mentions(cause, secrets, depth)) return cause;
  if (!(cause instanceof Error)) return redact(textOf(cause), secrets);
  const copy = new Error(
    redact(cause.message, secrets),
    cause.cause === undefined || depth >= 5
      ? undefined
      : { cause: scrubCause(cause.cause, secrets, depth + 1) },
  );
  copy.name = cause.name;
  copy.stack = redact(cause.stack ?? '', secrets);
  const code = (cause as { code?: unknown }).code;
  if (typeof code === 'string') Object.assign(copy, { code: redact(code, secrets) });
  return copy;
}

function mentions(cause: unknown, secrets: readonly string[], depth: number): boolean {
  if (depth > 5) return false;
  const text =
    cause instanceof Error
      ? `${cause.name} ${cause.message} ${cause.stack ?? ''} ${textOf((cause as { code?: unknown }).code)}`
      : textOf(cause);
  if (secrets.some((secret) => secret !== '' && text.includes(secret))) return true;
  return cause instanceof Error && cause.cause !== undefined && mentions(cause.cause, secrets, depth + 1);
}

function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** How an adapter speaks its API: where it posts, its own headers, the body, and how to read answers. */
export interface HttpModelApi {
  /** The path after the base URL (`/chat/completions`). */
  readonly path: string;
  /** The adapter's own headers (its authentication, a version); the caller's `headers` go over them. */
  readonly headers: Readonly<Record<string, string>>;
  /** The JSON body of one request. */
  body(request: ModelRequest): unknown;
  /** Reads a streamed answer (Server-Sent Events), calling `onText` per piece of text. */
  readStream(
    call: ModelHttpCall,
    response: Response,
    onText: ((text: string) => void) | undefined,
  ): Promise<ModelResponse>;
  /** Reads a whole JSON answer. */
  readWhole(call: ModelHttpCall, response: Response): Promise<ModelResponse>;
}

/** A model port over an HTTP API, guarded (see {@link HttpModelOptions.guard}) unless `guard` is false. */
export function httpModelPort(
  name: string,
  options: ResolvedHttpOptions,
  guard: GuardedModelOptions | false | undefined,
  api: HttpModelApi,
): ModelPort {
  const headers = {
    'content-type': 'application/json',
    accept: options.stream ? 'text/event-stream' : 'application/json',
    ...api.headers,
    ...options.headers,
  };
  const secrets = options.apiKey === undefined ? [] : [options.apiKey];
  const complete = (request: ModelRequest, callOptions?: ModelCallOptions): Promise<ModelResponse> => {
    const call: ModelHttpCall = {
      provider: name,
      url: `${options.baseUrl}${api.path}`,
      headers,
      body: api.body(request),
      timeoutMs: options.timeoutMs,
      fetch: options.fetch,
      secrets,
    };
    return callModelHttp(call, callOptions, (response) =>
      options.stream ? api.readStream(call, response, callOptions?.onText) : api.readWhole(call, response),
    );
  };
  // Every call out of the process goes through a breaker, unless asked otherwise.
  return guard === false ? { name, complete } : guardedModel({ name, complete }, guard ?? {});
}
