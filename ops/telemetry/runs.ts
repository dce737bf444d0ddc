import { type Context, context, type Span, trace } from '@opentelemetry/api';

/**
 * The `invoke_agent` spans of the agent runs going on in this process, by agent address and run,
 * so that the model and tool calls a run makes (which name their agent and run in their options)
 * become that span's children, as the GenAI conventions draw them, rather than its siblings under
 * the handler's span. `traceSystem` opens and closes them from the event stream; `tracedModel` and
 * `tracedTool` look them up.
 */
const open = new Map<string, Span>();
const key = (agent: string, run: string) => `${agent}\u0000${run}`;

/** Registers the span of a run that started. */
export function openRun(agent: string, run: string, span: Span): void {
  open.set(key(agent, run), span);
}

/** Forgets the span of a run that ended, and returns it. */
export function closeRun(agent: string, run: string): Span | undefined {
  const k = key(agent, run);
  const span = open.get(k);
  open.delete(k);
  return span;
}

/** Forgets the spans of every run of an agent (it crashed or stopped mid-run), and returns them. */
export function closeRunsOf(agent: string): Span[] {
  const prefix = `${agent}\u0000`;
  const spans: Span[] = [];
  for (const [k, span] of open)
    if (k.startsWith(prefix)) {
      open.delete(k);
      spans.push(span);
    }
  return spans;
}

/** The context a call of the given run starts its span in: the run's span, or the active context. */
export function runContext(agent: string | undefined, run: string | undefined): Context {
  const active = context.active();
  if (agent === undefined || run === undefined) return active;
  const span = open.get(key(agent, run));
  return span === undefined ? active : trace.setSpan(active, span);
}
