import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import { type Logger, pino } from 'pino';
// The events of the layers above the kernel (their types, by module augmentation).
import type {} from '../../agents/index.js';
import type {} from '../../memory/index.js';
import { invalidOption } from '../../protocols/index.js';
import type { ActorSystem, SystemEvent } from '../../runtime/index.js';
import type {} from '../../societies/index.js';
import type {} from '../../supervisors/index.js';

type Level = 'debug' | 'info' | 'warn' | 'error';

/** Options of {@link logSystem}. */
export interface LogSystemOptions {
  /**
   * A pino logger (its level, destination and transport are yours). Defaults to {@link troupeLogger}:
   * JSON lines on stdout at `info`, with secrets redacted.
   */
  readonly logger?: Logger;
  /**
   * Log the bodies of dead letters and crashed messages (under `body`, redacted by the logger's
   * paths). Defaults to false: bodies may hold personal data.
   */
  readonly bodies?: boolean;
}

/** Paths {@link troupeLogger} redacts, at any of the first levels of a line. */
export const REDACTED_PATHS: readonly string[] = [
  'password',
  'apiKey',
  'token',
  'secret',
  'authorization',
  'cookie',
  '*.password',
  '*.apiKey',
  '*.token',
  '*.secret',
  '*.authorization',
  '*.cookie',
  '*.*.password',
  '*.*.apiKey',
  '*.*.token',
  '*.*.secret',
  '*.*.authorization',
  '*.*.cookie',
];

/** Secrets that show up in free text (error messages): provider keys, bearer tokens, URL passwords. */
const SECRET_TEXT: readonly (readonly [RegExp, string])[] = [
  [/\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}/g, '$1-[redacted]'],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]'],
  [/(\/\/[^:/\s@]+:)[^@/\s]+@/g, '$1[redacted]@'],
];

/** `text` with what looks like a secret (a provider key, a bearer token, a URL's password) redacted. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_TEXT) out = out.replace(pattern, replacement);
  return out;
}

/**
 * A pino logger for Troupe's lines: JSON on stdout (or `destination`), `level` (default `info`),
 * the {@link REDACTED_PATHS} censored, error messages and stacks scrubbed of secrets.
 */
export function troupeLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  const config: pino.LoggerOptions = {
    level: options.level ?? 'info',
    redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    serializers: {
      err: (error: Error) => {
        const serialized = pino.stdSerializers.err(error);
        return {
          ...serialized,
          message: scrubSecrets(serialized.message ?? ''),
          ...(serialized.stack === undefined ? {} : { stack: scrubSecrets(serialized.stack) }),
        };
      },
    },
  };
  return options.destination === undefined ? pino(config) : pino(config, options.destination);
}

