import { ERROR_CODES, type ErrorCode, TroupeError } from '../protocols/index.js';
import type { ModelCallOptions, ModelPort, ModelRequest, ModelResponse, ToolCall } from './model.js';
import type { Tool, ToolContext, ToolResult } from './tools.js';

/** A recorded failure of a model call: a typed error, as data. */
export interface RecordedError {
  readonly code: string;
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * One recorded call: a model's request and its response (or its typed error), or a tool call and
 * its result.
 */
export type RecordEntry =
  | {
      readonly kind: 'model';
      readonly model: string;
      readonly request: ModelRequest;
      readonly response?: ModelResponse;
      readonly error?: RecordedError;
    }
  | { readonly kind: 'tool'; readonly tool: string; readonly call: ToolCall; readonly result: ToolResult };

/** Records every model and tool call of the agent it is given to. Use one recorder per agent. */
export interface Recorder {
  /** The model, recording each call: its response, or its error when it is a typed one. */
  model(model: ModelPort): ModelPort;
  /** The tools, recording each call and its result. */
  tools(tools: readonly Tool[]): Tool[];
  /** The record so far, as plain JSON data (store it as you like). */
  readonly entries: readonly RecordEntry[];
}

/** A model and tools that answer from a record, without calling out. */
export interface Replay {
  readonly model: ModelPort;
  /** Tools with the same names and specs whose calls answer from the record. */
  tools(tools: readonly Tool[]): Tool[];
  /** Entries not replayed yet. */
  readonly remaining: number;
}

/**
 * Makes a recorder.
 * @example
 * ```ts
 * const rec = recorder();
 * const scout = system.spawn(agent({ model: rec.model(model), tools: rec.tools([search]) }), { name: 'scout' });
 * await scout.ask('run', { input: 'Find the tide tables' });
 * writeFileSync('run.json', JSON.stringify(rec.entries));
 * ```
 */
export function recorder(): Recorder {
  const entries: RecordEntry[] = [];
  return {
    entries,
    model: (model) => ({
      name: model.name,
      complete: async (request: ModelRequest, call?: ModelCallOptions) => {
        let response: ModelResponse;
        try {
          response = await model.complete(request, call);
        } catch (error) {
          // A typed failure (a provider down past its guards) is part of the run; an abort is not.
          if (TroupeError.is(error) && !(call?.signal?.aborted === true && error === call.signal.reason)) {
            const { code, message, details } = error;
            entries.push(
              plain({
                kind: 'model',
                model: model.name,
                request,
                error: { code, message, ...(details === undefined ? {} : { details }) },
              }),
            );
          }
          throw error;
        }
        entries.push(plain({ kind: 'model', model: model.name, request, response }));
        return response;
      },
    }),
    tools: (tools) =>
      tools.map((tool) => ({
        name: tool.name,
        spec: tool.spec,
        idempotent: tool.idempotent,
        call: async (call: ToolCall, ctx: ToolContext) => {
          // The entry takes its place when the call starts, so calls that run side by side are
          // recorded in the order the agent made them, which is the order a replay asks in.
          const entry = { kind: 'tool', tool: tool.name, call: plain(call) } as {
            kind: 'tool';
            tool: string;
            call: ToolCall;
            result: ToolResult;
          };
          entries.push(entry);
          try {
            entry.result = plain(await tool.call(call, ctx));
          } catch (error) {
            entry.result = {
              content: `aborted: ${(error as Error)?.message ?? String(error)}`,
              isError: true,
            };
            throw error;
          }
          return entry.result;
        },
      })),
  };
}

/**
 * Replays a record: the model answers each request with the recorded response and the tools answer
 * with the recorded results, in order, without calling out. A request, tool or arguments other than
 * the record's is refused with `ERR_REPLAY_MISMATCH`, so a replay either matches or says where it
 * drifted.
 * @example
 * ```ts
 * const rp = replay(JSON.parse(readFileSync('run.json', 'utf8')));
 * const again = system.spawn(agent({ model: rp.model, tools: rp.tools([search]) }), { name: 'scout' });
 * ```
 */
export function replay(record: readonly RecordEntry[]): Replay {
  let next = 0;
  const take = <K extends RecordEntry['kind']>(
    kind: K,
    asked: unknown,
  ): Extract<RecordEntry, { kind: K }> => {
    const entry = record[next];
    if (entry === undefined || entry.kind !== kind) {
      throw mismatch(
        next,
        `a ${kind} call`,
        entry === undefined ? 'the end of the record' : `a ${entry.kind} call`,
        asked,
      );
    }
    next++;
    return entry as Extract<RecordEntry, { kind: K }>;
  };
  return {
    get remaining() {
      return record.length - next;
    },
    model: {
      name: firstModelName(record),
      complete: async (request: ModelRequest) => {
        const index = next;
        const entry = take('model', request);
        if (!sameJson(entry.request, request))
          throw mismatch(index, 'this request', 'the recorded one', request, entry.request);
        if (entry.error !== undefined) {
          const { code, message, details } = entry.error;
          if (!(code in ERROR_CODES))
            throw mismatch(index, 'a known error', `the unknown code ${code}`, request);
          throw new TroupeError(
            code as ErrorCode,
            message,
            details === undefined ? undefined : { details: { ...details } },
          );
        }
        if (entry.response === undefined)
          throw mismatch(index, 'a response', 'neither a response nor an error', request);
        return entry.response;
      },
    },
    tools: (tools) =>
      tools.map((tool) => ({
        name: tool.name,
        spec: tool.spec,
        idempotent: tool.idempotent,
        call: async (call: ToolCall) => {
          const index = next;
          const entry = take('tool', call);
          if (entry.tool !== tool.name || !sameJson(entry.call, call))
            throw mismatch(
              index,
              `tool "${tool.name}" with these arguments`,
              `tool "${entry.tool}"`,
              call,
              entry.call,
            );
          return entry.result;
        },
      })),
  };
}

function firstModelName(record: readonly RecordEntry[]): string {
  for (const entry of record) if (entry.kind === 'model') return entry.model;
  return 'replay';
}

function mismatch(
  index: number,
  asked: string,
  recorded: string,
  got: unknown,
  expected?: unknown,
): TroupeError {
  return new TroupeError(
    'ERR_REPLAY_MISMATCH',
    `replay entry ${index}: the run asked for ${asked}, the record holds ${recorded}`,
    {
      details: { index, got, ...(expected === undefined ? {} : { expected }) },
    },
  );
}

/** A JSON copy, so the record holds data, not live objects the run may change later. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
