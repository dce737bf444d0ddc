import { executionAsyncId } from 'node:async_hooks';
import {
  type Context,
  type ContextManager,
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  type SpanContext,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import type { TraceContext } from '../../protocols/index.js';

/** W3C `traceparent` (version 00) of a span context. */
export function toTraceContext(spanContext: SpanContext): TraceContext {
  const flags = spanContext.traceFlags & 0xff;
  const traceparent = `00-${spanContext.traceId}-${spanContext.spanId}-${flags < 16 ? '0' : ''}${flags.toString(16)}`;
  const tracestate = spanContext.traceState?.serialize();
  return tracestate === undefined || tracestate === '' ? { traceparent } : { traceparent, tracestate };
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The span context a W3C trace context names (remote), or undefined when it is malformed. */
export function fromTraceContext(traceContext: TraceContext): SpanContext | undefined {
  const match = TRACEPARENT.exec(traceContext.traceparent);
  if (match === null || match[1] === 'ff') return undefined;
  const spanContext: SpanContext = {
    traceId: match[2]!,
    spanId: match[3]!,
    traceFlags: Number.parseInt(match[4]!, 16),
    isRemote: true,
  };
  return isSpanContextValid(spanContext) ? spanContext : undefined;
}

/** Whether a W3C trace context says sampled, read from its flags without parsing the rest. */
export function sampledFlag(traceContext: TraceContext): boolean {
  const tp = traceContext.traceparent;
  // `00-<32>-<16>-<2>`: the flags are the last two hex digits of the first 55 characters.
  const low = tp.charCodeAt(54);
  const digit = low >= 97 ? low - 87 : low - 48;
  return tp.length >= 55 && (digit & TraceFlags.SAMPLED) !== 0;
}

const GENERATION = Symbol.for('troupe.otel.contextGeneration');

interface Watched {
  [GENERATION]?: { value: number };
}

/**
 * Counts the changes of the active context that happen without an async boundary: every `with`
 * (entry and exit) and `attach` of the global context manager. Wraps the manager once (marked by a
 * symbol); undefined when the API has no manager to reach (then callers read the context each time).
 */
function generationOf(): { value: number } | undefined {
  const api = context as unknown as { _getContextManager?: () => ContextManager };
  const manager = api._getContextManager?.() as (ContextManager & Watched) | undefined;
  if (manager === undefined) return undefined;
  const existing = manager[GENERATION];
  if (existing !== undefined) return existing;
  const generation = { value: 0 };
  const originalWith = manager.with;
  manager.with = function (this: ContextManager, ...args: Parameters<ContextManager['with']>) {
    generation.value++;
    try {
      return originalWith.apply(this, args);
    } finally {
      generation.value++;
    }
  } as ContextManager['with'];
  const originalAttach = manager.attach;
  if (originalAttach !== undefined) {
    manager.attach = function (this: ContextManager, ctx: Context) {
      generation.value++;
      const token = originalAttach.call(this, ctx);
      return {
        dispose() {
          generation.value++;
          token.dispose();
        },
      };
    };
  }
  manager[GENERATION] = generation;
  return generation;
}

/**
 * The trace context of the active OpenTelemetry context, for sends made outside any handler. Reading
 * the context (an AsyncLocalStorage lookup) on every send would cost more than the send itself, so
 * the answer is kept for as long as it cannot have changed: the same synchronous execution (async
 * id) with no `with`/`attach` of the context manager since.
 */
export class ActiveTraceReader {
  private cachedId = -1;
  private cachedGeneration = -1;
  private generation: { value: number } = generationOf() ?? { value: -2 };
  private spanContext: SpanContext | undefined;
  private trace: TraceContext | undefined;

  read(): TraceContext | undefined {
    // The hot path: one async id read and two comparisons.
    if (executionAsyncId() === this.cachedId && this.generation.value === this.cachedGeneration) {
      return this.trace;
    }
    return this.refresh();
  }

  private refresh(): TraceContext | undefined {
    // The manager may have been registered (or replaced) since: wrap the current one. Without one to
    // reach, the generation stays -2 and nothing is cached (-1 never equals it).
    const generation = generationOf();
    this.generation = generation ?? { value: -2 };
    this.cachedId = executionAsyncId();
    this.cachedGeneration = generation === undefined ? -1 : generation.value;
    const spanContext = trace.getSpanContext(context.active());
    if (spanContext === undefined || !isSpanContextValid(spanContext)) {
      this.spanContext = undefined;
      this.trace = undefined;
    } else if (spanContext !== this.spanContext) {
      this.spanContext = spanContext;
      this.trace = toTraceContext(spanContext);
    }
    return this.trace;
  }
}

/** Parsed parents, by trace context object: the messages of one sender's handler share one. */
const parents = new WeakMap<TraceContext, Context>();

/** The context a remote (or another actor's) trace context continues. */
export function parentContext(traceContext: TraceContext | undefined): Context {
  if (traceContext === undefined) return ROOT_CONTEXT;
  let parent = parents.get(traceContext);
  if (parent === undefined) {
    const spanContext = fromTraceContext(traceContext);
    parent = spanContext === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, spanContext);
    parents.set(traceContext, parent);
  }
  return parent;
}
