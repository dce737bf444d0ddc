import type { StandardSchemaV1 } from '@standard-schema/spec';
import { TroupeError } from './errors.js';

/** The outcome of validating a value against a schema. */
export type Validated = { ok: true; value: unknown } | { ok: false; error: TroupeError };

/**
 * Validates `value` against a Standard Schema. Sync schemas answer synchronously; async ones
 * return a promise. A failure is a `ERR_VALIDATION` error naming `what` and each issue's path.
 * With `to`, `what` is a message type and the failure names `"<what>" to <to>` (built only then).
 */
export function validate(
  schema: StandardSchemaV1,
  value: unknown,
  what: string,
  to?: string,
): Validated | Promise<Validated> {
  let result: StandardSchemaV1.Result<unknown> | Promise<StandardSchemaV1.Result<unknown>>;
  try {
    result = schema['~standard'].validate(value);
  } catch (cause) {
    if (to !== undefined) what = `"${what}" to ${to}`;
    return { ok: false, error: new TroupeError('ERR_VALIDATION', `${what}: the schema threw`, { cause }) };
  }
  if (to !== undefined && (result instanceof Promise || result.issues !== undefined))
    what = `"${what}" to ${to}`;
  if (result instanceof Promise) {
    return result.then(
      (r) => toValidated(r, what),
      (cause: unknown) => ({
        ok: false,
        error: new TroupeError('ERR_VALIDATION', `${what}: the schema threw`, { cause }),
      }),
    );
  }
  return toValidated(result, what);
}

function toValidated(result: StandardSchemaV1.Result<unknown>, what: string): Validated {
  if (result.issues === undefined) return { ok: true, value: result.value };
  const issues = result.issues.map((issue) => ({ path: pathOf(issue), message: issue.message }));
  const summary = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
  return {
    ok: false,
    error: new TroupeError('ERR_VALIDATION', `${what} failed its schema: ${summary}`, {
      details: { issues },
    }),
  };
}

function pathOf(issue: StandardSchemaV1.Issue): string {
  if (!issue.path) return '';
  return issue.path.map((p) => String(typeof p === 'object' && p !== null ? p.key : p)).join('.');
}

/**
 * Checks `value` against `schema` and settles with the outcome: `resolve` with the schema's value, or
 * `reject` with `ERR_VALIDATION`. Synchronous when the schema is; the one way replies are checked.
 */
export function settleValidated(
  schema: StandardSchemaV1,
  value: unknown,
  what: string,
  settle: { resolve(value: unknown): void; reject(error: TroupeError): void },
): void {
  const checked = validate(schema, value, what);
  if (checked instanceof Promise)
    checked.then((r) => (r.ok ? settle.resolve(r.value) : settle.reject(r.error)));
  else if (checked.ok) settle.resolve(checked.value);
  else settle.reject(checked.error);
}
