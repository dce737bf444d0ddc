/**
 * The wire format of envelopes between nodes: how a node writes a frame and reads one back. Pure (no
 * I/O): the router batches and sends, transports move the bytes.
 *
 * A frame is JSON: one envelope, or an array of elements. An element is an envelope, or a run of plain
 * tells with the same `to`, `type` and `from` written once:
 * `{"$run":1,"to":..,"type":..,"from":..,"items":[[id, body], ...]}`. A reply travels on the asking
 * node's reply subject as `{"correlationId":..,"body":{"ok":true,"value":..}}` or
 * `{"correlationId":..,"body":{"ok":false,"error":{code,message,details?,causes?}}}`. A named actor's
 * envelope passed on between nodes carries `hops`, how many times it was passed.
 */
import type { Address } from './address.js';
import { parseAddress } from './address.js';
import type { Envelope } from './envelope.js';
import { ERROR_CODES, type ErrorCode, TroupeError } from './errors.js';

/** The reply to an ask, on the wire. */
export type WireReply =
  | { readonly ok: true; readonly value: unknown }
  | {
      readonly ok: false;
      readonly error: { readonly code: string; readonly message: string; readonly details?: unknown };
    };

/** An envelope as it travels between nodes: a named actor's message also says how often it was passed on. */
export type WireEnvelope = Envelope & { readonly hops?: number };

/** Most times a message for a named actor is passed between nodes before it is given up. */
export const MAX_HOPS = 4;

/** How often an envelope from the wire was passed on: anything but a small count is a first hop. */
export function hopsOf(envelope: WireEnvelope): number {
  const hops = envelope.hops;
  return Number.isInteger(hops) && (hops as number) >= 0 && (hops as number) < MAX_HOPS
    ? (hops as number)
    : 0;
}

/** A run's element: tells that share `to`, `type` and `from` (`runKey`, serialized), and their items. */
export function runElement(runKey: string, itemsText: string): string {
  return `{"$run":1,${runKey},"items":[${itemsText}]}`;
}

/** The body of a reply: the outcome of an ask, with an error's causes (codes and messages). */
export function replyBody(
  result:
    | { readonly ok: true; readonly reply?: unknown }
    | { readonly ok: false; readonly error: TroupeError },
): WireReply {
  if (result.ok) return { ok: true, value: result.reply };
  const { error } = result;
  return {
    ok: false,
    error: {
      code: error.code,
      message: error.message,
      ...(error.details === undefined ? {} : { details: error.details }),
      ...wireCauses(error),
    },
  };
}

/**
 * Serializes an envelope sent through a ref whose `to` and `type` were serialized once (`head`). The
 * id, correlation id and reply address are this node's own (no characters to escape).
 */
export function encodeWithHead(envelope: Envelope, head: string): string {
  let json = `{"id":"${envelope.id}",${head}`;
  if (envelope.from !== undefined) json += `,"from":${JSON.stringify(envelope.from)}`;
  if (envelope.fence !== undefined) json += `,"fence":${envelope.fence}`;
  if (envelope.trace !== undefined) json += `,"trace":${JSON.stringify(envelope.trace)}`;
  if (envelope.correlationId !== undefined) {
    json += `,"correlationId":"${envelope.correlationId}","replyTo":${JSON.stringify(envelope.replyTo)},"deadline":${envelope.deadline}`;
  }
  const body = JSON.stringify(envelope.body);
  // JSON has no `undefined`: such a body is left out, as JSON.stringify of the envelope would.
  return body === undefined ? `${json}}` : `${json},"body":${body}}`;
}

export function isRun(item: unknown): boolean {
  return typeof item === 'object' && item !== null && (item as { $run?: unknown }).$run === 1;
}

/**
 * Turns each run in a frame back into envelopes (untrusted: what is malformed stays malformed, so
 * the full checks refuse it as a dead letter).
 */
export function expandRuns(items: readonly unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const item of items) {
    if (!isRun(item)) {
      out.push(item);
      continue;
    }
    const run = item as { to?: unknown; type?: unknown; from?: unknown; items?: unknown };
    const list = run.items;
    if (
      typeof run.to !== 'string' ||
      typeof run.type !== 'string' ||
      (run.from !== undefined && typeof run.from !== 'string') ||
      !Array.isArray(list) ||
      list.length === 0
    ) {
      out.push(item); // Not an envelope: refused as malformed, once.
      continue;
    }
    const { to, type, from } = run as { to: string; type: string; from?: string };
    for (const entry of list) {
      const id: unknown = Array.isArray(entry) ? entry[0] : undefined;
      const body: unknown = Array.isArray(entry) ? entry[1] : entry;
      out.push(from === undefined ? { id, to, type, body } : { id, to, from, type, body });
    }
  }
  return out;
}

/** The message type of a reply envelope. */
export const REPLY = '$reply';

/** A node id as a reply can be sent to it: what `createSystem` accepts as `node`, and not too long. */
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** The node of an address that came from the wire. @throws TroupeError `ERR_INVALID_ADDRESS`. */
export function nodeOf(address: Address): string {
  const { node } = parseAddress(address);
  if (!NODE_ID.test(node)) {
    throw new TroupeError(
      'ERR_INVALID_ADDRESS',
      `${JSON.stringify(address)} names no node a reply can reach`,
    );
  }
  return node;
}

/** Longest correlation id a reply is sent for (ours are short; a longer one is forged). */
export const MAX_CORRELATION_ID = 256;

/** Rebuilds an error that came back from another node; its code is checked against the catalogue. */
export function remoteError(data: unknown, to: Address): TroupeError {
  const e = (typeof data === 'object' && data !== null ? data : {}) as {
    code?: unknown;
    message?: unknown;
    details?: unknown;
    causes?: unknown;
  };
  const known = typeof e.code === 'string' && Object.hasOwn(ERROR_CODES, e.code);
  const message = typeof e.message === 'string' ? e.message : `${to} answered with an error`;
  const cause = causeChain(e.causes);
  return new TroupeError(known ? (e.code as ErrorCode) : 'ERR_REMOTE', message, {
    ...(cause === undefined ? {} : { cause }),
    details: {
      remote: to,
      ...(known ? {} : { code: e.code }),
      ...(e.details === undefined ? {} : { cause: e.details }),
    },
  });
}

/** Most causes of an error sent back with it: enough to tell an outage from a bug. */
const MAX_CAUSES = 4;

/** An error's causes as they travel in a reply: code (when it has one of ours) and message. */
export function wireCauses(error: TroupeError): { causes?: { code?: string; message: string }[] } {
  const causes: { code?: string; message: string }[] = [];
  for (let c: unknown = error.cause; c instanceof Error && causes.length < MAX_CAUSES; c = c.cause) {
    causes.push(TroupeError.is(c) ? { code: c.code, message: c.message } : { message: c.message });
  }
  return causes.length === 0 ? {} : { causes };
}

/** Rebuilds the causes of a remote error (untrusted: only catalogue codes become TroupeErrors). */
function causeChain(data: unknown): Error | undefined {
  if (!Array.isArray(data)) return undefined;
  let cause: Error | undefined;
  for (let i = Math.min(data.length, MAX_CAUSES) - 1; i >= 0; i--) {
    const item = data[i] as { code?: unknown; message?: unknown } | null;
    const message = typeof item?.message === 'string' ? item.message : 'a remote cause';
    const options = cause === undefined ? undefined : { cause };
    cause =
      typeof item?.code === 'string' && Object.hasOwn(ERROR_CODES, item.code)
        ? new TroupeError(item.code as ErrorCode, message, options)
        : new Error(message, options);
  }
  return cause;
}
