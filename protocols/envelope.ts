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

/**
 * Checks that untrusted data has the shape of an {@link Envelope}. It does not look at the body.
 * @throws TroupeError `ERR_VALIDATION` naming the first bad field.
 */
export function decodeEnvelope(data: unknown): Envelope {
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw bad('the envelope is not an object');
  const e = data as Record<string, unknown>;
  // Field by field (not a loop over names): every arrival passes here, and named loads are fast.
  const { id, to, type } = e;
  if (typeof id !== 'string' || id.length === 0) throw bad('`id` must be a string');
  if (typeof to !== 'string' || to.length === 0) throw bad('`to` must be a string');
  if (typeof type !== 'string' || type.length === 0) throw bad('`type` must be a string');
  if (e.from !== undefined && typeof e.from !== 'string') throw bad('`from` must be a string');
  if (e.correlationId !== undefined && typeof e.correlationId !== 'string')
    throw bad('`correlationId` must be a string');
  if (e.replyTo !== undefined && typeof e.replyTo !== 'string') throw bad('`replyTo` must be a string');
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
