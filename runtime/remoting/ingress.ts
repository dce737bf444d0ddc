import {
  type AnyProtocol,
  decodeEnvelope,
  type Envelope,
  type MessageSpec,
  parseAddress,
  settleValidated,
  splitType,
  TroupeError,
  type Validated,
  validate,
} from '../../protocols/index.js';
import type { ActorRef, TellOptions } from '../kernel/api.js';
import type { CompiledBehavior } from '../kernel/behavior.js';
import { Cell, type Host } from '../kernel/cell.js';
import type { DeadLetterReason } from '../kernel/events.js';

/** What a boundary needs from the system. */
export interface IngressHost extends Pick<Host, 'clock' | 'askTimeoutMs' | 'ref' | 'deadLetter'> {
  protocol(name: string): AnyProtocol | undefined;
  lookup(system: string, node: string, path: string): Cell | undefined;
}

/** The outcome of one envelope: for an ask, its reply or the error to send back. */
export type IngressResult =
  | { readonly ok: true; readonly reply?: unknown }
  | { readonly ok: false; readonly error: TroupeError };

/** An envelope that passed every check but its body's schema: ready to validate and deliver. */
export interface Admitted {
  readonly envelope: Envelope;
  readonly target: Cell;
  /** The message name in the target's protocols. */
  readonly message: string;
  readonly spec: MessageSpec;
}

/**
 * The synchronous checks of data that arrived from outside this process: the envelope's shape, the
 * message (a `<protocol>.<message>` of a registered protocol, or a bare message name of the target's
 * own protocols), the target, and the deadline. A refusal is a dead letter with its reason (reported
 * here) and an error for an ask. It never throws.
 */
