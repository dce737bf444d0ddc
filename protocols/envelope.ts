import type { Address } from './address.js';
import { TroupeError } from './errors.js';

/** W3C trace context carried across boundaries. */
export interface TraceContext {
  readonly traceparent: string;
  readonly tracestate?: string;
}

/**
 * What crosses a process boundary. Local sends do not build one; transports and middleware do.
 * `type` is `<protocol>.<message>`.
 */
export interface Envelope {
  /** Unique id, for dedupe. */
  readonly id: string;
  readonly to: Address;
  readonly from?: Address;
  readonly type: string;
  readonly body: unknown;
  readonly correlationId?: string;
  readonly replyTo?: Address;
  /** Epoch milliseconds after which the message is dropped as a dead letter. */
  readonly deadline?: number;
  readonly trace?: TraceContext;
  /** The sender activation's fencing token. */
  readonly fence?: number;
}

const REQUIRED_STRINGS = ['id', 'to', 'type'] as const;
const OPTIONAL_STRINGS = ['from', 'correlationId', 'replyTo'] as const;

/**
 * Checks that untrusted data has the shape of an {@link Envelope}. It does not look at the body.
 * @throws TroupeError `ERR_VALIDATION` naming the first bad field.
 */
export function decodeEnvelope(data: unknown): Envelope {
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw bad('the envelope is not an object');
  const e = data as Record<string, unknown>;
  for (const field of REQUIRED_STRINGS) {
    if (typeof e[field] !== 'string' || (e[field] as string).length === 0)
      throw bad(`\`${field}\` must be a string`);
  }
  for (const field of OPTIONAL_STRINGS) {
    if (e[field] !== undefined && typeof e[field] !== 'string') throw bad(`\`${field}\` must be a string`);
  }
  if (e.deadline !== undefined && !Number.isFinite(e.deadline))
    throw bad('`deadline` must be epoch milliseconds');
  if (e.fence !== undefined && !Number.isSafeInteger(e.fence)) throw bad('`fence` must be an integer');
  if (e.trace !== undefined) {
    const t = e.trace as Record<string, unknown> | null;
    if (typeof t !== 'object' || t === null || typeof t.traceparent !== 'string') {
      throw bad('`trace.traceparent` must be a string');
    }
  }
  return e as unknown as Envelope;
}

/** Splits `<protocol>.<message>` at its last dot. Returns undefined when there is no dot. */
export function splitType(type: string): { protocol: string; message: string } | undefined {
  const dot = type.lastIndexOf('.');
  if (dot <= 0 || dot === type.length - 1) return undefined;
  return { protocol: type.slice(0, dot), message: type.slice(dot + 1) };
}

function bad(problem: string): TroupeError {
  return new TroupeError('ERR_VALIDATION', `Malformed envelope: ${problem}`);
}
