import { context, type Histogram, type Meter, SpanKind, type Tracer, trace } from '@opentelemetry/api';
import type { Journal } from '../../memory/index.js';
import { invalidOption } from '../../protocols/index.js';
import { endSpan, INSTRUMENTATION_SCOPE } from './tracing.js';

/** Options of {@link tracedJournal}. */
export interface TracedJournalOptions {
  /** Defaults to `trace.getTracer('troupe')` of the global provider. */
  readonly tracer?: Tracer;
  /** Records `troupe.journal.append.duration` (seconds) per append. */
  readonly meter?: Meter;
  /** `db.system.name`: `postgresql` (default) for Postgres and PGlite, or what the journal runs on. */
  readonly system?: string;
}

/** The calls that become spans; the others pass through. */
const TRACED = ['append', 'readStream', 'readAll', 'streamVersion', 'saveSnapshot', 'loadSnapshot'] as const;

/**
 * A journal whose calls are CLIENT spans by the database semantic conventions (`db.system.name`,
 * `db.operation.name`, `db.collection.name` for the stream, `db.operation.batch.size` for an
 * append's events), and whose appends' latency is a histogram when `meter` is given. Event data
 * never goes into spans.
 * @example
 * ```ts
 * const journal = tracedJournal(await postgresJournal({ connectionString }), { meter });
 * ```
 */
export function tracedJournal(journal: Journal, options: TracedJournalOptions = {}): Journal {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  if (typeof journal?.append !== 'function') throw invalidOption('journal', 'must be a journal', journal);
  const tracer = options.tracer ?? trace.getTracer(INSTRUMENTATION_SCOPE);
  const system = options.system ?? 'postgresql';
  const appendDuration: Histogram | undefined = options.meter?.createHistogram(
    'troupe.journal.append.duration',
    {
      unit: 's',
      description: 'Duration of journal appends, committed or failed.',
    },
  );
  const wrapped = new Map<string, unknown>();
  for (const name of TRACED) {
    const original = (journal[name] as (...args: unknown[]) => Promise<unknown>).bind(journal);
    wrapped.set(name, async (...args: unknown[]) => {
      const stream = typeof args[0] === 'string' ? args[0] : undefined;
      const span = tracer.startSpan(`${name}${stream === undefined ? '' : ' journal'}`, {
        kind: SpanKind.CLIENT,
        attributes: {
          'db.system.name': system,
          'db.operation.name': name,
          ...(stream === undefined ? {} : { 'db.collection.name': stream }),
          ...(name === 'append' && Array.isArray(args[1])
            ? { 'db.operation.batch.size': args[1].length }
            : {}),
        },
      });
      const started = performance.now();
      try {
        const result = await context.with(trace.setSpan(context.active(), span), () => original(...args));
        if (name === 'append')
          appendDuration?.record((performance.now() - started) / 1000, { outcome: 'ok' });
        endSpan(span);
        return result;
      } catch (error) {
        if (name === 'append')
          appendDuration?.record((performance.now() - started) / 1000, { outcome: 'error' });
        endSpan(span, error);
        throw error;
      }
    });
  }
  return new Proxy(journal, {
    get(target, property, receiver) {
      if (typeof property === 'string' && wrapped.has(property)) return wrapped.get(property);
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
