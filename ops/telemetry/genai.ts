import { type Attributes, context, type Meter, SpanKind, type Tracer, trace } from '@opentelemetry/api';
import type {
  ModelPort,
  ModelRequest,
  ModelResponse,
  StopReason,
  Tool,
  ToolResult,
} from '../../agents/index.js';
import { invalidOption } from '../../protocols/index.js';
import { runContext } from './runs.js';
import { endSpan, INSTRUMENTATION_SCOPE } from './tracing.js';

/** Options of {@link tracedModel} and {@link tracedTool}. */
export interface GenAITraceOptions {
  /** Defaults to `trace.getTracer('troupe')` of the global provider. */
  readonly tracer?: Tracer;
  /**
   * Put prompts, completions, tool arguments and results into spans (`gen_ai.input.messages`,
   * `gen_ai.output.messages`, `gen_ai.system_instructions`, `gen_ai.tool.call.arguments`,
   * `gen_ai.tool.call.result`). Defaults to false: they may hold personal data and secrets.
   */
  readonly captureContent?: boolean;
  /** Records `gen_ai.client.token.usage` and `gen_ai.client.operation.duration` too. */
  readonly meter?: Meter;
}

const FINISH_REASONS: Record<StopReason, string> = {
  end: 'stop',
  tool_calls: 'tool_calls',
  max_tokens: 'length',
  other: 'other',
};

/** `openai:gpt-4o-mini` → provider `openai`, model `gpt-4o-mini`; a name without a prefix is the model. */
function splitModelName(name: string): { provider: string | undefined; model: string } {
  const colon = name.indexOf(':');
  return colon <= 0
    ? { provider: undefined, model: name }
    : { provider: name.slice(0, colon), model: name.slice(colon + 1) };
}

function check(options: GenAITraceOptions): void {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
}

/**
 * A model port whose calls are spans by the OpenTelemetry GenAI semantic conventions: `chat <model>`
 * (CLIENT) with `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
 * `gen_ai.request.max_tokens`, `gen_ai.request.temperature`, `gen_ai.response.model`,
 * `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens` and `gen_ai.response.finish_reasons`;
 * prompts and completions only with `captureContent`. A failed call records the error
 * (`error.type` is its code). Give the wrapped port to `agent({ model })`.
 * @example
 * ```ts
 * const model = tracedModel(openAIModel({ model: 'gpt-4o-mini' }));
 * ```
 */
export function tracedModel(model: ModelPort, options: GenAITraceOptions = {}): ModelPort {
  check(options);
  if (typeof model?.complete !== 'function') throw invalidOption('model', 'must be a model port', model);
  const tracer = options.tracer ?? trace.getTracer(INSTRUMENTATION_SCOPE);
  const { provider, model: requestModel } = splitModelName(model.name);
  const tokens = options.meter?.createHistogram('gen_ai.client.token.usage', {
    unit: '{token}',
    description: 'Tokens used by model calls, by type (input, output).',
  });
  const duration = options.meter?.createHistogram('gen_ai.client.operation.duration', {
    unit: 's',
    description: 'Duration of model calls.',
  });
  return {
    name: model.name,
    async complete(request, callOptions) {
      const attributes: Attributes = {
        'gen_ai.operation.name': 'chat',
        'gen_ai.request.model': requestModel,
        ...(provider === undefined ? {} : { 'gen_ai.provider.name': provider }),
        ...(request.maxTokens === undefined ? {} : { 'gen_ai.request.max_tokens': request.maxTokens }),
        ...(request.temperature === undefined ? {} : { 'gen_ai.request.temperature': request.temperature }),
        ...(options.captureContent ? inputContent(request) : {}),
      };
      // Under the agent run's `invoke_agent` span when an agent calls, else under the active span.
      const parent = runContext(callOptions?.agent, callOptions?.run);
      const span = tracer.startSpan(`chat ${requestModel}`, { kind: SpanKind.CLIENT, attributes }, parent);
      const started = performance.now();
      const metricAttributes: Attributes = {
        'gen_ai.operation.name': 'chat',
        'gen_ai.request.model': requestModel,
        ...(provider === undefined ? {} : { 'gen_ai.provider.name': provider }),
      };
      let response: ModelResponse;
      try {
        response = await context.with(trace.setSpan(parent, span), () =>
          model.complete(request, callOptions),
        );
      } catch (error) {
        duration?.record((performance.now() - started) / 1000, {
          ...metricAttributes,
          'error.type': errorType(error),
        });
        endSpan(span, error);
        throw error;
      }
      span.setAttributes({
        'gen_ai.response.model': response.model,
        'gen_ai.usage.input_tokens': response.usage.inputTokens,
        'gen_ai.usage.output_tokens': response.usage.outputTokens,
        'gen_ai.response.finish_reasons': [FINISH_REASONS[response.stopReason]],
        ...(options.captureContent ? outputContent(response) : {}),
      });
      const responseAttributes = { ...metricAttributes, 'gen_ai.response.model': response.model };
      duration?.record((performance.now() - started) / 1000, responseAttributes);
      tokens?.record(response.usage.inputTokens, { ...responseAttributes, 'gen_ai.token.type': 'input' });
      tokens?.record(response.usage.outputTokens, { ...responseAttributes, 'gen_ai.token.type': 'output' });
      endSpan(span);
      return response;
    },
  };
}

