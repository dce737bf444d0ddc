import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, TroupeError } from '../protocols/index.js';

const root = join(import.meta.dirname, '..');
const BRAND = Symbol.for('troupe.error');

/** The rows of the first table whose header is `| code | meaning |`, as [code, meaning] pairs. */
function documentedRows(): [code: string, meaning: string][] {
  const lines = readFileSync(join(root, 'docs/errors.md'), 'utf8').split('\n');
  const header = lines.findIndex((line) => /^\|\s*code\s*\|\s*meaning\s*\|/.test(line));
  expect(header, 'docs/errors.md has no `| code | meaning |` table').toBeGreaterThanOrEqual(0);
  const rows: [string, string][] = [];
  // Skip the header and its `| --- | --- |` separator; the table ends at the first line not starting with `|`.
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line
      .slice(1, line.trimEnd().endsWith('|') ? line.trimEnd().length - 1 : undefined)
      .split('|')
      .map((cell) => cell.trim());
    rows.push([cells[0]!.replace(/^`|`$/g, ''), cells[1] ?? '']);
  }
  return rows;
}

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'dist') return [];
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

describe('the error catalogue', () => {
  const defined = Object.keys(ERROR_CODES);

  it('documents exactly the codes of ERROR_CODES, once each', () => {
    const documented = documentedRows().map(([code]) => code);
    const missing = defined.filter((code) => !documented.includes(code));
    const extra = documented.filter((code) => !defined.includes(code));
    const twice = documented.filter((code, i) => documented.indexOf(code) !== i);
    expect(
      { missing, extra, twice },
      `docs/errors.md and ERROR_CODES diverge: missing ${JSON.stringify(missing)}, ` +
        `extra ${JSON.stringify(extra)}, listed twice ${JSON.stringify(twice)}`,
    ).toEqual({ missing: [], extra: [], twice: [] });
    expect(new Set(documented)).toEqual(new Set(defined));
  });

  it('starts each documented meaning with the text of ERROR_CODES', () => {
    const stale = documentedRows()
      .filter(
        ([code, meaning]) =>
          code in ERROR_CODES && !meaning.startsWith(ERROR_CODES[code as keyof typeof ERROR_CODES]),
      )
      .map(([code]) => code);
    expect(stale, 'rows whose meaning does not start with ERROR_CODES[code]').toEqual([]);
  });

  it('holds every ERR_ code the source uses', () => {
    const used = new Map<string, string>();
    for (const layer of ['protocols', 'runtime', 'supervisors', 'memory', 'agents', 'societies', 'ops']) {
      for (const file of sourceFiles(join(root, layer))) {
        for (const match of readFileSync(file, 'utf8').matchAll(/['"`](ERR_[A-Z_]+)['"`]/g)) {
          used.set(match[1]!, relative(root, file));
        }
      }
    }
    const unknown = [...used].filter(([code]) => !(code in ERROR_CODES)).map(([c, f]) => `${c} (${f})`);
    expect(unknown, 'codes used in the source but missing from ERROR_CODES').toEqual([]);
    // The scan itself works: the source raises most of the catalogue.
    expect(used.size).toBeGreaterThanOrEqual(defined.length / 2);
    expect(used.has('ERR_ASK_TIMEOUT')).toBe(true);
  });
});

describe('TroupeError', () => {
  it('is() recognises a TroupeError with and without a code', () => {
    const error = new TroupeError('ERR_ASK_TIMEOUT', 'late', { details: { to: 'x' } });
    expect(error).toBeInstanceOf(Error);
    expect(TroupeError.is(error)).toBe(true);
    expect(TroupeError.is(error, 'ERR_ASK_TIMEOUT')).toBe(true);
    expect(TroupeError.is(error, 'ERR_MAILBOX_FULL')).toBe(false);
  });

  it('is() refuses everything without the brand', () => {
    for (const value of [
      new Error('plain'),
      Object.assign(new Error('coded'), { code: 'ERR_ASK_TIMEOUT' }),
      { code: 'ERR_ASK_TIMEOUT', message: 'look-alike' },
      { [Symbol('troupe.error')]: true, code: 'ERR_ASK_TIMEOUT' },
      { [BRAND]: 'yes', code: 'ERR_ASK_TIMEOUT' },
      undefined,
      null,
      'ERR_ASK_TIMEOUT',
      42,
    ]) {
      expect(TroupeError.is(value), String(value)).toBe(false);
      expect(TroupeError.is(value, 'ERR_ASK_TIMEOUT'), String(value)).toBe(false);
    }
  });

  it('is() recognises a plain object carrying the brand, as from another copy of the package', () => {
    const foreign = { [BRAND]: true, code: 'ERR_ASK_TIMEOUT', message: 'from another copy' };
    expect(TroupeError.is(foreign)).toBe(true);
    expect(TroupeError.is(foreign, 'ERR_ASK_TIMEOUT')).toBe(true);
    expect(TroupeError.is(foreign, 'ERR_ASK_ABORTED')).toBe(false);
    const foreignError = Object.assign(new Error('also foreign'), { code: 'ERR_MAILBOX_FULL' });
    Object.defineProperty(foreignError, BRAND, { value: true });
    expect(TroupeError.is(foreignError, 'ERR_MAILBOX_FULL')).toBe(true);
  });

  it('brands its instances with a hidden property', () => {
    const error = new TroupeError('ERR_ILLEGAL_STATE', 'x');
    expect((error as unknown as Record<symbol, unknown>)[BRAND]).toBe(true);
    expect(Object.getOwnPropertyDescriptor(error, BRAND)?.enumerable).toBe(false);
  });

  it('chains its cause', () => {
    const root = new Error('disk on fire');
    const crashed = new TroupeError('ERR_ACTOR_CRASHED', 'crashed', { cause: root });
    const escalation = new TroupeError('ERR_ESCALATION', 'system stopped', { cause: crashed });
    expect(escalation.cause).toBe(crashed);
    expect((escalation.cause as Error).cause).toBe(root);
    expect(TroupeError.is(escalation.cause, 'ERR_ACTOR_CRASHED')).toBe(true);
    expect('cause' in new TroupeError('ERR_ILLEGAL_STATE', 'no cause')).toBe(false);
  });

  it('carries code, name, message and details', () => {
    const error = new TroupeError('ERR_MAX_CHILDREN', 'full', { details: { maxChildren: 3 } });
    expect(error).toMatchObject({
      code: 'ERR_MAX_CHILDREN',
      name: 'TroupeError',
      message: 'full',
      details: { maxChildren: 3 },
    });
    expect(new TroupeError('ERR_MAX_CHILDREN', 'no details').details).toBeUndefined();
  });

  it('serialises to plain data with toJSON, without its cause or stack', () => {
    const error = new TroupeError('ERR_ACTOR_CRASHED', 'crashed', {
      cause: new Error('secret internals'),
      details: { to: 'troupe://a/b/c' },
    });
    expect(error.toJSON()).toEqual({
      code: 'ERR_ACTOR_CRASHED',
      message: 'crashed',
      details: { to: 'troupe://a/b/c' },
    });
    const wire = JSON.stringify(error);
    expect(JSON.parse(wire)).toEqual(error.toJSON());
    expect(wire).not.toContain('secret internals');
    expect(new TroupeError('ERR_ILLEGAL_STATE', 'x').toJSON()).toEqual({
      code: 'ERR_ILLEGAL_STATE',
      message: 'x',
    });
  });
});