/** The level, message and fields of an event's line; undefined for events not worth a line. */
function describe(event: SystemEvent, bodies: boolean): [Level, string, Record<string, unknown>] | undefined {
  switch (event.type) {
    case 'actor-crashed':
      return [
        'error',
        `${event.address} crashed${event.message === undefined ? '' : ` handling "${event.message.type}"`}`,
        {
          address: event.address,
          err: event.error,
          ...(event.message === undefined ? {} : { messageType: event.message.type }),
          ...(bodies && event.message !== undefined ? { body: event.message.body } : {}),
        },
      ];
    case 'actor-restarted':
      return [
        'warn',
        `${event.address} restarted (${event.restarts})`,
        { address: event.address, restarts: event.restarts },
      ];
    case 'restart-scheduled':
      return [
        'info',
        `${event.supervisor} restarts ${event.children.length} in ${event.delayMs} ms`,
        { supervisor: event.supervisor, delayMs: event.delayMs },
      ];
    case 'supervisor-escalated':
      return ['error', `${event.address} escalated`, { address: event.address, err: event.error }];
    case 'hook-failed':
      return ['error', `a hook of ${event.address} failed`, { address: event.address, err: event.error }];
    case 'dead-letter':
      return [
        'warn',
        `dead letter "${event.messageType}" to ${event.to}: ${event.reason}`,
        {
          to: event.to,
          ...(event.from === undefined ? {} : { from: event.from }),
          messageType: event.messageType,
          reason: event.reason,
          ...(event.error === undefined ? {} : { code: event.error.code }),
          ...(bodies ? { body: event.body } : {}),
        },
      ];
    case 'mailbox-overflow':
      return [
        'warn',
        `mailbox of ${event.address} overflowed (${event.policy})`,
        { address: event.address, policy: event.policy, capacity: event.capacity },
      ];
    case 'member-up':
      return ['info', `member ${event.node} up`, { member: event.node }];
    case 'member-suspect':
      return ['warn', `member ${event.node} suspect`, { member: event.node }];
    case 'member-leaving':
      return ['info', `member ${event.node} leaving`, { member: event.node }];
    case 'member-down':
      return [
        event.reason === 'left' ? 'info' : 'warn',
        `member ${event.node} down (${event.reason})`,
        { member: event.node, reason: event.reason },
      ];
    case 'node-fenced':
      return [
        'warn',
        `node ${event.node} fenced: no heartbeat acknowledged for ${event.silentMs} ms, named actors wait`,
        { member: event.node, silentMs: event.silentMs },
      ];
    case 'node-unfenced':
      return [
        'info',
        `node ${event.node} unfenced: ${event.leasesLost} lease(s) lost meanwhile`,
        { member: event.node, leasesLost: event.leasesLost },
      ];
    case 'activation-failed':
      return [
        'error',
        `activation of ${event.address} given up`,
        { address: event.address, err: event.error, quarantineMs: event.quarantineMs },
      ];
    case 'system-draining':
      return ['info', 'system draining', {}];
    case 'system-stopped':
      return event.error === undefined
        ? ['info', 'system stopped', { drainTimedOut: event.drainTimedOut }]
        : ['error', 'system failed', { err: event.error, drainTimedOut: event.drainTimedOut }];
    case 'breaker-transition':
      return [
        event.to === 'open' ? 'warn' : 'info',
        `breaker ${event.breaker} ${event.from} → ${event.to}`,
        { breaker: event.breaker, from: event.from, to: event.to },
      ];
    case 'breaker-listener-failed':
      return [
        'error',
        `a listener of breaker ${event.breaker} failed`,
        { breaker: event.breaker, err: event.error },
      ];
    case 'bulkhead-rejected':
      return [
        'warn',
        `bulkhead ${event.bulkhead} full`,
        { bulkhead: event.bulkhead, active: event.active, queued: event.queued },
      ];
    case 'budget-exhausted':
      return [
        'warn',
        `budget ${event.scope} exhausted (${event.limit})`,
        { scope: event.scope, agent: event.agent, limit: event.limit, max: event.max, used: event.used },
      ];
    case 'agent-run':
      return event.phase === 'failed'
        ? [
            'error',
            `agent run ${event.run} of ${event.agent} failed`,
            { agent: event.agent, run: event.run, steps: event.steps, error: event.error },
          ]
        : [
            'info',
            `agent run ${event.run} of ${event.agent} ${event.phase}`,
            { agent: event.agent, run: event.run, steps: event.steps },
          ];
    case 'workflow-ended':
      return event.ok
        ? [
            'info',
            `workflow ${event.workflow} (${event.definition}) completed`,
            { workflow: event.workflow, definition: event.definition },
          ]
        : [
            'error',
            `workflow ${event.workflow} (${event.definition}) failed`,
            { workflow: event.workflow, definition: event.definition, error: event.error },
          ];
    case 'snapshot-failed':
      return [
        'error',
        `snapshot of ${event.stream} failed`,
        { address: event.address, stream: event.stream, err: event.error },
      ];
    case 'journal-defect':
      return ['error', 'journal defect', { err: event.error }];
    case 'actor-spawned':
    case 'actor-started':
    case 'activation-started':
      return ['debug', `${event.type} ${event.address}`, { address: event.address }];
    case 'actor-stopped':
      return [
        'debug',
        `actor-stopped ${event.address} (${event.reason})`,
        { address: event.address, reason: event.reason },
      ];
    default:
      return undefined;
  }
}

/**
 * Logs a system's significant events with pino, one JSON line each: crashes, escalations and
 * failures at `error`; restarts, dead letters, overflows, open breakers, unreachable members and
 * full bulkheads at `warn`; members, agent runs, workflows and the system's lifecycle at `info`;
 * actors starting and stopping at `debug`. Each line has `event` (its type), `system`, `node`, the
 * event's fields, and `trace_id`/`span_id`/`trace_flags` of the trace it happened in (with
 * `traceSystem`, a crash's line carries its message's trace). Secrets are redacted by
 * {@link troupeLogger}'s paths and scrubbed from error texts. Returns a function that stops logging.
 * @example
 * ```ts
 * const stop = logSystem(system, { logger: pino({ level: 'warn' }) });
 * ```
 */
export function logSystem(system: ActorSystem, options: LogSystemOptions = {}): () => void {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const base = options.logger ?? troupeLogger();
  // What the logger does not say already (a node's logger names its node), each line says once.
  const bound = base.bindings();
  const logger = base.child({
    ...(bound.system === undefined ? { system: system.name } : {}),
    ...(bound.node === undefined ? { node: system.node } : {}),
  });
  const bodies = options.bodies ?? false;
  const subscription = system.events$.subscribe((event) => {
    try {
      const line = describe(event, bodies);
      if (line === undefined) return;
      const [level, message, fields] = line;
      if (!logger.isLevelEnabled(level)) return;
      const spanContext = trace.getSpanContext(context.active());
      const traced =
        spanContext !== undefined && isSpanContextValid(spanContext)
          ? {
              trace_id: spanContext.traceId,
              span_id: spanContext.spanId,
              trace_flags: `0${(spanContext.traceFlags & 0xff).toString(16)}`.slice(-2),
            }
          : {};
      logger[level]({ event: event.type, ...fields, ...traced }, message);
    } catch {
      // A logger that throws must not break the event stream (pino's own serializers do not throw).
    }
  });
  return () => subscription.unsubscribe();
}
