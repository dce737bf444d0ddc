import {
  type AnyProtocol,
  decodeEnvelope,
  type Envelope,
  type MessageSpec,
  parseAddress,
  splitType,
  TroupeError,
  validate,
} from '../protocols/index.js';
import type { ActorRef } from './api.js';
import { Cell, type Host } from './cell.js';
import type { DeadLetterReason } from './events.js';

/** What a boundary needs from the system. */
export interface IngressHost extends Pick<Host, 'clock' | 'askTimeoutMs' | 'ref' | 'deadLetter'> {
  protocol(name: string): AnyProtocol | undefined;
  lookup(system: string, node: string, path: string): Cell | undefined;
}

/** The outcome of one envelope: for an ask, its reply or the error to send back. */
export type IngressResult =
  | { readonly ok: true; readonly reply?: unknown }
  | { readonly ok: false; readonly error: TroupeError };

/**
 * Delivers data that arrived from outside this process (a transport decoded it from bytes). Nothing in
 * it is trusted: the envelope shape, the protocol and message names (only registered protocols are
 * known), the target, the deadline and the body against its schema are all checked, and the reply of
 * an ask is checked against its reply schema. Every refusal is a dead letter with its reason and, for
 * an ask, an error result to send back. It never throws.
 *
 * `now` is wall-clock epoch milliseconds for deadlines (envelopes carry epoch deadlines).
 */
export async function deliverEnvelope(
  host: IngressHost,
  data: unknown,
  now = Date.now(),
): Promise<IngressResult> {
  let envelope: Envelope;
  try {
    envelope = decodeEnvelope(data);
  } catch (error) {
    const e = error as TroupeError;
    const to = typeof (data as { to?: unknown })?.to === 'string' ? (data as { to: string }).to : '(unknown)';
    const type =
      typeof (data as { type?: unknown })?.type === 'string' ? (data as { type: string }).type : '(unknown)';
    host.deadLetter(to, undefined, type, (data as { body?: unknown })?.body, 'malformed', e);
    return { ok: false, error: e };
  }
  const { to, from, type, body } = envelope;
  const isAsk = envelope.replyTo !== undefined || envelope.correlationId !== undefined;
  const refuse = (reason: DeadLetterReason, error: TroupeError): IngressResult => {
    host.deadLetter(to, from, type, body, reason, error);
    return { ok: false, error };
  };

  const names = splitType(type);
  const protocol = names === undefined ? undefined : host.protocol(names.protocol);
  // Own properties only: a name like `__proto__` must not reach Object.prototype.
  const spec =
    names === undefined || protocol === undefined || !Object.hasOwn(protocol.messages, names.message)
      ? undefined
      : (protocol.messages[names.message] as MessageSpec);
  if (names === undefined || protocol === undefined || spec === undefined) {
    return refuse(
      'unknown-message',
      new TroupeError('ERR_UNKNOWN_MESSAGE', `"${type}" is not a message of any registered protocol`, {
        details: { to, type },
      }),
    );
  }
  if (spec.kind === 'ask' && !isAsk) {
    return refuse(
      'malformed',
      new TroupeError('ERR_VALIDATION', `"${type}" is a request but the envelope has no replyTo`, {
        details: { type },
      }),
    );
  }

  let target: Cell | undefined;
  try {
    const parts = parseAddress(to);
    target = host.lookup(parts.system, parts.node, parts.path);
  } catch (error) {
    return refuse('malformed', error as TroupeError);
  }
  if (target === undefined || !target.alive) {
    return refuse(
      'no-such-actor',
      new TroupeError('ERR_NO_SUCH_ACTOR', `no live actor at ${to}`, { details: { to, type } }),
    );
  }
  if (!target.behavior.protocols.some((p) => p.name === protocol.name)) {
    return refuse(
      'unknown-message',
      new TroupeError('ERR_UNKNOWN_MESSAGE', `${to} does not speak "${protocol.name}"`, {
        details: { to, type },
      }),
    );
  }
  if (envelope.deadline !== undefined && envelope.deadline <= now) {
    return refuse(
      'expired',
      new TroupeError('ERR_ASK_TIMEOUT', `"${type}" to ${to} arrived after its deadline`, {
        details: { to, type, deadline: envelope.deadline },
      }),
    );
  }

  const checked = await validate(spec.body, body, `"${type}" to ${to}`);
  if (!checked.ok) return refuse('validation-failed', checked.error);

  let sender: ActorRef<any> | undefined;
  if (from !== undefined) {
    try {
      sender = host.ref(from);
    } catch {
      sender = undefined;
    }
  }
  try {
    if (spec.kind === 'tell') {
      target.tell(names.message, checked.value, sender === undefined ? undefined : { from: sender });
      return { ok: true };
    }
    const timeoutMs =
      envelope.deadline === undefined ? host.askTimeoutMs : Math.max(1, envelope.deadline - now);
    const reply = await target.request(names.message, checked.value, timeoutMs, undefined, sender);
    const replyChecked = await validate(spec.reply, reply, `reply to "${type}" from ${to}`);
    return replyChecked.ok
      ? { ok: true, reply: replyChecked.value }
      : { ok: false, error: replyChecked.error };
  } catch (error) {
    if (TroupeError.is(error)) return { ok: false, error };
    return { ok: false, error: new TroupeError('ERR_ACTOR_CRASHED', String(error), { cause: error }) };
  }
}

/** True when `ref` is an actor of this process. */
export function isLocal(ref: ActorRef<any>): boolean {
  return ref instanceof Cell;
}
