import type { TraceContext } from '../../protocols/index.js';

/**
 * What a tracer plugs into the kernel: `traceSystem` (ops/telemetry) implements it with
 * OpenTelemetry. The kernel stays free of any tracing library; without a tracer installed it pays
 * one property check per send.
 */
export interface KernelTracer {
  /**
   * The trace context of a send made outside any handler without an explicit `trace` (a request
   * handler's tell or ask), or undefined when there is none. Called on every such send: keep it cheap.
   */
  outside(): TraceContext | undefined;
  /**
   * Called before the handler of a message that came with a trace context. Returns the span of the
   * handling, or undefined to run the handler as it is (an unsampled trace: its context still
   * travels on with the handler's sends).
   */
  handle(address: string, type: string, trace: TraceContext, ask: boolean): HandlerSpan | undefined;
  /**
   * Wraps an ask: `send` sends it with the trace context it is given (the ask span's) and returns
   * the reply's promise; the tracer ends its span when that settles.
   */
  ask<T>(
    to: string,
    type: string,
    parent: TraceContext | undefined,
    send: (trace: TraceContext | undefined) => Promise<T>,
  ): Promise<T>;
  /** Runs one turn of the dispatcher, outside whatever context scheduled it. */
  turn(run: () => void): void;
}

/** The span of one handled message. */
export interface HandlerSpan {
  /** The context the handler's sends carry: this span's. */
  readonly trace: TraceContext;
  /** Runs the handler with this span's context active (async continuations included). */
  run<T>(fn: () => T): T;
  /** Ends the span, with the handler's error if it crashed. Idempotent. */
  end(error?: Error): void;
}
