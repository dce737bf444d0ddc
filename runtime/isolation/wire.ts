/**
 * What the parent and a host say to each other besides frames (the control messages), and the plain
 * form of errors and events that crosses between them.
 */
import { ERROR_CODES, type ErrorCode, TroupeError } from '../../protocols/index.js';
import type { SpawnOptions, TreeNode } from '../kernel/api.js';
import type { SystemEvent } from '../kernel/events.js';

/** An error as plain data. */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string | undefined;
  readonly code?: string | undefined;
  readonly details?: Record<string, unknown> | undefined;
  readonly cause?: WireError | undefined;
}

/** Control messages from the parent to a host. */
export type ToHost =
  /** A spare host loads modules ahead of being used (a restart then skips their import). */
  | {
      readonly t: 'preload';
      /** 0 for a spare's own preload (nobody waits for the answer). */
      readonly id: number;
      readonly modules: readonly string[];
      /** An export to check is a behaviour, once its module is loaded. */
      readonly check?: { readonly module: string; readonly export: string };
    }
  /** Makes the host a node of the parent's system. */
  | {
      readonly t: 'init';
      readonly system: string;
      readonly node: string;
      readonly parent: string;
      readonly beatMs: number;
      readonly askTimeoutMs: number;
      readonly devChecks: boolean;
      /** A worker host's record of the handler it runs, shared with the parent (see running.ts). */
      readonly running?: SharedArrayBuffer;
    }
  /** Spawns a top-level actor of the host (`ifAbsent`: unless one of that name is alive). */
  | {
      readonly t: 'spawn';
      readonly id: number;
      readonly module: string;
      readonly export: string;
      readonly name: string;
      readonly options: SpawnOptions | undefined;
      readonly ifAbsent: boolean;
    }
  | { readonly t: 'stop'; readonly timeoutMs: number };

/** Control messages from a host to its parent. */
export type FromHost =
  | { readonly t: 'booted' }
  | { readonly t: 'ready' }
  | { readonly t: 'spawned'; readonly id: number; readonly address: string }
  | { readonly t: 'spawn-failed'; readonly id: number; readonly error: WireError }
  | {
      readonly t: 'preloaded';
      readonly id: number;
      readonly failed: readonly string[];
      readonly error?: WireError;
    }
  | { readonly t: 'beat' }
  /** The names behind the numbers of what the host runs (once each; see running.ts). */
  | { readonly t: 'actor-name'; readonly id: number; readonly address: string }
  | { readonly t: 'type-name'; readonly id: number; readonly type: string }
  /** A process host's handler about to run (when it changed since its last heartbeat). */
  | { readonly t: 'running'; readonly actor: number; readonly type: number }
  | { readonly t: 'events'; readonly events: readonly Record<string, unknown>[] }
  | { readonly t: 'tree'; readonly children: readonly TreeNode[] }
  | { readonly t: 'stopped' };

/** An error as plain data, with its cause chain (a few levels). */
export function toWireError(error: unknown, depth = 0): WireError {
  if (!(error instanceof Error)) {
    return { name: 'Error', message: typeof error === 'string' ? error : safeJson(error) };
  }
  const coded = TroupeError.is(error) ? error : undefined;
  const code = (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: error.message,
    stack: error.stack,
    code: typeof code === 'string' ? code : undefined,
    details: coded?.details === undefined ? undefined : (plain(coded.details) as Record<string, unknown>),
    cause: depth < 4 && error.cause !== undefined ? toWireError(error.cause, depth + 1) : undefined,
  };
}

/** The error back from its plain form: a TroupeError when its code is one of the catalogue. */
export function fromWireError(wire: WireError): Error {
  const cause = wire.cause === undefined ? undefined : fromWireError(wire.cause);
  let error: Error;
  if (wire.code !== undefined && Object.hasOwn(ERROR_CODES, wire.code)) {
    error = new TroupeError(wire.code as ErrorCode, wire.message, {
      ...(cause === undefined ? {} : { cause }),
      ...(wire.details === undefined ? {} : { details: wire.details }),
    });
  } else {
    error = new Error(wire.message, cause === undefined ? undefined : { cause });
    error.name = wire.name;
    if (wire.code !== undefined) (error as { code?: string }).code = wire.code;
  }
  if (wire.stack !== undefined) error.stack = wire.stack;
  return error;
}

/** An event of a host's stream as plain data: errors in their wire form, bodies as JSON allows. */
export function toWireEvent(event: SystemEvent): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    if (value instanceof Error) out[key] = { $error: toWireError(value) };
    else out[key] = plain(value);
  }
  return out;
}

/** A host's event back from its plain form (its `at` is stamped again by the parent). */
export function fromWireEvent(wire: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(wire)) {
    const error = (value as { $error?: WireError } | null)?.$error;
    out[key] =
      typeof value === 'object' && value !== null && error !== undefined ? fromWireError(error) : value;
  }
  return out;
}

/** A value made plain (JSON's view of it); what JSON cannot hold becomes its description. */
function plain(value: unknown): unknown {
  if (value === null || typeof value !== 'object') {
    return typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint'
      ? String(value)
      : value;
  }
  try {
    return JSON.parse(JSON.stringify(value)) as unknown;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
