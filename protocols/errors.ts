/**
 * The error catalogue. Every error Troupe raises is a {@link TroupeError} with one of these codes.
 * The list is documented in `docs/errors.md`; a test fails when the two diverge.
 */
export const ERROR_CODES = {
  ERR_INVALID_OPTION: 'An option passed to a factory or constructor is out of range or of the wrong kind.',
  ERR_INVALID_CONFIG:
    "A node's configuration (its config module or a TROUPE_* environment variable) has a missing or bad field.",
  ERR_INVALID_NAME: 'An actor name is empty, contains "/", or starts with the reserved "$" or "@".',
  ERR_INVALID_ADDRESS: 'A string is not a Troupe address (`troupe://<system>/<node>/<path>`).',
  ERR_NAME_TAKEN: 'A sibling with the same name is already alive.',
  ERR_MISSING_HANDLER: 'A behaviour lacks a handler for a message of a protocol it declares.',
  ERR_PROTOCOL_CONFLICT:
    'Two protocols of one behaviour define the same message name, or one protocol name is reused with other messages.',
  ERR_UNKNOWN_MESSAGE: 'A message type is not part of any protocol the receiving actor implements.',
  ERR_VALIDATION: 'A message body or reply failed its schema.',
  ERR_NOT_PLAIN_DATA:
    'A message body holds a function, class instance, symbol, bigint or cycle (development-mode check).',
  ERR_MESSAGE_DROPPED: 'Send middleware refused the message; it became a dead letter.',
  ERR_MAILBOX_FULL: "The receiver's mailbox is full and its overflow policy is `reject`.",
  ERR_ASK_TIMEOUT: 'An ask got no reply within its timeout.',
  ERR_ASK_ABORTED: "An ask's AbortSignal fired before the reply arrived.",
  ERR_ACTOR_STOPPED: 'The target actor stopped (or was never started) before the message was handled.',
  ERR_NO_SUCH_ACTOR: 'No live actor has this address.',
  ERR_ACTOR_CRASHED: 'The handler of an ask threw or rejected; the actor crashed and the cause is chained.',
  ERR_HANDLER_TIMEOUT: "A handler ran past its behaviour's declared `handlerDeadlineMs`; the actor crashed.",
  ERR_START_FAILED: 'A `preStart` (or `postRestart`) hook threw; the actor crashed while starting.',
  ERR_RESTART_INTENSITY:
    'A supervisor exceeded its restart intensity, stopped its children and failed upward.',
  ERR_ESCALATION: "A root supervisor failed; the system stopped. The supervisor's failure is the cause.",
  ERR_MAX_CHILDREN: 'A dynamic supervisor already has its maximum number of children.',
  ERR_SYSTEM_STOPPED: 'The actor system is stopped or stopping and accepts no new work.',
  ERR_SYSTEM_DRAINING: 'The actor system is draining and accepts no new messages from outside.',
  ERR_ILLEGAL_STATE:
    'An operation was called where it is not allowed (for example `stash()` outside a handler).',
  ERR_MESSAGE_TOO_LARGE: "An envelope is larger than the node's `maxMessageBytes`.",
  ERR_OUTBOX_FULL: "The transport's outage buffer is full; the message was not sent.",
  ERR_NOT_DELIVERED:
    'A message could not be delivered: the transport or the cluster could not take it in time.',
  ERR_NODE_DOWN:
    "The node of an ask's target was declared down: before it answered (the message may have been handled), or before the ask was sent.",
  ERR_NO_ROUTE: 'An address names another node or cluster that this system cannot reach.',
  ERR_ACTIVATION_FAILED:
    "A named actor's activation crashed past its kind's restart policy; its key refuses messages for a while, then activates again.",
  ERR_TRANSPORT: 'The transport could not connect or failed.',
  ERR_REMOTE: 'Another node answered an ask with an error whose code this node does not know.',
  ERR_JOURNAL_CONFLICT: 'An append expected another stream version: another writer appended first.',
  ERR_FENCED:
    'An append carried a fencing token older than the newest seen for its stream: the activation is stale.',
  ERR_JOURNAL_CORRUPT: 'A stored event or snapshot cannot be decoded or fails its schema.',
  ERR_JOURNAL_UNAVAILABLE: "The journal's store (Postgres, PGlite) could not be reached or failed.",
  ERR_JOURNAL_LOCKED:
    'Another process has the PGlite data directory open; one process at a time may open it.',
  ERR_PROJECTION_FAILED:
    'A projection gave up on a batch of events after its retries; it stopped at its checkpoint.',
  ERR_BULKHEAD_FULL: 'Every slot of a bulkhead is taken and its queue is full; the call was refused at once.',
  ERR_SEARCH_UNAVAILABLE: 'The search index (Meilisearch) could not be reached or refused a request.',
  ERR_CIRCUIT_OPEN:
    'A circuit breaker is open (or half-open with its trial call out); the call was not made.',
  ERR_BUDGET_EXCEEDED: 'A call would exceed a token, cost or call budget; it was refused before it was sent.',
  ERR_CALL_TIMEOUT: 'A guarded call (a model, a tool) ran past its deadline; its AbortSignal was aborted.',
  ERR_MODEL_HTTP: 'A model provider answered with an HTTP error status.',
  ERR_MODEL_UNREACHABLE: 'A model provider could not be reached, or the connection broke mid-answer.',
  ERR_MODEL_MALFORMED: "A model provider's answer (body or stream) is not in its wire format.",
  ERR_TOOL_FAILED:
    'A tool is unknown, threw, or ran past its deadline; the model gets the error as the result.',
  ERR_STEP_LIMIT: 'An agent run reached its maximum number of steps without a final answer.',
  ERR_REPLAY_MISMATCH: 'A replayed run asked a model or a tool something other than what its record holds.',
  ERR_UNKNOWN_SPEAKER:
    "A group chat's speaker selection (a selector model, a handoff, a function) named no participant.",
  ERR_VERSION_CONFLICT:
    'A compare-and-set update expected another version of the entry: someone else wrote it first.',
  ERR_CONTRACT_FAILED:
    'A contract-net round ended without a result: no bid, or every bidder it was awarded to failed.',
  ERR_STEP_FAILED:
    'A workflow step failed after its retries; the workflow failed (after compensating, for a saga).',
  ERR_SIGNAL_TIMEOUT: 'A workflow step waiting for an external signal got none by its deadline.',
  ERR_COMPENSATION_FAILED:
    "A saga's compensation kept failing past its retries; some completed steps are left undone.",
  ERR_REVIEW_REJECTED: 'A review loop reached its maximum rounds without its critics passing the candidate.',
  ERR_RPC:
    'A NestJS handler reached through Troupe threw an `RpcException` (or another error); its error is the details.',
  ERR_OPS_LISTEN: 'The ops HTTP server could not listen on its port (in use, or not allowed).',
  ERR_MODULE_NOT_FOUND:
    "An isolated actor's module could not be loaded in its host (no such file, or its import threw).",
  ERR_EXPORT_NOT_FOUND: "An isolated actor's module has no export of the given name.",
  ERR_NOT_A_BEHAVIOR: "An isolated actor's export is not a behaviour made with `behavior()`.",
  ERR_NOT_CLONEABLE:
    'A message to an isolated actor cannot cross to its host: it holds a function, class instance, symbol, bigint or cycle.',
  ERR_HOST_CRASHED:
    'The worker thread or child process hosting isolated actors exited or failed; what was in flight to it failed.',
  ERR_CPU_BUDGET:
    "A handler blocked an isolated actor's host past its CPU budget; the host was terminated (a crash).",
  ERR_MEMORY_LIMIT: "An isolated actor's host ran past its memory limit and was terminated (a crash).",
  ERR_NET_LAB:
    'The chaos net lab cannot run here, or a command that makes its namespaces, links or packet filters failed.',
} as const;

