/**
 * The Anthropic adapter against a scripted local HTTP server: the request on the wire (roles merged,
 * tool results in user turns), whole and streamed answers, tool calls, usage, stream error events,
 * and every failure (HTTP status, deadline, malformed answers, refused connection, caller abort) with
 * the API key never leaking.
 */
import { describe, expect, it } from 'vitest';
import { type AnthropicModelOptions, anthropicModel } from '../../agents/anthropic.js';
import { retryableModelError } from '../../agents/guarded.js';
import type { ModelRequest } from '../../agents/model.js';
import { exponential } from '../../runtime/index.js';
import { notSent, retry } from '../../supervisors/index.js';
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

const KEY = 'sk-ant-test-SECRET-9d41e0b7';

const server = useWireServer();

function model(options: Partial<AnthropicModelOptions> = {}) {
  return anthropicModel({
    model: 'claude-test',
    baseUrl: server.url,
    apiKey: KEY,
    stream: false,
    // One HTTP attempt per call here: the default guard's retries are tested on their own.
    guard: false,
    ...options,
  });
}

const hello: ModelRequest = { messages: [{ role: 'user', content: 'Hello' }] };

/** A whole Messages answer. */
function message(content: unknown[], extra: Record<string, unknown> = {}) {
  return {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'claude-test-20250101',
    content,
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 12, output_tokens: 6 },
    ...extra,
  };
}

/** A named event whose data carries the same `type`, as the API sends them. */
function event(type: string, data: Record<string, unknown> = {}): string {
  return sseEvent({ type, ...data }, type);
}

const messageStart = event('message_start', {
  message: {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'claude-test-20250101',
    content: [],
    stop_reason: null,
    usage: { input_tokens: 25, output_tokens: 1 },
  },
});

function textBlock(index: number, pieces: readonly string[]): string[] {
  return [
    event('content_block_start', { index, content_block: { type: 'text', text: '' } }),
    ...pieces.map((text) => event('content_block_delta', { index, delta: { type: 'text_delta', text } })),
    event('content_block_stop', { index }),
  ];
}

function toolBlock(index: number, id: string, name: string, json: readonly string[]): string[] {
  return [
    event('content_block_start', { index, content_block: { type: 'tool_use', id, name, input: {} } }),
    ...json.map((partial_json) =>
      event('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json } }),
    ),
    event('content_block_stop', { index }),
  ];
}

function messageEnd(stopReason: string, outputTokens: number): string[] {
  return [
    event('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: outputTokens },
    }),
    event('message_stop'),
  ];
}

/** The stream of `events`, cut into `size`-byte pieces with short pauses. */
function streamOf(events: readonly string[], size = 9) {
  return reply.sse(withPauses(bytePieces(events.join(''), size), 1));
}

