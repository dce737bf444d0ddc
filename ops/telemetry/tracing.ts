import {
  type Attributes,
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
// The events of the layers above the kernel (their types, by module augmentation).
import type {} from '../../agents/index.js';
import { invalidOption, type TraceContext } from '../../protocols/index.js';
import type { ActorSystem } from '../../runtime/index.js';
import { type HandlerSpan, installTracing } from '../../runtime/internal.js';
import type {} from '../../societies/index.js';
import { ActiveTraceReader, parentContext, sampledFlag, toTraceContext } from './context.js';
import { closeRun, closeRunsOf, openRun } from './runs.js';

/** The instrumentation scope of Troupe's spans and metrics. */
export const INSTRUMENTATION_SCOPE = 'troupe';

/** Options of {@link traceSystem}. */
export interface TraceSystemOptions {
  /** Defaults to `trace.getTracer('troupe')` of the global tracer provider. */
  readonly tracer?: Tracer;
  /**
   * Whether a message sent outside any trace (no active span, no incoming context) starts a trace of
   * its own (the sampler decides). Defaults to false: such a message is not traced, as a function
   * call outside a trace is not.
   */
  readonly roots?: boolean;
  /**
   * Spans from the event stream, inside the trace of whoever published the event: agent runs
   * (`invoke_agent <agent>`, GenAI conventions), workflow steps and workflows, group chat turns,
   * contract-net rounds and votes. Defaults to true.
   */
  readonly events?: boolean;
}

/** Marks the error on a span and ends it. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    const err = error instanceof Error ? error : new Error(String(error));
    span.recordException(err);
    span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
    const code = (err as { code?: unknown }).code;
    span.setAttribute('error.type', typeof code === 'string' ? code : err.name);
  }
  span.end();
}

/**
 * Traces a system with OpenTelemetry (the global provider, or `tracer`): a span per message handled
 * (`process <type>`, CONSUMER for a tell, SERVER for an ask) parented on its sender's context, which
 * envelopes carry across nodes as W3C `traceparent`; a CLIENT span per ask (`ask <type>`). A send
 * from a handler carries its message's span; a send from outside any handler carries the active
 * OpenTelemetry context (a request handler's span). Message bodies never go into spans.
 *
 * A message whose trace is not sampled gets no span and costs no span work; its handler runs without
 * the OpenTelemetry context set (its sends carry the unsampled context on). Returns a function that
 * stops tracing.
 *
 * @throws TroupeError `ERR_ILLEGAL_STATE` when the system is traced already.
 * @example
 * ```ts
 * const stop = traceSystem(system);
 * await tracer.startActiveSpan('checkout', async (span) => {
 *   await cart.ask('checkout', {}); // one trace: checkout → ask → process checkout → ...
 *   span.end();
 * });
 * ```
 */
export function traceSystem(system: ActorSystem, options: TraceSystemOptions = {}): () => void {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const tracer = options.tracer ?? trace.getTracer(INSTRUMENTATION_SCOPE);
  const roots = options.roots ?? false;
  const active = new ActiveTraceReader();
  const base = {
    'messaging.system': 'troupe',
    'troupe.system': system.name,
    'troupe.node': system.node,
  } as const;

  /** Span options per destination and message: built once, as the SDK copies them anyway. */
  const handlingOptions = new Map<string, { name: string; options: SpanOptions }>();
  const optionsFor = (address: string, type: string, ask: boolean) => {
    const key = `${ask ? 'a' : 't'}${type}\u0000${address}`;
    let entry = handlingOptions.get(key);
    if (entry === undefined) {
      // Bounded: a system with many short-lived actors would otherwise grow it for ever.
      if (handlingOptions.size >= 10_000) handlingOptions.clear();
      entry = {
        name: `process ${type}`,
        options: {
          kind: ask ? SpanKind.SERVER : SpanKind.CONSUMER,
          attributes: {
            ...base,
            'messaging.operation.type': 'process',
            'messaging.operation.name': ask ? 'ask' : 'tell',
            'messaging.destination.name': address,
            'troupe.message.type': type,
          },
        },
      };
      handlingOptions.set(key, entry);
    }
    return entry;
  };

  const startHandling = (address: string, type: string, parent: TraceContext | undefined, ask: boolean) => {
    const { name, options: spanOptions } = optionsFor(address, type, ask);
    const span = tracer.startSpan(name, spanOptions, parentContext(parent));
    const active = trace.setSpan(ROOT_CONTEXT, span);
    let ended = false;
    const handlerSpan: HandlerSpan = {
      trace: toTraceContext(span.spanContext()),
      run: (fn) => context.with(active, fn),
      end(error) {
        if (ended) return;
        ended = true;
        endSpan(span, error);
      },
    };
    return handlerSpan;
  };

  const uninstall = installTracing(system, {
    outside: roots ? () => active.read() ?? ROOT_MARK : () => active.read(),
    handle(address, type, traceContext, ask) {
      if (!sampledFlag(traceContext)) return undefined;
      return startHandling(address, type, traceContext, ask);
    },
    ask(to, type, parent, send) {
      if (parent === undefined || !sampledFlag(parent)) return send(parent);
      const span = tracer.startSpan(
        `ask ${type}`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            ...base,
            'messaging.operation.type': 'send',
            'messaging.operation.name': 'ask',
            'messaging.destination.name': to,
            'troupe.message.type': type,
          },
        },
        parentContext(parent),
      );
      let reply: Promise<any>;
      try {
        reply = send(toTraceContext(span.spanContext()));
      } catch (error) {
        endSpan(span, error);
        throw error;
      }
      reply.then(
        () => endSpan(span),
        (error: unknown) => endSpan(span, error),
      );
      return reply;
    },
    turn(run) {
      context.with(ROOT_CONTEXT, run);
    },
  });
  const subscription = (options.events ?? true) ? traceEvents(system, tracer, base) : undefined;
  return () => {
    subscription?.unsubscribe();
    uninstall();
  };
}