/** Every error code Troupe uses. See `docs/errors.md`. */
export type ErrorCode = keyof typeof ERROR_CODES;

const BRAND = Symbol.for('troupe.error');

/**
 * The one error class of Troupe. `code` says what went wrong, `cause` chains the underlying error,
 * `details` carries structured facts (the address, the limit, the path of the bad field).
 *
 * @example
 * ```ts
 * try { await ref.ask('get', {}, { timeoutMs: 100 }); }
 * catch (e) { if (TroupeError.is(e, 'ERR_ASK_TIMEOUT')) retry(); }
 * ```
 */
export class TroupeError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TroupeError';
    this.code = code;
    this.details = options?.details;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** True when `error` is a TroupeError (from any copy of the package), optionally with `code`. */
  static is<C extends ErrorCode>(error: unknown, code?: C): error is TroupeError & { code: C } {
    if (typeof error !== 'object' || error === null || (error as Record<symbol, unknown>)[BRAND] !== true) {
      return false;
    }
    return code === undefined || (error as TroupeError).code === code;
  }

  /** A plain-data form that can cross a process boundary. */
  toJSON(): { code: ErrorCode; message: string; details?: Readonly<Record<string, unknown>> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** Shorthand for `new TroupeError('ERR_INVALID_OPTION', ...)` naming the option. */
export function invalidOption(option: string, problem: string, value?: unknown): TroupeError {
  return new TroupeError('ERR_INVALID_OPTION', `Invalid option \`${option}\`: ${problem}`, {
    details: { option, value },
  });
}

/** Turns anything thrown into an Error, keeping Errors as they are. */
export function asError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : `Non-error thrown: ${safeString(thrown)}`);
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
