import { z } from 'zod';
import {
  type Journal,
  type PersistentStream,
  recoverStream,
  type StreamDefinition,
} from '../../memory/index.js';
import {
  ask,
  defineProtocol,
  ERROR_CODES,
  type ErrorCode,
  invalidOption,
  TroupeError,
  tell,
  validate,
} from '../../protocols/index.js';
import {
  type ActivationPolicy,
  type ActorSystem,
  behavior,
  exponential,
  type KeyRules,
  type KindOptions,
  retrying,
  sleep,
} from '../../runtime/index.js';
import { type ResolvedWorkflow, resolvedWorkflow, type Workflow } from './definition.js';
import {
  applyRunEvent,
  newRunState,
  type RunHost,
  type RunState,
  runEventSchemas,
  type WorkflowError,
  WorkflowRun,
} from './run.js';

const errorSchema = z.object({
  code: z.string(),
  message: z.string(),
  step: z.string().optional(),
  cause: z.object({ code: z.string().optional(), message: z.string() }).optional(),
  undone: z.array(z.string()).readonly().optional(),
});

const statusSchema = z.object({
  id: z.string(),
  workflow: z.string().nullable(),
  state: z.enum(['new', 'running', 'compensating', 'completed', 'failed']),
  completedSteps: z.number(),
  output: z.unknown().optional(),
  error: errorSchema.optional(),
  compensated: z.array(z.string()),
  waiting: z.array(z.string()),
});

/** A workflow instance's state as its actor reports it. */
export type WorkflowStatus = z.infer<typeof statusSchema>;

/**
 * What a workflow instance's named actor (`@workflow/<id>`) speaks. `start` is idempotent: a second
 * start of the same id answers the instance's status and starts nothing.
 */
export const WorkflowProtocol = defineProtocol('troupe.workflow', {
  start: ask(z.object({ workflow: z.string().min(1), input: z.unknown() }), statusSchema),
  signal: ask(
    z.object({ step: z.string().min(1), value: z.unknown() }),
    z.object({ accepted: z.boolean(), reason: z.string().optional() }),
  ),
  status: ask(z.object({}), statusSchema),
  /** Keeps a running instance from being passivated (a timer of its own sends it). */
  keepAlive: tell(z.object({})),
  /** The run hit a journal failure outside a handler: crash, so the instance recovers. */
  fail: tell(z.object({})),
});

/** How a workflow ended: its output, or a typed error (and the steps compensated before it). */
export type WorkflowOutcome =
  | { readonly ok: true; readonly output: unknown }
  | { readonly ok: false; readonly error: TroupeError; readonly compensated: readonly string[] };

/** Options of {@link workflowEngine}. */
export interface WorkflowEngineOptions {
  /** Where every instance's events go (stream `workflow-<id>`). */
  readonly journal: Journal;
  /** The definitions this node can run; every node registers the same ones. */
  readonly workflows: readonly Workflow<any>[];
  /** The name the kind is registered under (`kinds: { [name]: engine.kind }`). Defaults to `'workflow'`. */
  readonly kindName?: string;
  /** An idle instance (ended, or not yet started) is passivated after this. Defaults to 60 s. */
  readonly passivateAfterMs?: number;
  /** The keys (instance ids) accepted. Defaults to the runtime's rules. */
  readonly keys?: KeyRules;
  /** How an instance's activation is restarted after a crash. Defaults to the runtime's. */
  readonly restart?: ActivationPolicy;
  /** How often `result()` asks a remote instance for its status. Defaults to 500 ms. */
  readonly pollMs?: number;
}

/** Options of a start or a wait. */
export interface WorkflowCallOptions {
  /** Each ask's timeout. Defaults to 10 s. */
  readonly askTimeoutMs?: number;
}

/** A started workflow instance, from any node of the cluster. */
export interface WorkflowHandle {
  /** The instance's id (its key: `@workflow/<id>`). */
  readonly id: string;
  /** The instance's status now. */
  status(options?: WorkflowCallOptions): Promise<WorkflowStatus>;
  /**
   * Waits for the outcome: at once on the node that hosts the instance, otherwise by asking every
   * `pollMs` (which also activates an instance again on a survivor after its node died). Errors of
   * the asks (a dead node, a timeout) are waited out, and so is an instance not yet started: give a
   * `signal` to bound the wait.
   * @throws the `signal`'s reason when it aborts.
   */
  result(options?: WorkflowCallOptions & { readonly signal?: AbortSignal }): Promise<WorkflowOutcome>;
  /**
   * Sends the external signal a `signal` step waits for (or will wait for); true when the instance
   * recorded it, false when it cannot take it (no such signal step, already signalled, ended).
   */
  signal(step: string, value: unknown, options?: WorkflowCallOptions): Promise<boolean>;
}

