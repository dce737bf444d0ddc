/**
 * The OpenAI-compatible adapter against a scripted local HTTP server: the request on the wire, whole
 * and streamed answers, tool calls, usage, and every failure (HTTP status, deadline, malformed
 * answers, refused connection, caller abort) with the API key never leaking.
 */
import { describe, expect, it, vi } from 'vitest';
import { retryableModelError } from '../../agents/guarded.js';
import type { ModelRequest } from '../../agents/model.js';
import { type OpenAIModelOptions, openAIModel } from '../../agents/openai.js';
import { exponential } from '../../runtime/index.js';
import { type Guard, notSent, retry } from '../../supervisors/index.js';
import {
  bytePieces,
  closedPortUrl,
  exposedTexts,
  failure,
  reply,
  sseEvent,
  useWireServer,
  within,
  withPauses,
} from './wire-server.js';

const KEY = 'sk-test-0penai-SECRET-5f2c9a71';

const server = useWireServer();

function model(options: Partial<OpenAIModelOptions> = {}) {
  return openAIModel({
    model: 'gpt-test',
    baseUrl: `${server.url}/v1`,
    apiKey: KEY,
    stream: false,
    // One HTTP attempt per call here: the default guard's retries are tested on their own.
    guard: false,
    ...options,
  });
}

const hello: ModelRequest = { messages: [{ role: 'user', content: 'Hello' }] };

/** A whole Chat Completions answer. */
function completion(message: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    model: 'gpt-test-2025',
    choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 },
    ...extra,
  };
}

/** One streamed chunk with `delta` (and a finish reason). */
function chunk(delta: Record<string, unknown>, finishReason: string | null = null) {
  return { id: 'c', model: 'gpt-test-2025', choices: [{ index: 0, delta, finish_reason: finishReason }] };
}

/** The usage chunk that `stream_options.include_usage` adds at the end. */
const usageChunk = {
  id: 'c',
  model: 'gpt-test-2025',
  choices: [],
  usage: { prompt_tokens: 21, completion_tokens: 9 },
};

/** The stream of `chunks` then `[DONE]`, cut into `size`-byte pieces with short pauses. */
function streamOf(chunks: readonly unknown[], size = 7) {
  const text = chunks.map((c) => sseEvent(c)).join('') + sseEvent('[DONE]');
  return reply.sse(withPauses(bytePieces(text, size), 1));
}

