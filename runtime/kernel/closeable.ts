import type { Closeable } from './api.js';

/**
 * The four lifecycle verbs over one close function, for resources with nothing to finish first
 * (`drain()` is `close()`): idempotent, and `closed()` resolves once the close has run (with its
 * error, if it threw; `close()` still rejects with it).
 */
export function closeableOnce(close: () => Promise<void> | void): Closeable {
  let closing: Promise<void> | undefined;
  let resolveClosed!: (error: Error | undefined) => void;
  const closedPromise = new Promise<Error | undefined>((resolve) => {
    resolveClosed = resolve;
  });
  const run = (): Promise<void> => {
    closing ??= (async () => {
      try {
        await close();
        resolveClosed(undefined);
      } catch (error) {
        resolveClosed(error instanceof Error ? error : new Error(String(error)));
        throw error;
      }
    })();
    return closing;
  };
  return {
    close: run,
    drain: run,
    closed: () => closedPromise,
    [Symbol.asyncDispose]: run,
  };
}
