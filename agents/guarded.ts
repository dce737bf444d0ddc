import { invalidOption, TroupeError } from '../protocols/index.js';
import { type Guard, type GuardOptions, guard } from '../supervisors/index.js';
import type { ModelCallOptions, ModelPort, ModelRequest, ModelResponse } from './model.js';

/**
 * True when a failed model call is worth another attempt: `ERR_MODEL_HTTP` with status 408, 409, 429
 * or >= 500, `ERR_MODEL_UNREACHABLE`, `ERR_CALL_TIMEOUT` and `ERR_MODEL_MALFORMED`. False for anything
 * else: other 4xx (a bad request or key), the caller's own abort, errors that are not TroupeErrors.
 *
 * @example
 * ```ts
 * await retry(() => model.complete(request), { idempotent: true, retryable: retryableModelError });
 * ```
 */
export function retryableModelError(error: unknown): boolean {
  if (!TroupeError.is(error)) return false;
  switch (error.code) {
    case 'ERR_MODEL_HTTP': {
      const status = error.details?.status;
      return (
        typeof status === 'number' && (status === 408 || status === 409 || status === 429 || status >= 500)
      );
    }
    case 'ERR_MODEL_UNREACHABLE':
    case 'ERR_CALL_TIMEOUT':
    case 'ERR_MODEL_MALFORMED':
      return true;
    default:
      return false;
  }
}

/** Options of {@link guardedModel}: a guard's, named after the model unless `name` is given. */
export type GuardedModelOptions = Omit<GuardOptions, 'name'> & { readonly name?: string };

/**
 * A model behind a guard: a circuit breaker that counts only provider failures (not a 400 for a bad
 * request), retries of those failures (honouring `Retry-After`), and optionally a bulkhead and a
 * deadline whose signal aborts the HTTP request. Wrap each provider once and share it between
 * agents, so they share its breaker and bulkhead. The HTTP adapters come guarded already (their
 * `guard` option): around one of them, this adds no second breaker or retries unless asked, only
 * what you give (a pool's bulkhead, say). A call that has streamed text (`onText`) is not tried
 * again, so no text is said twice.
 * @throws TroupeError `ERR_INVALID_OPTION` for bad options.
 * @example
 * ```ts
 * const local = guardedModel(myLocalModel, { system, timeoutMs: 60_000, bulkhead: { maxConcurrent: 4, maxQueue: 16 } });
 * ```
 */
export function guardedModel(
  model: ModelPort,
  options: GuardedModelOptions = {},
): ModelPort & { readonly guard: Guard } {
  if (typeof model?.complete !== 'function') throw invalidOption('model', 'must be a model port', model);
  // A port with a guard of its own keeps its breaker and retries; they are not doubled here.
  const inner = typeof (model as { guard?: unknown }).guard === 'object';
  const breaker = options.breaker ?? (inner ? false : undefined);
  const retry = options.retry ?? (inner ? false : undefined);
  const theGuard = guard({
    ...options,
    name: options.name ?? model.name,
    breaker:
      breaker === false || breaker === undefined || 'fire' in breaker
        ? (breaker ?? { isFailure: retryableModelError })
        : { isFailure: retryableModelError, ...breaker },
    retry:
      retry === false
        ? false
        : {
            ...retry,
            retryable: (e) =>
              !spoke.has(e as object) && retryableModelError(e) && (retry?.retryable?.(e) ?? true),
          },
  });
  return {
    name: model.name,
    guard: theGuard,
    complete: (request: ModelRequest, call?: ModelCallOptions) =>
      theGuard.call((signal) => completeOnce(model, request, { ...call, signal }), {
        // Asking a model again is harmless: nothing happens on the other side but the answer.
        idempotent: true,
        ...(call?.signal === undefined ? {} : { signal: call.signal }),
      }),
  };
}

/** Failures of calls that had already streamed text: trying them again would say it twice. */
const spoke = new WeakSet<object>();

/** One call, remembering in `spoke` a failure that came after some text was streamed. */
async function completeOnce(
  model: ModelPort,
  request: ModelRequest,
  call: ModelCallOptions,
): Promise<ModelResponse> {
  const onText = call.onText;
  if (onText === undefined) return model.complete(request, call);
  let streamed = false;
  try {
    return await model.complete(request, {
      ...call,
      onText: (text) => {
        streamed = true;
        onText(text);
      },
    });
  } catch (error) {
    if (streamed && typeof error === 'object' && error !== null) spoke.add(error);
    throw error;
  }
}

/**
 * A fallback chain: tries each model in order and moves on when one fails with a provider failure
 * or refuses (`ERR_CIRCUIT_OPEN`, `ERR_BULKHEAD_FULL`), for example a primary model, then another
 * provider, then a cheaper model. Other errors (a bad request, a spent budget, the caller's abort)
 * end the chain, and so does a failure after some text was streamed. The last failure is thrown
 * when every model failed.
 * @throws TroupeError `ERR_INVALID_OPTION` for an empty chain.
 * @example
 * ```ts
 * const model = fallbackModels([openAIModel({ model: 'gpt-4o' }), anthropicModel({ model: 'claude-3-5-haiku-latest' })]);
 * ```
 */
export function fallbackModels(models: readonly ModelPort[]): ModelPort {
  if (!Array.isArray(models) || models.length === 0 || models.some((m) => typeof m?.complete !== 'function'))
    throw invalidOption('models', 'must be a non-empty array of model ports', models);
  return {
    name: models[0]!.name,
    complete: async (request: ModelRequest, call?: ModelCallOptions): Promise<ModelResponse> => {
      let last: unknown;
      for (const model of models) {
        try {
          return await (call === undefined ? model.complete(request) : completeOnce(model, request, call));
        } catch (error) {
          if (call?.signal?.aborted === true && error === call.signal.reason) throw error;
          if (spoke.has(error as object)) throw error;
          const moveOn =
            retryableModelError(error) ||
            TroupeError.is(error, 'ERR_CIRCUIT_OPEN') ||
            TroupeError.is(error, 'ERR_BULKHEAD_FULL');
          if (!moveOn) throw error;
          last = error;
        }
      }
      throw last;
    },
  };
}