describe('openAIModel: the request on the wire', () => {
  it('POSTs to /chat/completions with the key, the headers and the mapped conversation', async () => {
    server.reply(reply.json(completion({ content: 'ok' })));
    await model({ headers: { 'x-extra': 'yes' }, maxTokens: 99 }).complete({
      system: 'Be brief.',
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: '',
          toolCalls: [
            { id: 'call_1', name: 'weather', arguments: { city: 'Paris' } },
            { id: 'call_2', name: 'weather', arguments: '{"city": Rome' },
          ],
        },
        { role: 'tool', toolCallId: 'call_1', name: 'weather', content: '18°C' },
        { role: 'tool', toolCallId: 'call_2', name: 'weather', content: 'bad arguments', isError: true },
        { role: 'assistant', content: 'Paris is 18°C.' },
        { role: 'user', content: 'Thanks' },
      ],
      tools: [{ name: 'weather', description: 'The weather of a city', parameters: { type: 'object' } }],
      temperature: 0.2,
    });
    const [request] = server.requests;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe('/v1/chat/completions');
    expect(request?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['x-extra']).toBe('yes');
    expect(request?.body).toEqual({
      model: 'gpt-test',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_2', type: 'function', function: { name: 'weather', arguments: '{"city": Rome' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
        { role: 'tool', tool_call_id: 'call_2', content: 'bad arguments' },
        { role: 'assistant', content: 'Paris is 18°C.' },
        { role: 'user', content: 'Thanks' },
      ],
      tools: [
        {
          type: 'function',
          function: { name: 'weather', description: 'The weather of a city', parameters: { type: 'object' } },
        },
      ],
      max_tokens: 99,
      temperature: 0.2,
      stream: false,
    });
  });

  it('sends no Authorization without a key, asks for usage when streaming, and honours maxTokensField', async () => {
    server.reply(streamOf([chunk({ content: 'ok' }, 'stop')]));
    await model({ apiKey: '', stream: true, maxTokensField: 'max_completion_tokens' }).complete({
      ...hello,
      maxTokens: 7,
    });
    const [request] = server.requests;
    expect(request?.headers.authorization).toBeUndefined();
    expect(request?.body).toEqual({
      model: 'gpt-test',
      messages: [{ role: 'user', content: 'Hello' }],
      max_completion_tokens: 7,
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it('refuses bad options with ERR_INVALID_OPTION, never echoing the key', () => {
    const bad: Array<[string, () => unknown]> = [
      ['model', () => openAIModel({ model: '' })],
      ['timeoutMs', () => model({ timeoutMs: 0 })],
      ['baseUrl', () => model({ baseUrl: 'not a url' })],
      ['maxTokens', () => model({ maxTokens: 1.5 })],
      ['maxTokensField', () => model({ maxTokensField: 'tokens' as 'max_tokens' })],
      ['apiKey', () => model({ apiKey: `${KEY}\n` })],
    ];
    for (const [option, make] of bad) {
      let thrown: unknown;
      try {
        make();
      } catch (error) {
        thrown = error;
      }
      expect(thrown, option).toMatchObject({ code: 'ERR_INVALID_OPTION', details: { option } });
      for (const text of exposedTexts(thrown)) expect(text).not.toContain(KEY);
    }
    expect(model().name).toBe('openai:gpt-test');
  });
});

describe('openAIModel: answers', () => {
  it('reads a whole answer: text, stop reason, usage, model', async () => {
    server.reply(reply.json(completion({ content: 'Bonjour !' })));
    expect(await model().complete(hello)).toEqual({
      text: 'Bonjour !',
      toolCalls: [],
      stopReason: 'end',
      usage: { inputTokens: 11, outputTokens: 5 },
      model: 'gpt-test-2025',
    });
  });

  it('maps length to max_tokens and a missing usage to zeros', async () => {
    const body = completion({ content: 'cut' });
    body.choices[0]!.finish_reason = 'length';
    server.reply(reply.json({ ...body, usage: undefined }));
    const answer = await model().complete(hello);
    expect(answer.stopReason).toBe('max_tokens');
    expect(answer.usage).toEqual({ inputTokens: 0, outputTokens: 0 });
  });

  it('streams text across chunk boundaries (multi-byte characters too), calling onText per delta', async () => {
    const deltas = ['Bon', 'jour, ', 'le 🌍 ', 'entier', ' ! é'];
    server.reply(
      streamOf(
        [
          chunk({ role: 'assistant', content: '' }),
          ...deltas.map((content) => chunk({ content })),
          chunk({}, 'stop'),
          usageChunk,
        ],
        5,
      ),
    );
    const seen: string[] = [];
    const answer = await model({ stream: true }).complete(hello, { onText: (text) => seen.push(text) });
    expect(seen).toEqual(deltas);
    expect(answer).toEqual({
      text: deltas.join(''),
      toolCalls: [],
      stopReason: 'end',
      usage: { inputTokens: 21, outputTokens: 9 },
      model: 'gpt-test-2025',
    });
  });

  it('assembles streamed tool calls from pieces by index; arguments that do not parse stay raw', async () => {
    server.reply(
      streamOf([
        chunk({
          role: 'assistant',
          tool_calls: [
            { index: 0, id: 'call_a', type: 'function', function: { name: 'weather', arguments: '' } },
          ],
        }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: '{"ci' } }] }),
        chunk({
          tool_calls: [
            { index: 1, id: 'call_b', type: 'function', function: { name: 'clock', arguments: '{"tz":' } },
          ],
        }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: 'ty": "Paris"}' } }] }),
        chunk({ tool_calls: [{ index: 1, function: { arguments: ' Europe' } }] }),
        chunk({}, 'tool_calls'),
        usageChunk,
      ]),
    );
    const answer = await model({ stream: true }).complete(hello);
    expect(answer.toolCalls).toEqual([
      { id: 'call_a', name: 'weather', arguments: { city: 'Paris' } },
      { id: 'call_b', name: 'clock', arguments: '{"tz": Europe' },
    ]);
    expect(answer.stopReason).toBe('tool_calls');
    expect(answer.text).toBe('');
    expect(answer.usage).toEqual({ inputTokens: 21, outputTokens: 9 });
  });

  it('reads tool calls of a whole answer', async () => {
    const body = completion({
      content: null,
      tool_calls: [
        { id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } },
        { id: 'call_2', type: 'function', function: { name: 'noop', arguments: '' } },
      ],
    });
    body.choices[0]!.finish_reason = 'tool_calls';
    server.reply(reply.json(body));
    const answer = await model().complete(hello);
    expect(answer.toolCalls).toEqual([
      { id: 'call_1', name: 'weather', arguments: { city: 'Oslo' } },
      { id: 'call_2', name: 'noop', arguments: {} },
    ]);
    expect(answer.stopReason).toBe('tool_calls');
    expect(answer.text).toBe('');
  });

  it('leaves no timer behind after a call', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const before = timers();
    server.reply(reply.json(completion({ content: 'ok' })), streamOf([chunk({ content: 'ok' }, 'stop')]));
    await model({ timeoutMs: 600_000 }).complete(hello);
    await model({ timeoutMs: 600_000, stream: true }).complete(hello);
    expect(timers()).toBeLessThanOrEqual(before);
  });
});

