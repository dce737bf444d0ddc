import {
  type Address,
  type Infer,
  invalidOption,
  type Schema,
  TroupeError,
  validate,
} from '../protocols/index.js';
import { type Guard, type GuardOptions, guard } from '../supervisors/index.js';
import type { ToolCall, ToolSpec } from './model.js';

/** What a tool's `run` gets besides its arguments. */
export interface ToolContext {
  /** Aborts at the tool's deadline, or when the agent stops: pass it on to I/O. */
  readonly signal: AbortSignal;
  /** The agent calling it. */
  readonly agent: Address;
  /** The agent's run the call belongs to (absent when called outside a run). */
  readonly run?: string;
}

/** How a tool is declared. */
export interface ToolDefinition<S extends Schema> {
  /** Its name as the model calls it: letters, digits, `_` and `-`, at most 64. */
  readonly name: string;
  /** What it does, for the model. */
  readonly description: string;
  /** The schema of its arguments (Standard Schema); the model's arguments are checked against it first. */
  readonly input: S;
  /**
   * The arguments as JSON Schema for the model. Defaults to what the schema gives through Standard
   * JSON Schema (zod does); required for a schema that cannot.
   */
  readonly parameters?: Readonly<Record<string, unknown>>;
  /** Its deadline: past it, its signal aborts and the model gets `ERR_CALL_TIMEOUT`. Defaults to 30,000 ms. */
  readonly timeoutMs?: number;
  /**
   * Whether running it twice is harmless (a lookup, a search). Only then is a failed call retried,
   * unless the error says nothing was sent. Defaults to false.
   */
  readonly idempotent?: boolean;
  /** The guard around it (breaker, bulkhead, retries), besides the deadline. Defaults to a breaker and 2 attempts. */
  readonly guard?: Omit<GuardOptions, 'name' | 'timeoutMs'>;
  /** Does the work; what it returns (JSON data, or text) goes back to the model. */
  readonly run: (args: Infer<S>, ctx: ToolContext) => unknown;
}

/** The result of one tool call, as the model gets it. */
export interface ToolResult {
  readonly content: string;
  readonly isError: boolean;
  /** For an error: its code. */
  readonly code?: string;
}

/** A declared tool, ready for agents. One tool object shares its guard among every agent using it. */
export interface Tool {
  readonly name: string;
  readonly spec: ToolSpec;
  readonly idempotent: boolean;
  /**
   * Checks the arguments and runs the tool under its guard and deadline. Never rejects: invalid
   * arguments (`ERR_VALIDATION`, and the tool does not run), a throw, a refusal or a timeout become
   * an error result for the model.
   */
  call(call: ToolCall, ctx: ToolContext): Promise<ToolResult>;
}

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * Declares a tool.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad definition (or a schema with no JSON Schema
 * and no `parameters`).
 * @example
 * ```ts
 * const search = tool({
 *   name: 'search',
 *   description: 'Searches the notes',
 *   input: z.object({ query: z.string() }),
 *   idempotent: true,
 *   run: async ({ query }, { signal }) => notes.search(query, { signal }),
 * });
 * ```
 */
export function tool<S extends Schema>(definition: ToolDefinition<S>): Tool {
  if (typeof definition !== 'object' || definition === null)
    throw invalidOption('tool', 'must be an object', definition);
  const { name, description, input, run, timeoutMs = 30_000, idempotent = false } = definition;
  if (typeof name !== 'string' || !TOOL_NAME.test(name))
    throw invalidOption('name', 'must be 1 to 64 letters, digits, _ or -', name);
  if (typeof description !== 'string') throw invalidOption('description', 'must be a string', description);
  if (typeof input?.['~standard']?.validate !== 'function')
    throw invalidOption('input', 'must be a Standard Schema', input);
  if (typeof run !== 'function') throw invalidOption('run', 'must be a function', run);
  const parameters = definition.parameters ?? jsonSchemaOf(input, name);
  return new DeclaredTool(
    name,
    { name, description, parameters },
    input,
    run as (args: unknown, ctx: ToolContext) => unknown,
    idempotent,
    guard({ retry: { attempts: 2 }, ...definition.guard, name: `tool:${name}`, timeoutMs }),
  );
}

/** The JSON Schema of a Standard Schema that offers one (Standard JSON Schema), without `$schema`. */
function jsonSchemaOf(schema: Schema, name: string): Readonly<Record<string, unknown>> {
  const converter = (
    schema['~standard'] as {
      jsonSchema?: { input?: (options: { target: string }) => Record<string, unknown> };
    }
  ).jsonSchema;
  if (typeof converter?.input !== 'function')
    throw invalidOption('parameters', `is required for tool "${name}": its schema gives no JSON Schema`);
  const { $schema: _, ...rest } = converter.input({ target: 'draft-2020-12' });
  return rest;
}

class DeclaredTool implements Tool {
  constructor(
    readonly name: string,
    readonly spec: ToolSpec,
    private readonly input: Schema,
    private readonly run: (args: unknown, ctx: ToolContext) => unknown,
    readonly idempotent: boolean,
    private readonly guard: Guard,
  ) {}

  async call(call: ToolCall, ctx: ToolContext): Promise<ToolResult> {
    let checked = validate(this.input, call.arguments, `the arguments of tool "${this.name}"`);
    if (checked instanceof Promise) checked = await checked;
    if (!checked.ok) return errorResult(checked.error);
    const args = checked.value;
    try {
      const value = await this.guard.call(async (signal) => this.run(args, { signal, agent: ctx.agent }), {
        signal: ctx.signal,
        idempotent: this.idempotent,
      });
      return { content: toContent(value), isError: false };
    } catch (error) {
      if (ctx.signal.aborted && error === ctx.signal.reason) throw error;
      return errorResult(
        TroupeError.is(error)
          ? error
          : new TroupeError(
              'ERR_TOOL_FAILED',
              `tool "${this.name}" failed: ${(error as Error)?.message ?? String(error)}`,
              {
                cause: error,
                details: { tool: this.name },
              },
            ),
      );
    }
  }
}

/** An error as the model sees it: its code and message, so it can correct itself. */
export function errorResult(error: TroupeError): ToolResult {
  return { content: `${error.code}: ${error.message}`, isError: true, code: error.code };
}

function toContent(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined) return '';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
