import type { StandardSchemaV1 } from '@standard-schema/spec';
import { invalidOption } from './errors.js';

/** Any Standard Schema (zod, valibot, arktype, ...). zod is the documented choice. */
export type Schema = StandardSchemaV1;

/** What a schema produces after validation: the type a handler sees. */
export type Infer<S> = S extends StandardSchemaV1 ? StandardSchemaV1.InferOutput<S> : never;

/** A fire-and-forget message: only a body. */
export interface TellSpec<B extends Schema = Schema> {
  readonly kind: 'tell';
  readonly body: B;
}

/** A request: a body and the schema of its reply. */
export interface AskSpec<B extends Schema = Schema, R extends Schema = Schema> {
  readonly kind: 'ask';
  readonly body: B;
  readonly reply: R;
}

/** One message of a protocol. */
export type MessageSpec = TellSpec<any> | AskSpec<any, any>;

/**
 * A named set of message types with their schemas: the one source of truth for what an actor
 * accepts. Types for `tell`, `ask` and handlers are inferred from it.
 */
export interface Protocol<N extends string = string, M extends Record<string, MessageSpec> = any> {
  readonly name: N;
  readonly messages: M;
}

/** Any protocol; the constraint for generic parameters. */
export type AnyProtocol = Protocol<string, any>;

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void
  ? I
  : never;

/** All messages of a protocol or of a union of protocols, by name. */
export type MessageMap<P extends AnyProtocol> = UnionToIntersection<
  P extends Protocol<string, infer M> ? M : never
>;

type IsAny<T> = 0 extends 1 & T ? true : false;

/** Names of the messages of `P` declared as `S` (any name for an untyped ref). */
type KeysOf<P extends AnyProtocol, S> =
  IsAny<P['messages']> extends true
    ? string
    : { [K in keyof MessageMap<P>]: MessageMap<P>[K] extends S ? K : never }[keyof MessageMap<P>] & string;

/** Names of the fire-and-forget messages of `P` (any name for an untyped ref). */
export type TellKeys<P extends AnyProtocol> = KeysOf<P, TellSpec<any>>;

/** Names of the request messages of `P` (any name for an untyped ref). */
export type AskKeys<P extends AnyProtocol> = KeysOf<P, AskSpec<any, any>>;

/** The type of schema field `F` (`body` or `reply`) of message `K` of `P` (`unknown` for an untyped ref). */
type FieldOf<P extends AnyProtocol, K extends PropertyKey, F extends 'body' | 'reply'> =
  IsAny<P['messages']> extends true
    ? unknown
    : K extends keyof MessageMap<P>
      ? MessageMap<P>[K] extends Record<F, infer S>
        ? Infer<S>
        : never
      : never;

/** The body type of message `K` of `P` (`unknown` for an untyped ref). */
export type BodyOf<P extends AnyProtocol, K extends PropertyKey> = FieldOf<P, K, 'body'>;

/** The reply type of request `K` of `P` (`unknown` for an untyped ref). */
export type ReplyOf<P extends AnyProtocol, K extends PropertyKey> = FieldOf<P, K, 'reply'>;

/** Declares a fire-and-forget message with its body schema. */
export function tell<B extends Schema>(body: B): TellSpec<B> {
  return { kind: 'tell', body };
}

/** Declares a request with its body schema and reply schema. */
export function ask<B extends Schema, R extends Schema>(body: B, reply: R): AskSpec<B, R> {
  return { kind: 'ask', body, reply };
}

const PROTOCOL_NAME = /^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*)*$/;
const MESSAGE_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

/**
 * Defines a protocol: a name and its messages, each with a Standard Schema.
 * On the wire a message's type is `<protocol>.<message>`.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad name or a message without a schema.
 * @example
 * ```ts
 * const Counter = defineProtocol('counter', {
 *   add: tell(z.object({ by: z.number() })),
 *   get: ask(z.object({}), z.number()),
 * });
 * ```
 */
export function defineProtocol<const N extends string, const M extends Record<string, MessageSpec>>(
  name: N,
  messages: M,
): Protocol<N, M> {
  if (typeof name !== 'string' || !PROTOCOL_NAME.test(name)) {
    throw invalidOption('name', 'a protocol name is letters, digits, "_" or "-", dot-separated', name);
  }
  if (typeof messages !== 'object' || messages === null || Object.keys(messages).length === 0) {
    throw invalidOption('messages', `protocol "${name}" needs at least one message`);
  }
  for (const [message, spec] of Object.entries(messages)) {
    if (!MESSAGE_NAME.test(message)) {
      throw invalidOption(
        'messages',
        `message name "${message}" of "${name}" must be letters, digits, "_" or "-"`,
      );
    }
    if (!isMessageSpec(spec)) {
      throw invalidOption(
        `messages.${message}`,
        `declare it with tell(schema) or ask(schema, replySchema) (protocol "${name}")`,
      );
    }
  }
  return Object.freeze({ name, messages: Object.freeze({ ...messages }) });
}

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && '~standard' in value;
}

function isMessageSpec(value: unknown): value is MessageSpec {
  if (typeof value !== 'object' || value === null) return false;
  const spec = value as { kind?: unknown; body?: unknown; reply?: unknown };
  if (spec.kind === 'tell') return isSchema(spec.body);
  if (spec.kind === 'ask') return isSchema(spec.body) && isSchema(spec.reply);
  return false;
}