function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : error instanceof Error ? error.name : 'Error';
}

function inputContent(request: ModelRequest): Attributes {
  const messages = request.messages.map((message) =>
    message.role === 'tool'
      ? {
          role: 'tool',
          parts: [{ type: 'tool_call_response', id: message.toolCallId, response: message.content }],
        }
      : {
          role: message.role,
          parts: [
            ...(message.content === '' ? [] : [{ type: 'text', content: message.content }]),
            ...(message.role === 'assistant'
              ? (message.toolCalls ?? []).map((call) => ({
                  type: 'tool_call',
                  id: call.id,
                  name: call.name,
                  arguments: call.arguments,
                }))
              : []),
          ],
        },
  );
  return {
    'gen_ai.input.messages': JSON.stringify(messages),
    ...(request.system === undefined
      ? {}
      : { 'gen_ai.system_instructions': JSON.stringify([{ type: 'text', content: request.system }]) }),
  };
}

function outputContent(response: ModelResponse): Attributes {
  const parts = [
    ...(response.text === '' ? [] : [{ type: 'text', content: response.text }]),
    ...response.toolCalls.map((call) => ({
      type: 'tool_call',
      id: call.id,
      name: call.name,
      arguments: call.arguments,
    })),
  ];
  return {
    'gen_ai.output.messages': JSON.stringify([
      { role: 'assistant', parts, finish_reason: FINISH_REASONS[response.stopReason] },
    ]),
  };
}

/**
 * A tool whose calls are spans by the GenAI conventions: `execute_tool <name>` with
 * `gen_ai.operation.name` (`execute_tool`), `gen_ai.tool.name`, `gen_ai.tool.call.id` and
 * `gen_ai.tool.type`; arguments and results only with `captureContent`. A result that is an error
 * marks the span (`error.type` is its code).
 */
export function tracedTool(tool: Tool, options: GenAITraceOptions = {}): Tool {
  check(options);
  if (typeof tool?.call !== 'function') throw invalidOption('tool', 'must be a tool', tool);
  const tracer = options.tracer ?? trace.getTracer(INSTRUMENTATION_SCOPE);
  return {
    name: tool.name,
    spec: tool.spec,
    idempotent: tool.idempotent,
    async call(call, ctx) {
      const parent = runContext(ctx?.agent, ctx?.run);
      const span = tracer.startSpan(
        `execute_tool ${tool.name}`,
        {
          kind: SpanKind.INTERNAL,
          attributes: {
            'gen_ai.operation.name': 'execute_tool',
            'gen_ai.tool.name': tool.name,
            'gen_ai.tool.call.id': call.id,
            'gen_ai.tool.type': 'function',
            'gen_ai.tool.description': tool.spec.description,
            ...(options.captureContent
              ? { 'gen_ai.tool.call.arguments': JSON.stringify(call.arguments) }
              : {}),
          },
        },
        parent,
      );
      let result: ToolResult;
      try {
        result = await context.with(trace.setSpan(parent, span), () => tool.call(call, ctx));
      } catch (error) {
        endSpan(span, error);
        throw error;
      }
      if (options.captureContent) span.setAttribute('gen_ai.tool.call.result', result.content);
      if (result.isError) {
        const failure = new Error(options.captureContent ? result.content : `tool ${tool.name} failed`);
        endSpan(span, Object.assign(failure, { code: result.code ?? 'ERR_TOOL_FAILED' }));
      } else endSpan(span);
      return result;
    },
  };
}