/** Runs workflow definitions as named persistent actors of a kind registered on every node. */
export interface WorkflowEngine {
  /** The name to register {@link kind} under. */
  readonly kindName: string;
  /** The kind: `createNode({ kinds: { [engine.kindName]: engine.kind } })`. */
  readonly kind: KindOptions;
  /**
   * Starts instance `id` of `flow` with `input` (plain JSON data, checked by the definition's `input`
   * schema), on whichever node placement picks. Starting an id again starts nothing.
   * @throws TroupeError `ERR_INVALID_OPTION` for a definition the engine was not given;
   * `ERR_VALIDATION` for an input its schema refuses; `ERR_ILLEGAL_STATE` when the id runs another
   * definition; the ask's errors.
   */
  start<I>(
    system: ActorSystem,
    flow: Workflow<I>,
    id: string,
    input: I,
    options?: WorkflowCallOptions,
  ): Promise<WorkflowHandle>;
  /** A handle on instance `id`, started or not. */
  handle(system: ActorSystem, id: string): WorkflowHandle;
  /** Starts and waits for the outcome. */
  run<I>(
    system: ActorSystem,
    flow: Workflow<I>,
    id: string,
    input: I,
    options?: WorkflowCallOptions,
  ): Promise<WorkflowOutcome>;
}

/** Defaults of {@link workflowEngine}. */
export const workflowEngineDefaults = {
  kindName: 'workflow',
  passivateAfterMs: 60_000,
  pollMs: 500,
  askTimeoutMs: 10_000,
} as const;

interface InstanceState {
  host: RunHost | undefined;
  run: WorkflowRun | undefined;
  fatal: Error | undefined;
}

function toError(error: WorkflowError, id: string): TroupeError {
  const cause =
    error.cause === undefined
      ? undefined
      : isCode(error.cause.code)
        ? new TroupeError(error.cause.code, error.cause.message)
        : new Error(error.cause.message);
  return new TroupeError(isCode(error.code) ? error.code : 'ERR_REMOTE', error.message, {
    ...(cause === undefined ? {} : { cause }),
    details: {
      workflow: id,
      ...(error.step === undefined ? {} : { step: error.step }),
      ...(error.undone === undefined ? {} : { undone: error.undone }),
    },
  });
}

function isCode(code: string | undefined): code is ErrorCode {
  return code !== undefined && Object.hasOwn(ERROR_CODES, code);
}

function outcomeOf(status: WorkflowStatus): WorkflowOutcome | undefined {
  if (status.state === 'completed') return { ok: true, output: status.output };
  if (status.state === 'failed')
    return { ok: false, error: toError(status.error!, status.id), compensated: status.compensated };
  return undefined;
}

/**
 * The workflow engine of a node: a kind of named persistent actor whose instances run the given
 * definitions. Register its kind on every node; start instances from any node. Each instance keeps
 * its events in stream `workflow-<id>` of the journal, appended with its activation's fence; it
 * resumes on whichever node its next message (a `result()` poll, a signal) reaches after a crash.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad option or two definitions with one name.
 * @example
 * ```ts
 * const engine = workflowEngine({ journal, workflows: [order] });
 * const node = await createNode({ name: 'shop', transport, kinds: { workflow: engine.kind } });
 * const outcome = await engine.run(node, order, 'order-42', { sku: 'tea' });
 * ```
 */