/** The spans of the event stream; see {@link TraceSystemOptions.events}. */
function traceEvents(system: ActorSystem, tracer: Tracer, base: Attributes): { unsubscribe(): void } {
  /** Runs of this system with an open span: crashes and stops are looked at only while some are. */
  let open = 0;
  /** An event inside a trace becomes a span there; one outside any trace starts none. */
  const inTrace = () => {
    const spanContext = trace.getSpanContext(context.active());
    return spanContext !== undefined && isSpanContextValid(spanContext);
  };
  const instant = (name: string, attributes: Attributes, error?: { code: string; message: string }) => {
    if (!inTrace()) return;
    const span = tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes: { ...base, ...attributes } });
    endSpan(
      span,
      error === undefined ? undefined : Object.assign(new Error(error.message), { code: error.code }),
    );
  };
  return system.events$.subscribe((event) => {
    switch (event.type) {
      case 'agent-run': {
        if (event.phase === 'started') {
          if (!inTrace()) return;
          const name = event.agent.slice(event.agent.lastIndexOf('/') + 1);
          open++;
          openRun(
            event.agent,
            event.run,
            tracer.startSpan(`invoke_agent ${name}`, {
              kind: SpanKind.INTERNAL,
              attributes: {
                ...base,
                'gen_ai.operation.name': 'invoke_agent',
                'gen_ai.agent.name': name,
                'gen_ai.agent.id': event.agent,
                'troupe.agent.run': event.run,
              },
            }),
          );
          return;
        }
        const span = closeRun(event.agent, event.run);
        if (span === undefined) return;
        open--;
        span.setAttribute('troupe.agent.steps', event.steps);
        endSpan(span, event.phase === 'failed' ? new Error(event.error ?? 'agent run failed') : undefined);
        return;
      }
      case 'actor-crashed':
      case 'actor-stopped':
        // A run cut short by its agent's crash or stop ends no other way: end its span here.
        if (open > 0)
          for (const span of closeRunsOf(event.address)) {
            open--;
            endSpan(
              span,
              new Error(`the agent ${event.type === 'actor-crashed' ? 'crashed' : 'stopped'} during the run`),
            );
          }
        return;
      case 'workflow-step':
        instant(
          `workflow.step ${event.step}`,
          {
            'troupe.workflow.id': event.workflow,
            'troupe.workflow.definition': event.definition,
            'troupe.workflow.step': event.step,
            'troupe.workflow.step.status': event.status,
          },
          event.error,
        );
        return;
      case 'workflow-ended':
        instant(
          `workflow ${event.definition}`,
          {
            'troupe.workflow.id': event.workflow,
            'troupe.workflow.definition': event.definition,
            'troupe.workflow.ok': event.ok,
          },
          event.error,
        );
        return;
      case 'group-chat-turn':
        instant(`group_chat.turn ${event.speaker}`, {
          'troupe.society.kind': 'group-chat',
          'troupe.society.round': event.turn,
          'troupe.group_chat.chat': event.chat,
          'troupe.group_chat.speaker': event.speaker,
          'troupe.group_chat.ok': event.ok,
        });
        return;
      case 'contract-net-round':
        instant('contract_net.round', {
          'troupe.society.kind': 'contract-net',
          'troupe.contract_net.round': event.round,
          'troupe.contract_net.status': event.status,
          'troupe.contract_net.bids': event.bids,
          'troupe.contract_net.refusals': event.refusals,
          ...(event.winner === undefined ? {} : { 'troupe.contract_net.winner': event.winner }),
        });
        return;
      case 'society-vote':
        instant('vote', {
          'troupe.society.kind': 'vote',
          'troupe.vote.ballot': event.ballotId,
          'troupe.vote.decided': event.decided,
          'troupe.vote.ballots': event.ballots,
          'troupe.vote.reason': event.reason,
          ...(event.winner === undefined ? {} : { 'troupe.vote.winner': event.winner }),
        });
        return;
      default:
        return;
    }
  });
}

/**
 * "Start a trace here", for `roots: true`: what a send outside any trace carries. Its flags say
 * sampled, so the handler makes a span; its ids are invalid, so that span has no parent (on another
 * node too) and the sampler decides.
 */
const ROOT_MARK: TraceContext = { traceparent: '00-00000000000000000000000000000000-0000000000000000-01' };