describe('anthropicModel: the request on the wire', () => {
  it('POSTs to /v1/messages with the key, the version and the merged conversation', async () => {
    server.reply(reply.json(message([{ type: 'text', text: 'ok' }])));
    await model({ headers: { 'x-extra': 'yes' } }).complete({
      system: 'Be brief.',
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        { role: 'user', content: 'Quickly.' },
        {
          role: 'assistant',
          content: 'Looking.',
          toolCalls: [
            { id: 'toolu_1', name: 'weather', arguments: { city: 'Paris' } },
            { id: 'toolu_2', name: 'weather', arguments: { city: 'Rome' } },
          ],
        },
        { role: 'tool', toolCallId: 'toolu_1', name: 'weather', content: '18°C' },
        { role: 'tool', toolCallId: 'toolu_2', name: 'weather', content: 'no data', isError: true },
        { role: 'user', content: 'And?' },
        { role: 'assistant', content: '', toolCalls: [{ id: 'toolu_3', name: 'clock', arguments: {} }] },
      ],
      tools: [{ name: 'weather', description: 'The weather of a city', parameters: { type: 'object' } }],
      temperature: 0.5,
    });
    const [request] = server.requests;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe('/v1/messages');
    expect(request?.headers['x-api-key']).toBe(KEY);
    expect(request?.headers['anthropic-version']).toBe('2023-06-01');
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['x-extra']).toBe('yes');
    expect(request?.headers.authorization).toBeUndefined();
    expect(request?.body).toEqual({
      model: 'claude-test',
      max_tokens: 1024,
      system: 'Be brief.',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Weather in Paris and Rome?' },
            { type: 'text', text: 'Quickly.' },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Looking.' },
            { type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'toolu_2', name: 'weather', input: { city: 'Rome' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: '18°C', is_error: false },
            { type: 'tool_result', tool_use_id: 'toolu_2', content: 'no data', is_error: true },
            { type: 'text', text: 'And?' },
          ],
        },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_3', name: 'clock', input: {} }] },
      ],
      tools: [{ name: 'weather', description: 'The weather of a city', input_schema: { type: 'object' } }],
      temperature: 0.5,
      stream: false,
    });
  });

  it('leaves out an empty answer, which the API would refuse, and merges the turns around it', async () => {
    server.reply(reply.json(message([{ type: 'text', text: 'ok' }])));
    await model().complete({
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: '' },
        { role: 'user', content: 'Still there?' },
      ],
    });
    expect((server.requests[0]!.body as { messages: unknown }).messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Hi' },
          { type: 'text', text: 'Still there?' },
        ],
      },
    ]);
  });

  it('takes maxTokens from the request, then the options, and sends no key when there is none', async () => {
    server.reply(reply.json(message([])), reply.json(message([])));
    await model({ maxTokens: 300, apiKey: '' }).complete(hello);
    await model({ maxTokens: 300 }).complete({ ...hello, maxTokens: 50 });
    expect(server.requests[0]?.headers['x-api-key']).toBeUndefined();
    expect(server.requests.map((r) => (r.body as { max_tokens: number }).max_tokens)).toEqual([300, 50]);
    expect(model().name).toBe('anthropic:claude-test');
    expect(() => anthropicModel({ model: 'claude-test', baseUrl: 'ftp://x' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
  });
});

describe('anthropicModel: answers', () => {
  it('reads a whole answer: text blocks, tool_use blocks, stop reason, usage, model', async () => {
    server.reply(
      reply.json(
        message(
          [
            { type: 'text', text: 'Let me check. ' },
            { type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Oslo' } },
            { type: 'text', text: 'One moment.' },
          ],
          { stop_reason: 'tool_use' },
        ),
      ),
    );
    expect(await model().complete(hello)).toEqual({
      text: 'Let me check. One moment.',
      toolCalls: [{ id: 'toolu_1', name: 'weather', arguments: { city: 'Oslo' } }],
      stopReason: 'tool_calls',
      usage: { inputTokens: 12, outputTokens: 6 },
      model: 'claude-test-20250101',
    });
  });

  it('maps stop reasons, and a missing usage to zeros', async () => {
    const reasons = ['end_turn', 'stop_sequence', 'max_tokens', 'refusal'];
    server.reply(...reasons.map((stop_reason) => reply.json(message([], { stop_reason, usage: undefined }))));
    const answers = [];
    for (const _ of reasons) answers.push(await model().complete(hello));
    expect(answers.map((a) => a.stopReason)).toEqual(['end', 'end', 'max_tokens', 'other']);
    expect(answers[0]?.usage).toEqual({ inputTokens: 0, outputTokens: 0 });
  });

  it('streams text across chunk boundaries (multi-byte characters too), calling onText per delta', async () => {
    const deltas = ['Grüß ', 'Gott, ', '世界 🌍', '!'];
    server.reply(
      streamOf(
        [
          messageStart,
          event('ping'),
          ...textBlock(0, deltas),
          ': a comment\n\n',
          ...messageEnd('end_turn', 14),
        ],
        4,
      ),
    );
    const seen: string[] = [];
    const answer = await model({ stream: true }).complete(hello, { onText: (text) => seen.push(text) });
    expect(seen).toEqual(deltas);
    expect(answer).toEqual({
      text: deltas.join(''),
      toolCalls: [],
      stopReason: 'end',
      usage: { inputTokens: 25, outputTokens: 14 },
      model: 'claude-test-20250101',
    });
    expect(server.requests[0]?.body).toMatchObject({ stream: true });
  });

  it('assembles streamed tool calls from JSON pieces per block; empty input is {}', async () => {
    server.reply(
      streamOf([
        messageStart,
        ...textBlock(0, ['Checking.']),
        ...toolBlock(1, 'toolu_a', 'weather', ['{"ci', 'ty": "Pa', 'ris"}']),
        ...toolBlock(2, 'toolu_b', 'clock', []),
        ...messageEnd('tool_use', 40),
      ]),
    );
    const answer = await model({ stream: true }).complete(hello);
    expect(answer).toEqual({
      text: 'Checking.',
      toolCalls: [
        { id: 'toolu_a', name: 'weather', arguments: { city: 'Paris' } },
        { id: 'toolu_b', name: 'clock', arguments: {} },
      ],
      stopReason: 'tool_calls',
      usage: { inputTokens: 25, outputTokens: 40 },
      model: 'claude-test-20250101',
    });
  });

  it('maps an error event in the stream to ERR_MODEL_HTTP: 529 when overloaded, else 500', async () => {
    const overloaded = event('error', { error: { type: 'overloaded_error', message: 'Overloaded' } });
    const other = event('error', { error: { type: 'api_error', message: 'Internal' } });
    server.reply(
      streamOf([messageStart, overloaded]),
      streamOf([messageStart, ...textBlock(0, ['a']), other]),
    );
    const first = await failure(model({ stream: true }).complete(hello));
    expect(first.code).toBe('ERR_MODEL_HTTP');
    expect(first.details).toMatchObject({ status: 529, type: 'overloaded_error', error: 'Overloaded' });
    expect(retryableModelError(first)).toBe(true);
    const second = await failure(model({ stream: true }).complete(hello));
    expect(second.details).toMatchObject({ status: 500, type: 'api_error', error: 'Internal' });
  });
});

describe('anthropicModel: HTTP errors and retries', () => {
  it('maps a 429 with Retry-After to ERR_MODEL_HTTP with retryAfterMs, retryable', async () => {
    server.reply(
      reply.status(429, {
        headers: { 'retry-after': '1' },
        body: { type: 'error', error: { type: 'rate_limit_error', message: 'Slow down' } },
      }),
    );
    const error = await failure(model().complete(hello));
    expect(error.code).toBe('ERR_MODEL_HTTP');
    expect(error.details).toMatchObject({
      status: 429,
      provider: 'anthropic:claude-test',
      error: 'Slow down',
      type: 'rate_limit_error',
      retryAfterMs: 1000,
    });
    expect(retryableModelError(error)).toBe(true);
  });

  it('retry() honours Retry-After: the second request comes at least a second after the 429', async () => {
    server.reply(
      reply.status(429, { headers: { 'retry-after': '1' } }),
      streamOf([messageStart, ...textBlock(0, ['at last']), ...messageEnd('end_turn', 3)]),
    );
    const answer = await retry(() => model({ stream: true }).complete(hello), {
      attempts: 2,
      idempotent: true,
      retryable: retryableModelError,
      backoff: exponential({ baseMs: 1, maxMs: 1, jitter: false }),
    });
    expect(answer.text).toBe('at last');
    const [first, second] = server.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
  });

  it('a 500 is retryable, a 400 is not', async () => {
    server.reply(
      reply.status(500),
      reply.status(400, {
        body: { type: 'error', error: { type: 'invalid_request_error', message: 'bad' } },
      }),
    );
    const serverError = await failure(model().complete(hello));
    expect(serverError.details?.status).toBe(500);
    expect(retryableModelError(serverError)).toBe(true);
    const badRequest = await failure(model().complete(hello));
    expect(badRequest.details).toMatchObject({ status: 400, error: 'bad', type: 'invalid_request_error' });
    expect(retryableModelError(badRequest)).toBe(false);
  });
});

describe('anthropicModel: deadlines, aborts and broken answers', () => {
  it('times out a server that never answers, and closes the connection', async () => {
    server.reply(reply.hang());
    const error = await failure(model({ timeoutMs: 200 }).complete(hello));
    expect(error.code).toBe('ERR_CALL_TIMEOUT');
    expect(error.details).toEqual({ provider: 'anthropic:claude-test', timeoutMs: 200 });
    await within(server.requests[0]!.socketClosed, 2000, 'socket close');
  });

  it('times out a stream that stops mid-answer, and closes the connection', async () => {
    server.reply(reply.sse([messageStart, ...textBlock(0, ['partial']).slice(0, 2)], 'hang'));
    const seen: string[] = [];
    const started = performance.now();
    const error = await failure(
      model({ timeoutMs: 200, stream: true }).complete(hello, { onText: (text) => seen.push(text) }),
    );
    expect(error.code).toBe('ERR_CALL_TIMEOUT');
    expect(performance.now() - started).toBeGreaterThanOrEqual(150);
    expect(seen).toEqual(['partial']);
    await within(server.requests[0]!.socketClosed, 2000, 'socket close');
  });

  it('rejects with the abort reason when the caller aborts mid-stream, and closes the connection', async () => {
    server.reply(reply.sse([messageStart, ...textBlock(0, ['partial']).slice(0, 2)], 'hang'));
    const controller = new AbortController();
    const reason = new Error('cancelled');
    const error = await model({ stream: true })
      .complete(hello, { signal: controller.signal, onText: () => controller.abort(reason) })
      .catch((e: unknown) => e);
    expect(error).toBe(reason);
    await within(server.requests[0]!.socketClosed, 2000, 'socket close');
  });

  it('maps a body that is not JSON and one without content to ERR_MODEL_MALFORMED', async () => {
    server.reply(reply.text('{"content": [ '), reply.json({ id: 'msg_1', type: 'message' }));
    const notJson = await failure(model().complete(hello));
    expect(notJson.code).toBe('ERR_MODEL_MALFORMED');
    expect(notJson.details?.sample).toBe('{"content": [ ');
    const noContent = await failure(model().complete(hello));
    expect(noContent.code).toBe('ERR_MODEL_MALFORMED');
    expect(noContent.details?.sample).toContain('msg_1');
  });

  it('maps a stream event that is not JSON, and a stream without message_stop, to ERR_MODEL_MALFORMED', async () => {
    server.reply(
      reply.sse([messageStart, 'event: content_block_start\ndata: {"type": "content_block_start", \n\n']),
      reply.sse([messageStart, ...textBlock(0, ['cut'])]),
    );
    const broken = await failure(model({ stream: true }).complete(hello));
    expect(broken.code).toBe('ERR_MODEL_MALFORMED');
    expect(broken.details?.sample).toBe('{"type": "content_block_start", ');
    const cut = await failure(model({ stream: true }).complete(hello));
    expect(cut.code).toBe('ERR_MODEL_MALFORMED');
    expect(cut.message).toContain('message_stop');
  });

  it('maps a connection cut mid-stream to ERR_MODEL_UNREACHABLE', async () => {
    server.reply(reply.sse([messageStart], 'destroy'));
    const error = await failure(model({ stream: true }).complete(hello));
    expect(error.code).toBe('ERR_MODEL_UNREACHABLE');
  });

  it('maps a refused connection to ERR_MODEL_UNREACHABLE with notSent', async () => {
    const error = await failure(model({ baseUrl: await closedPortUrl() }).complete(hello));
    expect(error.code).toBe('ERR_MODEL_UNREACHABLE');
    expect(error.details).toMatchObject({ provider: 'anthropic:claude-test', notSent: true });
    expect(notSent(error)).toBe(true);
  });
});

describe('anthropicModel: the API key', () => {
  it('never appears in an error, whatever fails', async () => {
    server.reply(
      reply.status(401, {
        body: { type: 'error', error: { type: 'authentication_error', message: `bad key ${KEY}` } },
      }),
      reply.json({ echo: KEY }),
      reply.sse([messageStart, event('error', { error: { type: 'api_error', message: `leak ${KEY}` } })]),
      reply.sse([messageStart], 'hang'),
    );
    const errors = [
      await failure(model().complete(hello)),
      await failure(model().complete(hello)),
      await failure(model({ stream: true }).complete(hello)),
      await failure(model({ stream: true, timeoutMs: 100 }).complete(hello)),
      await failure(model({ baseUrl: await closedPortUrl() }).complete(hello)),
      await failure(
        model({ fetch: () => Promise.reject(new TypeError(`bad header x-api-key: ${KEY}`)) }).complete(hello),
      ),
    ];
    expect(errors.map((e) => e.code)).toEqual([
      'ERR_MODEL_HTTP',
      'ERR_MODEL_MALFORMED',
      'ERR_MODEL_HTTP',
      'ERR_CALL_TIMEOUT',
      'ERR_MODEL_UNREACHABLE',
      'ERR_MODEL_UNREACHABLE',
    ]);
    for (const error of errors) {
      for (const text of exposedTexts(error)) expect(text).not.toContain(KEY);
    }
    expect(server.requests[0]?.headers['x-api-key']).toBe(KEY);
  });
});
