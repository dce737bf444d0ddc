import { TroupeError } from './errors.js';

/**
 * Throws `ERR_NOT_PLAIN_DATA` unless `value` is plain data that survives JSON: null, booleans,
 * finite numbers, strings, arrays and plain objects (undefined is allowed where JSON drops it).
 * Used in development mode so that code written against local refs keeps working once refs are remote.
 */
export function assertPlainData(value: unknown, what = 'body'): void {
  check(value, what, new Set());
}

function check(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return;
    case 'number':
      if (Number.isFinite(value)) return;
      throw notPlain(path, `${value} does not survive JSON`);
    case 'object': {
      if (value === null) return;
      if (seen.has(value)) throw notPlain(path, 'a cycle');
      if (Array.isArray(value)) {
        seen.add(value);
        for (let i = 0; i < value.length; i++) check(value[i], `${path}[${i}]`, seen);
        seen.delete(value);
        return;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'unknown class';
        throw notPlain(path, `an instance of ${name}`);
      }
      seen.add(value);
      for (const key of Object.keys(value))
        check((value as Record<string, unknown>)[key], `${path}.${key}`, seen);
      seen.delete(value);
      return;
    }
    default:
      throw notPlain(path, `a ${typeof value}`);
  }
}

function notPlain(path: string, what: string): TroupeError {
  return new TroupeError(
    'ERR_NOT_PLAIN_DATA',
    `${path} is ${what}; message bodies must be plain data (JSON-safe) so refs can be remote`,
    { details: { path } },
  );
}
