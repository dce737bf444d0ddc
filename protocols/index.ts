/**
 * Protocols: message schemas, envelopes, addresses and the error catalogue. Pure: no I/O.
 * @packageDocumentation
 */
export { type Address, type AddressParts, formatAddress, parseAddress } from './address.js';
export { decodeEnvelope, type Envelope, splitType, type TraceContext } from './envelope.js';
export { asError, ERROR_CODES, type ErrorCode, invalidOption, TroupeError } from './errors.js';
export { assertPlainData } from './plain-data.js';
export {
  type AnyProtocol,
  type AskKeys,
  type AskSpec,
  ask,
  type BodyOf,
  defineProtocol,
  type Infer,
  type MessageMap,
  type MessageSpec,
  type Protocol,
  type ReplyOf,
  type Schema,
  type TellKeys,
  type TellSpec,
  tell,
} from './protocol.js';
export { settleValidated, type Validated, validate } from './validation.js';
export {
  encodeWithHead,
  expandRuns,
  hopsOf,
  isRun,
  MAX_CORRELATION_ID,
  MAX_HOPS,
  nodeOf,
  REPLY,
  remoteError,
  replyBody,
  runElement,
  type WireEnvelope,
  type WireReply,
} from './wire.js';
