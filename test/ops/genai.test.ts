import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { agent, openAIModel, tool } from '../../agents/index.js';
import { inMemoryJournal } from '../../memory/index.js';
import { tracedJournal, tracedModel, tracedTool, traceSystem } from '../../ops/index.js';
import { createSystem } from '../../runtime/index.js';
import { reply, useWireServer } from '../agents/wire-server.js';
import { useInMemorySdk } from '../harness/otel.js';

const exporter = useInMemorySdk();

const server = useWireServer();
const SECRET_PROMPT = 'my card is 4111-1111-1111-1111';

function completion(message: Record<string, unknown>, finishReason = 'stop') {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    model: 'gpt-test-2025',
    choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: finishReason }],
    usage: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 },
  };
}

const model = () =>
  openAIModel({
    model: 'gpt-test',
    baseUrl: `${server.url}/v1`,
    apiKey: 'sk-test',
    stream: false,
    guard: false,
  });

const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);

describe('GenAI spans', () => {
  it('traces an agent run: invoke_agent, chat calls and a tool call, with usage and finish reasons', async () => {
    const system = createSystem({ name: 'genai' });
    traceSystem(system);
    const lookup = tracedTool(
      tool({
        name: 'lookup',
        description: 'Looks a word up',
        input: z.object({ word: z.string() }),
        run: ({ word }) => `${word}: a rise and fall of the sea`,
      }),
    );
    const researcher = system.spawn(agent({ model: tracedModel(model()), tools: [lookup] }), {
      name: 'researcher',
    });
    server.reply(
      reply.json(
        completion(
          {
            content: '',
            tool_calls: [
              { id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"word":"tide"}' } },
            ],
          },
          'tool_calls',
        ),
      ),
      reply.json(completion({ content: 'Tides rise and fall.' })),
    );
    const answer = await trace.getTracer('test').startActiveSpan('request', async (span) => {
      try {
        return await researcher.ask('run', { input: SECRET_PROMPT }, { timeoutMs: 10_000 });
      } finally {
        span.end();
      }
    });
    expect(answer).toMatchObject({ ok: true, output: 'Tides rise and fall.' });

    const chats = spans('chat gpt-test');
    expect(chats).toHaveLength(2);
    expect(chats[0]!.kind).toBe(SpanKind.CLIENT);
    expect(chats[0]!.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-test',
      'gen_ai.response.model': 'gpt-test-2025',
      'gen_ai.usage.input_tokens': 11,
      'gen_ai.usage.output_tokens': 5,
      'gen_ai.response.finish_reasons': ['tool_calls'],
    });
    expect(chats[1]!.attributes['gen_ai.response.finish_reasons']).toEqual(['stop']);
    const [toolSpan] = spans('execute_tool lookup');
    expect(toolSpan!.attributes).toMatchObject({
      'gen_ai.operation.name': 'execute_tool',
      'gen_ai.tool.name': 'lookup',
      'gen_ai.tool.call.id': 'call_1',
    });
    const [run] = spans('invoke_agent researcher');
    expect(run!.attributes).toMatchObject({
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.agent.name': 'researcher',
    });
    // Everything in the request's trace: the run under the agent's handling of `run`, and the run's
    // model and tool calls under the run, as the GenAI conventions draw an agent.
    const [processRun] = spans('process run');
    expect(new Set(exporter.getFinishedSpans().map((s) => s.spanContext().traceId)).size).toBe(1);
    expect(run!.parentSpanContext?.spanId).toBe(processRun!.spanContext().spanId);
    for (const span of [...chats, toolSpan!]) {
      expect(span.parentSpanContext?.spanId).toBe(run!.spanContext().spanId);
    }
    // Contents stay out of spans by default.
    expect(JSON.stringify(exporter.getFinishedSpans().map((s) => s.attributes))).not.toContain('4111');
    await system.close();
  });

  it('ends the invoke_agent span of a run cut short by a crash of its agent, with an error', async () => {
    const system = createSystem({ name: 'genai-crash', deadLetterLog: () => {} });
    traceSystem(system);
    // A defect in the model port (not a provider failure the run can name) crashes the agent.
    const broken = {
      name: 'scripted:broken',
      complete: async () => Promise.reject(new Error('bug in the port')),
    };
    const worker = system.spawn(agent({ model: tracedModel(broken) }), { name: 'worker' });
    await trace.getTracer('test').startActiveSpan('request', async (span) => {
      try {
        await expect(worker.ask('run', { input: 'hi' }, { timeoutMs: 5000 })).rejects.toBeDefined();
      } finally {
        span.end();
      }
    });
    await vi.waitFor(() => expect(spans('invoke_agent worker')).toHaveLength(1));
    const [run] = spans('invoke_agent worker');
    expect(run!.status.code).toBe(SpanStatusCode.ERROR);
    expect(run!.status.message).toMatch(/crashed during the run/);
    // The failed chat call is the run's child.
    const [chat] = spans('chat broken');
    expect(chat!.parentSpanContext?.spanId).toBe(run!.spanContext().spanId);
    await system.close();
  });

  it('puts prompts and completions in with captureContent, and marks a failed call', async () => {
    const traced = tracedModel(model(), { captureContent: true });
    server.reply(reply.json(completion({ content: 'Bonjour' })));
    await traced.complete({ system: 'Be brief.', messages: [{ role: 'user', content: SECRET_PROMPT }] });
    const [ok] = spans('chat gpt-test');
    expect(JSON.parse(ok!.attributes['gen_ai.input.messages'] as string)).toEqual([
      { role: 'user', parts: [{ type: 'text', content: SECRET_PROMPT }] },
    ]);
    expect(JSON.parse(ok!.attributes['gen_ai.output.messages'] as string)).toEqual([
      { role: 'assistant', parts: [{ type: 'text', content: 'Bonjour' }], finish_reason: 'stop' },
    ]);
    expect(ok!.attributes['gen_ai.system_instructions']).toContain('Be brief.');
    exporter.reset();

    server.reply(reply.status(400));
    await expect(traced.complete({ messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({
      code: 'ERR_MODEL_HTTP',
    });
    const [failed] = spans('chat gpt-test');
    expect(failed!.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed!.attributes['error.type']).toBe('ERR_MODEL_HTTP');
  });

  it('traces journal calls with the database conventions, without event data', async () => {
    const journal = tracedJournal(inMemoryJournal());
    await trace.getTracer('test').startActiveSpan('request', async (span) => {
      await journal.append('order-1', [{ type: 'placed', data: { card: '4111' } }]);
      expect(await journal.streamVersion('order-1')).toBe(1);
      span.end();
    });
    const [append] = spans('append journal');
    expect(append!.kind).toBe(SpanKind.CLIENT);
    expect(append!.attributes).toEqual({
      'db.system.name': 'postgresql',
      'db.operation.name': 'append',
      'db.collection.name': 'order-1',
      'db.operation.batch.size': 1,
    });
    expect(append!.parentSpanContext?.spanId).toBe(spans('request')[0]!.spanContext().spanId);
    expect(spans('streamVersion journal')).toHaveLength(1);
    await journal.close();
  });
});
