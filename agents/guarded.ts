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
 * agents, so they share its breaker and bulkhead.
 * @throws TroupeError `ERR_INVALID_OPTION` for bad options.
 * @example
 * ```ts
 * const primary = guardedModel(openAIModel({ model: 'gpt-4o-mini' }), { system, timeoutMs: 60_000, bulkhead: { maxConcurrent: 16, maxQueue: 64 } });
 * ```
 */
export function guardedModel(
  model: ModelPort,
  options: GuardedModelOptions = {},
): ModelPort & { readonly guard: Guard } {
  if (typeof model?.complete !== 'function') throw invalidOption('model', 'must be a model port', model);
  const theGuard = guard({
    ...options,
    name: options.name ?? model.name,
    breaker:
      options.breaker === false || options.breaker === undefined || 'fire' in options.breaker
        ? (options.breaker ?? { isFailure: retryableModelError })
        : { isFailure: retryableModelError, ...options.breaker },
    retry: options.retry === false ? false : { retryable: retryableModelError, ...(options.retry ?? {}) },
  });
  return {
    name: model.name,
    guard: theGuard,
    complete: (request: ModelRequest, call?: ModelCallOptions) =>
      theGuard.call((signal) => model.complete(request, { ...call, signal }), {
        // Asking a model again is harmless: nothing happens on the other side but the answer.
        idempotent: true,
        ...(call?.signal === undefined ? {} : { signal: call.signal }),
      }),
  };
}

/**
 * A fallback chain: tries each model in order and moves on when one fails with a provider failure
 * or refuses (`ERR_CIRCUIT_OPEN`, `ERR_BULKHEAD_FULL`), for example a primary model, then another
 * provider, then a cheaper model. Other errors (a bad request, a spent budget, the caller's abort)
 * end the chain. The last failure is thrown when every model failed.
 * @throws TroupeError `ERR_INVALID_OPTION` for an empty chain.
 * @example
 * ```ts
 * const model = fallbackModels([guardedModel(openAIModel({ model: 'gpt-4o' })), guardedModel(anthropicModel({ model: 'claude-3-5-haiku-latest' }))]);
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
          return await model.complete(request, call);
        } catch (error) {
          if (call?.signal?.aborted === true && error === call.signal.reason) throw error;
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