describe('openAIModel: HTTP errors and retries', () => {
  it('maps a 429 with Retry-After to ERR_MODEL_HTTP with retryAfterMs, retryable', async () => {
    server.reply(
      reply.status(429, {
        headers: { 'retry-after': '1' },
        body: { error: { message: 'Rate limit reached', type: 'requests' } },
      }),
    );
    const error = await failure(model().complete(hello));
    expect(error.code).toBe('ERR_MODEL_HTTP');
    expect(error.details).toMatchObject({
      status: 429,
      provider: 'openai:gpt-test',
      error: 'Rate limit reached',
      retryAfterMs: 1000,
    });
    expect(retryableModelError(error)).toBe(true);
  });

  it('retry() honours Retry-After: the second request comes at least a second after the 429', async () => {
    server.reply(
      reply.status(429, { headers: { 'retry-after': '1' } }),
      reply.json(completion({ content: 'at last' })),
    );
    const answer = await retry(() => model().complete(hello), {
      attempts: 2,
      idempotent: true,
      retryable: retryableModelError,
      backoff: exponential({ baseMs: 1, maxMs: 1, jitter: false }),
    });
    expect(answer.text).toBe('at last');
    const [first, second] = server.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
  });

  it('is guarded by default: a 503 is retried, a 400 is not, and repeated failures open its breaker', async () => {
    const guarded = model({
      guard: {
        retry: { attempts: 2, backoff: exponential({ baseMs: 1, maxMs: 1 }) },
        breaker: { volumeThreshold: 2 },
      },
    }) as ReturnType<typeof model> & { guard: Guard };
    server.reply(reply.status(503), reply.json(completion({ role: 'assistant', content: 'second try' })));
    expect((await guarded.complete(hello)).text).toBe('second try');
    expect(server.requests).toHaveLength(2);
    server.reply(reply.status(400));
    expect((await failure(guarded.complete(hello))).details?.status).toBe(400);
    expect(server.requests).toHaveLength(3);
    server.reply(reply.status(500), reply.status(500));
    await failure(guarded.complete(hello));
    expect(guarded.guard.breaker?.state).toBe('open');
    expect((await failure(guarded.complete(hello))).code).toBe('ERR_CIRCUIT_OPEN');
    expect(server.requests).toHaveLength(5);
    guarded.guard.breaker?.close();
  });

  it('a 500 is retryable, a 400 is not, and the provider text (at most 500 chars) is kept', async () => {
    server.reply(
      reply.status(500),
      reply.text('x'.repeat(2000), { status: 400, headers: { 'content-type': 'text/plain' } }),
    );
    const serverError = await failure(model().complete(hello));
    expect(serverError.details).toMatchObject({ status: 500, error: 'status 500' });
    expect(retryableModelError(serverError)).toBe(true);
    const badRequest = await failure(model().complete(hello));
    expect(badRequest.code).toBe('ERR_MODEL_HTTP');
    expect(badRequest.details?.status).toBe(400);
    expect(badRequest.details?.error).toBe('x'.repeat(500));
    expect(badRequest.details?.retryAfterMs).toBeUndefined();
    expect(retryableModelError(badRequest)).toBe(false);
  });
});