export function admitEnvelope(host: IngressHost, data: unknown, now: number): Admitted | IngressFailure {
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
  const refuse = (reason: DeadLetterReason, error: TroupeError): IngressFailure => {
    host.deadLetter(to, from, type, body, reason, error);
    return { ok: false, error };
  };

  let target: Cell | undefined;
  try {
    const parts = parseAddress(to);
    target = host.lookup(parts.system, parts.node, parts.path);
  } catch (error) {
    return refuse('malformed', error as TroupeError);
  }

  const route = resolveMessage(host, target?.behavior, type);
  if (route !== null && 'unspoken' in route) {
    return refuse(
      'unknown-message',
      new TroupeError('ERR_UNKNOWN_MESSAGE', `${to} does not speak "${route.unspoken}"`, {
        details: { to, type },
      }),
    );
  }
  if (target === undefined || !target.alive) {
    return refuse(
      'no-such-actor',
      new TroupeError('ERR_NO_SUCH_ACTOR', `no live actor at ${to}`, { details: { to, type } }),
    );
  }
  if (route === null) {
    return refuse(
      'unknown-message',
      new TroupeError('ERR_UNKNOWN_MESSAGE', `"${type}" is not a message of any registered protocol`, {
        details: { to, type },
      }),
    );
  }
  const { message, spec } = route;
  if (spec.kind === 'ask' && !isAsk) {
    return refuse(
      'malformed',
      new TroupeError('ERR_VALIDATION', `"${type}" is a request but the envelope has no replyTo`, {
        details: { type },
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
  return { envelope, target, message, spec };
}

/**
 * The local timeout of a request that came with a deadline: what is left of it, rounded up to a
 * quarter second, so that requests share a few timeout queues instead of one per millisecond value.
 * (The asker keeps the exact deadline; this one only makes sure the local ask ends.)
 */
export function boundaryTimeout(leftMs: number): number {
  return Math.max(250, Math.ceil(leftMs / 250) * 250);
}

/** Tell options that carry a remote message's sender and trace context, allocating only when needed. */
export function tellOptions(
  from: ActorRef<any> | undefined,
  trace: Envelope['trace'],
): TellOptions | undefined {
  if (trace === undefined) return from === undefined ? undefined : { from };
  return from === undefined ? { trace } : { from, trace };
}

/**
 * What a wire type names for a target's behaviour: its message and spec, the protocol the target does not
 * speak, or null for nothing known. A `<protocol>.<message>` is looked up among the registered
 * protocols; a bare message name (sent through a ref given no protocol) among the target's own.
 * Own properties only: a name like `__proto__` never reaches Object.prototype.
 */
export function resolveMessage(
  host: Pick<IngressHost, 'protocol'>,
  target: CompiledBehavior | undefined,
  type: string,
): { readonly message: string; readonly spec: MessageSpec } | { readonly unspoken: string } | null {
  const names = splitType(type);
  if (names === undefined) {
    if (target === undefined || !Object.hasOwn(target.specs, type)) return null;
    return { message: type, spec: target.specs[type]!.spec };
  }
  const protocol = host.protocol(names.protocol);
  if (protocol === undefined || !Object.hasOwn(protocol.messages, names.message)) return null;
  if (target !== undefined && !target.protocols.some((p) => p.name === protocol.name)) {
    return { unspoken: protocol.name };
  }
  return { message: names.message, spec: protocol.messages[names.message] as MessageSpec };
}

/** A refusal by {@link admitEnvelope}. */
export type IngressFailure = { readonly ok: false; readonly error: TroupeError };

/** Where the outcome of an admitted envelope goes (the router sends it back over the wire). */
export interface Responder {
  /**
   * The outcome of `envelope`: for an ask its reply (unchecked: the asker's side checks it against
   * the reply schema, the boundary the reply crosses) or its error; for a tell only a failure.
   */
  respond(envelope: Envelope, result: IngressResult): void;
}

/**
 * The one ingress path's last step, shared by the router and {@link deliverEnvelope}: a body that
 * failed its schema is a dead letter and an error; a checked tell is queued; a checked ask is made,
 * its outcome going to `responder` without a promise in between. Never throws.
 */
export function handOver(
  host: IngressHost,
  admitted: Admitted,
  checked: Validated,
  now: number,
  sender: ActorRef<any> | undefined,
  responder: Responder,
): void {
  const { envelope, target, message, spec } = admitted;
  if (!checked.ok) {
    host.deadLetter(
      envelope.to,
      envelope.from,
      envelope.type,
      envelope.body,
      'validation-failed',
      checked.error,
    );
    responder.respond(envelope, checked);
    return;
  }
  if (spec.kind === 'tell') {
    try {
      target.tell(message, checked.value, tellOptions(sender, envelope.trace));
    } catch (error) {
      // A full mailbox under `reject`: the kernel already reported the dead letter.
      responder.respond(envelope, { ok: false, error: asTroupeError(error) });
    }
    return;
  }
  const timeoutMs =
    envelope.deadline === undefined ? host.askTimeoutMs : boundaryTimeout(envelope.deadline - now);
  target.requestWith(
    message,
    checked.value,
    timeoutMs,
    undefined,
    sender,
    envelope.trace,
    (value) => responder.respond(envelope, { ok: true, reply: value }),
    (error: unknown) => responder.respond(envelope, { ok: false, error: asTroupeError(error) }),
  );
}

function asTroupeError(error: unknown): TroupeError {
  return TroupeError.is(error)
    ? error
    : new TroupeError('ERR_ACTOR_CRASHED', String(error), { cause: error });
}

/**
 * Delivers data that arrived from outside this process (a transport decoded it from bytes), through
 * the same path as the router's. Nothing in it is trusted: the envelope shape, the protocol and
 * message names (only registered protocols are known), the target, the deadline and the body against
 * its schema are all checked, and the reply of an ask is checked against its reply schema. Every
 * refusal is a dead letter with its reason and, for an ask, an error result. It never throws.
 *
 * `now` is wall-clock epoch milliseconds for deadlines (envelopes carry epoch deadlines).
 */
export async function deliverEnvelope(
  host: IngressHost,
  data: unknown,
  now = host.clock.wallNow(),
): Promise<IngressResult> {
  const admitted = admitEnvelope(host, data, now);
  if (!('target' in admitted)) return admitted;
  const { envelope, spec } = admitted;
  const checked = await validate(spec.body, envelope.body, `"${envelope.type}" to ${envelope.to}`);
  let sender: ActorRef<any> | undefined;
  if (envelope.from !== undefined) {
    try {
      sender = host.ref(envelope.from);
    } catch {
      sender = undefined;
    }
  }
  return new Promise<IngressResult>((resolve) => {
    handOver(host, admitted, checked, now, sender, {
      respond: (_envelope, result) => {
        if (!result.ok || spec.kind !== 'ask') {
          resolve(result);
          return;
        }
        settleValidated(spec.reply, result.reply, `reply to "${envelope.type}" from ${envelope.to}`, {
          resolve: (reply) => resolve({ ok: true, reply }),
          reject: (error) => {
            host.deadLetter(
              envelope.from ?? '(the asker)',
              envelope.to,
              envelope.type,
              result.reply,
              'validation-failed',
              error,
            );
            resolve({ ok: false, error });
          },
        });
      },
    });
    // A tell that was queued has no outcome to wait for.
    if (spec.kind === 'tell') resolve({ ok: true });
  });
}

/** True when `ref` is an actor of this process. */
export function isLocal(ref: ActorRef<any>): boolean {
  return ref instanceof Cell;
}
