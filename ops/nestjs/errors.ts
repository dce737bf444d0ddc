import { TroupeError } from '../../protocols/index.js';

/** The value as JSON data (what can cross a node boundary), or its string form when it is not JSON. */
export function plainData(value: unknown): unknown {
  if (value === undefined) return null;
  try {
    return JSON.parse(JSON.stringify(value)) as unknown;
  } catch {
    return String(value);
  }
}

/**
 * The Troupe error for the `err` of a Nest write packet: what a handler's `RpcException` carried
 * (a string, or an object such as `{ status: 'error', message }`), or Nest's "Internal server error"
 * for any other exception. `details.error` keeps it as JSON data.
 */
export function rpcError(pattern: string, err: unknown): TroupeError {
  const message =
    typeof err === 'string'
      ? err
      : typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string'
        ? (err as { message: string }).message
        : JSON.stringify(plainData(err));
  return new TroupeError('ERR_RPC', `the Nest handler of "${pattern}" failed: ${message}`, {
    details: { pattern, error: plainData(err) },
  });
}

/**
 * What a Nest client sees for a failed ask, in Nest's convention (a plain object with `status` and
 * `message`) with the Troupe error's `code` and `details` beside them.
 */
export interface TroupeRpcError {
  readonly status: 'error';
  readonly code: string;
  readonly message: string;
  readonly details?: unknown;
}

/** The Nest error object for an error a Troupe ask or tell failed with. */
export function nestError(error: unknown): TroupeRpcError {
  if (TroupeError.is(error)) {
    return error.details === undefined
      ? { status: 'error', code: error.code, message: error.message }
      : { status: 'error', code: error.code, message: error.message, details: plainData(error.details) };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { status: 'error', code: 'ERR_RPC', message };
}