describe('openAIModel: deadlines, aborts and broken answers', () => {
  it('times out a server that never answers, and closes the connection', async () => {
    server.reply(reply.hang());
    const started = performance.now();
    const error = await failure(model({ timeoutMs: 200 }).complete(hello));
    expect(error.code).toBe('ERR_CALL_TIMEOUT');
    expect(error.details).toEqual({ provider: 'openai:gpt-test', timeoutMs: 200 });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(retryableModelError(error)).toBe(true);
    await within(server.requests[0]!.socketClosed, 2000, 'socket close');
  });

  it('times out a stream that stops mid-answer, and closes the connection', async () => {
    server.reply(reply.sse([sseEvent(chunk({ content: 'partial' }))], 'hang'));
    const seen: string[] = [];
    const error = await failure(
      model({ timeoutMs: 200, stream: true }).complete(hello, { onText: (t) => seen.push(t) }),
    );
    expect(error.code).toBe('ERR_CALL_TIMEOUT');
    expect(seen).toEqual(['partial']);
    await within(server.requests[0]!.socketClosed, 2000, 'socket close');
  });

  it('rejects with the abort reason when the caller aborts, and closes the connection', async () => {
    server.reply(reply.hang());
    const controller = new AbortController();
    const reason = new Error('the user left');
    const pending = model().complete(hello, { signal: controller.signal });
    await vi.waitFor(() => expect(server.requests).not.toHaveLength(0), { timeout: 2000 });
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await within(server.requests[0]!.socketClosed, 2000, 'socket close');
    expect(retryableModelError(reason)).toBe(false);
    const early = new AbortController();
    early.abort(reason);
    await expect(model().complete(hello, { signal: early.signal })).rejects.toBe(reason);
    expect(server.requests).toHaveLength(1);
  });

  it('maps a body that is not JSON and one without choices to ERR_MODEL_MALFORMED with a sample', async () => {
    server.reply(reply.text('<html>Bad gateway</html>'), reply.json({ id: 'x', object: 'chat.completion' }));
    const notJson = await failure(model().complete(hello));
    expect(notJson.code).toBe('ERR_MODEL_MALFORMED');
    expect(notJson.details?.sample).toBe('<html>Bad gateway</html>');
    const noChoices = await failure(model().complete(hello));
    expect(noChoices.code).toBe('ERR_MODEL_MALFORMED');
    expect(noChoices.details?.sample).toContain('chat.completion');
    expect(retryableModelError(noChoices)).toBe(true);
  });

  it('maps a stream event that is not JSON, and a stream without [DONE], to ERR_MODEL_MALFORMED', async () => {
    server.reply(
      reply.sse([sseEvent(chunk({ content: 'a' })), 'data: {"choices": [\n\n', sseEvent('[DONE]')]),
      reply.sse([sseEvent(chunk({ content: 'a' })), sseEvent(chunk({}, 'stop'))]),
    );
    const broken = await failure(model({ stream: true }).complete(hello));
    expect(broken.code).toBe('ERR_MODEL_MALFORMED');
    expect(broken.details?.sample).toBe('{"choices": [');
    const cut = await failure(model({ stream: true }).complete(hello));
    expect(cut.code).toBe('ERR_MODEL_MALFORMED');
    expect(cut.message).toContain('[DONE]');
  });

  it('maps a connection cut mid-stream to ERR_MODEL_UNREACHABLE', async () => {
    server.reply(reply.sse([sseEvent(chunk({ content: 'a' }))], 'destroy'));
    const error = await failure(model({ stream: true }).complete(hello));
    expect(error.code).toBe('ERR_MODEL_UNREACHABLE');
    expect(error.details?.notSent).toBeUndefined();
  });

  it('maps a refused connection to ERR_MODEL_UNREACHABLE with notSent', async () => {
    const error = await failure(model({ baseUrl: await closedPortUrl() }).complete(hello));
    expect(error.code).toBe('ERR_MODEL_UNREACHABLE');
    expect(error.details).toMatchObject({ provider: 'openai:gpt-test', notSent: true });
    expect(error.cause).toBeDefined();
    expect(notSent(error)).toBe(true);
    expect(retryableModelError(error)).toBe(true);
  });
});

describe('openAIModel: the API key', () => {
  it('never appears in an error, whatever fails', async () => {
    const echo = { error: { message: `Incorrect API key provided: ${KEY}` } };
    server.reply(
      reply.status(401, { body: echo }),
      reply.text(`not json ${KEY}`),
      reply.sse([`data: {"oops": "${KEY}"\n\n`]),
      reply.hang(),
    );
    const errors = [
      await failure(model().complete(hello)),
      await failure(model().complete(hello)),
      await failure(model({ stream: true }).complete(hello)),
      await failure(model({ timeoutMs: 100 }).complete(hello)),
      await failure(model({ baseUrl: await closedPortUrl() }).complete(hello)),
      await failure(
        model({
          fetch: () =>
            Promise.reject(new Error(`proxy refused Authorization: Bearer ${KEY}`, { cause: KEY })),
        }).complete(hello),
      ),
    ];
    expect(errors.map((e) => e.code)).toEqual([
      'ERR_MODEL_HTTP',
      'ERR_MODEL_MALFORMED',
      'ERR_MODEL_MALFORMED',
      'ERR_CALL_TIMEOUT',
      'ERR_MODEL_UNREACHABLE',
      'ERR_MODEL_UNREACHABLE',
    ]);
    expect(errors[0]!.details?.error).toBe('Incorrect API key provided: [redacted]');
    for (const error of errors) {
      for (const text of exposedTexts(error)) expect(text).not.toContain(KEY);
    }
    expect(server.requests[0]?.headers.authorization).toBe(`Bearer ${KEY}`);
  });
});