export function workflowEngine(options: WorkflowEngineOptions): WorkflowEngine {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const { journal } = options;
  if (typeof journal?.append !== 'function') throw invalidOption('journal', 'must be a journal', journal);
  if (!Array.isArray(options.workflows))
    throw invalidOption('workflows', 'must be an array', options.workflows);
  const definitions = new Map<string, ResolvedWorkflow>();
  for (const flow of options.workflows) {
    const resolved = resolvedWorkflow(flow);
    if (definitions.has(resolved.name))
      throw invalidOption('workflows', `has two definitions named "${resolved.name}"`);
    definitions.set(resolved.name, resolved);
  }
  const kindName = options.kindName ?? workflowEngineDefaults.kindName;
  if (typeof kindName !== 'string' || kindName === '')
    throw invalidOption('kindName', 'must be a non-empty string', kindName);
  const passivateAfterMs = options.passivateAfterMs ?? workflowEngineDefaults.passivateAfterMs;
  if (!(Number.isFinite(passivateAfterMs) && passivateAfterMs > 0))
    throw invalidOption('passivateAfterMs', 'must be a positive number', passivateAfterMs);
  const pollMs = options.pollMs ?? workflowEngineDefaults.pollMs;
  if (!(Number.isFinite(pollMs) && pollMs > 0))
    throw invalidOption('pollMs', 'must be a positive number', pollMs);

  /** Waiters for instances hosted on this process, by system and id: told as soon as an instance ends. */
  const waiters = new Map<string, Set<(status: WorkflowStatus) => void>>();
  const waiterKey = (system: ActorSystem, id: string) => `${system.name}\u0000${id}`;

  const stream: StreamDefinition<RunState, typeof runEventSchemas> = {
    journal,
    persistenceId: ({ name }) => `workflow-${name}`,
    initialState: newRunState,
    events: runEventSchemas,
    apply: applyRunEvent as unknown as StreamDefinition<RunState, typeof runEventSchemas>['apply'],
  };

  const statusOf = (id: string, run: WorkflowRun | undefined): WorkflowStatus => {
    const state = run?.state ?? newRunState();
    return {
      id,
      workflow: state.definition ?? null,
      state: state.phase,
      completedSteps: state.done.size,
      ...(state.phase === 'completed' ? { output: state.output } : {}),
      ...(state.phase === 'failed' && state.failure !== undefined ? { error: state.failure } : {}),
      compensated: state.compensated,
      waiting: run?.waitingForSignals() ?? [],
    };
  };

  const keepAliveMs = Math.max(1, Math.floor(passivateAfterMs / 3));

  const instance = behavior({
    protocols: [WorkflowProtocol],
    initialState: (): InstanceState => ({ host: undefined, run: undefined, fatal: undefined }),
    preStart: async (ctx) => {
      const recovered = await recoverStream(ctx, stream);
      const state = recovered.state;
      const id = keyOf(ctx.self.address);
      const flow = state.definition === undefined ? undefined : definitions.get(state.definition);
      if (state.definition !== undefined && flow === undefined)
        throw invalidOption(
          'workflows',
          `has no definition "${state.definition}" for instance "${id}" on this node`,
        );
      const host: RunHost = {
        id,
        system: ctx.system,
        signal: ctx.signal,
        stream: recovered.stream as PersistentStream<RunState>,
        fatal: (error) => {
          ctx.state.fatal = error;
          ctx.self.tell('fail', {});
        },
        settled: () => {
          ctx.timers.cancel('keepAlive');
          const status = statusOf(id, ctx.state.run);
          const key = waiterKey(ctx.system, id);
          const set = waiters.get(key);
          waiters.delete(key);
          if (set !== undefined) for (const waiter of set) waiter(status);
        },
      };
      const run = new WorkflowRun(host, flow, state);
      ctx.state = { host, run, fatal: undefined };
      if (state.phase === 'running' || state.phase === 'compensating') {
        ctx.timers.startPeriodic('keepAlive', keepAliveMs, 'keepAlive', {});
        run.resume();
      }
    },
    postStop: (ctx) => ctx.state.run?.stop(),
    preRestart: (ctx) => ctx.state.run?.stop(),
    handlers: {
      start: async ({ workflow: name, input }, ctx) => {
        const run = ctx.state.run!;
        const id = run.state.definition === undefined ? keyOf(ctx.self.address) : undefined;
        if (id === undefined) return statusOf(keyOf(ctx.self.address), run);
        const flow = definitions.get(name);
        if (flow === undefined) {
          return {
            ...statusOf(id, run),
            error: { code: 'ERR_INVALID_OPTION', message: `no workflow definition "${name}" on this node` },
          };
        }
        const fresh = new WorkflowRun(ctx.state.host!, flow, run.state);
        ctx.state.run = fresh;
        await fresh.begin(name, input);
        ctx.timers.startPeriodic('keepAlive', keepAliveMs, 'keepAlive', {});
        fresh.resume();
        return statusOf(id, fresh);
      },
      signal: ({ step, value }, ctx) => ctx.state.run!.receiveSignal(step, value),
      status: (_body, ctx) => statusOf(keyOf(ctx.self.address), ctx.state.run),
      keepAlive: () => {},
      fail: (_body, ctx) => {
        if (ctx.state.fatal !== undefined) throw ctx.state.fatal;
      },
    },
  });

  const kind: KindOptions = {
    behavior: instance,
    passivateAfterMs,
    ...(options.keys === undefined ? {} : { keys: options.keys }),
    ...(options.restart === undefined ? {} : { restart: options.restart }),
  };

  const handle = (system: ActorSystem, id: string): WorkflowHandle => {
    const ref = () => system.actorOf(kindName, id, WorkflowProtocol);
    const timeout = (o?: WorkflowCallOptions) => ({
      timeoutMs: o?.askTimeoutMs ?? workflowEngineDefaults.askTimeoutMs,
    });
    return {
      id,
      status: (o) => ref().ask('status', {}, timeout(o)),
      signal: async (step, value, o) => (await ref().ask('signal', { step, value }, timeout(o))).accepted,
      result: (o) => waitFor(system, id, ref, timeout(o), o?.signal),
    };
  };

  const waitFor = async (
    system: ActorSystem,
    id: string,
    ref: () => ReturnType<ActorSystem['actorOf']>,
    askOptions: { timeoutMs: number },
    signal: AbortSignal | undefined,
  ): Promise<WorkflowOutcome> => {
    const stop = new AbortController();
    const abort = () => stop.abort(signal?.reason);
    signal?.addEventListener('abort', abort, { once: true });
    const key = waiterKey(system, id);
    let waiter: ((status: WorkflowStatus) => void) | undefined;
    const local = new Promise<WorkflowOutcome>((resolve) => {
      waiter = (status) => resolve(outcomeOf(status)!);
      const set = waiters.get(key) ?? new Set();
      waiters.set(key, set);
      set.add(waiter);
    });
    const poll = async (): Promise<WorkflowOutcome> => {
      for (;;) {
        try {
          const status = statusSchema.parse(
            await ref().ask('status', {}, { ...askOptions, signal: stop.signal }),
          );
          const outcome = outcomeOf(status);
          if (outcome !== undefined) return outcome;
        } catch (error) {
          if (stop.signal.aborted) throw stop.signal.reason ?? error;
        }
        await sleep(pollMs, { signal: stop.signal, clock: system.clock });
        if (stop.signal.aborted) throw stop.signal.reason;
      }
    };
    try {
      return await Promise.race([local, poll()]);
    } finally {
      stop.abort();
      signal?.removeEventListener('abort', abort);
      const set = waiters.get(key);
      set?.delete(waiter!);
      if (set?.size === 0) waiters.delete(key);
    }
  };

  const start = async <I>(
    system: ActorSystem,
    flow: Workflow<I>,
    id: string,
    input: I,
    o?: WorkflowCallOptions,
  ): Promise<{ handle: WorkflowHandle; status: WorkflowStatus }> => {
    const resolved = resolvedWorkflow(flow);
    if (definitions.get(resolved.name) !== resolved)
      throw invalidOption('workflow', `"${resolved.name}" is not one of the engine's definitions`);
    if (resolved.input !== undefined) {
      let checked = validate(resolved.input, input, `the input of workflow "${resolved.name}"`);
      if (checked instanceof Promise) checked = await checked;
      if (!checked.ok) throw checked.error;
      input = checked.value as I;
    }
    // A start is idempotent: one that failed on the way (the instance crashed, its node died) is
    // sent again.
    const status = await retrying(
      () =>
        system
          .actorOf(kindName, id, WorkflowProtocol)
          .ask(
            'start',
            { workflow: resolved.name, input },
            { timeoutMs: o?.askTimeoutMs ?? workflowEngineDefaults.askTimeoutMs },
          ),
      {
        attempts: 5,
        backoff: startBackoff,
        retryable: (error) => RETRYABLE.some((code) => TroupeError.is(error, code)),
        clock: system.clock,
        random: system.random,
      },
    );
    if (status.workflow === null && status.error !== undefined) throw toError(status.error, id);
    if (status.workflow !== resolved.name) {
      throw new TroupeError(
        'ERR_ILLEGAL_STATE',
        `workflow instance "${id}" runs "${status.workflow}", not "${resolved.name}"`,
        { details: { workflow: id, runs: status.workflow } },
      );
    }
    return { handle: handle(system, id), status };
  };

  return {
    kindName,
    kind,
    handle,
    start: async (system, flow, id, input, o) => (await start(system, flow, id, input, o)).handle,
    run: async (system, flow, id, input, o) => {
      const started = await start(system, flow, id, input, o);
      return outcomeOf(started.status) ?? started.handle.result(o);
    },
  };
}

/** Failures of a start ask that say nothing was decided: the start is sent again. */
const RETRYABLE: readonly ErrorCode[] = [
  'ERR_ACTOR_CRASHED',
  'ERR_ASK_TIMEOUT',
  'ERR_NOT_DELIVERED',
  'ERR_NO_SUCH_ACTOR',
  'ERR_ACTIVATION_FAILED',
  'ERR_JOURNAL_UNAVAILABLE',
];
const startBackoff = exponential({ baseMs: 20, maxMs: 1000, jitter: true });

/** The key of a named actor's address (`troupe://<cluster>/@<kind>/<key>`). */
function keyOf(address: string): string {
  return address.slice(address.lastIndexOf('/') + 1);
}
