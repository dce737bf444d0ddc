import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { analyse, cycles, formatReport } from '../scripts/check-layers.js';

const repo = join(import.meta.dirname, '..');
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fake source tree in a fresh temporary directory. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'troupe-layers-'));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const kinds = (root: string) => analyse(root).violations.map((v) => v.kind);
const messages = (root: string) => analyse(root).violations.map((v) => v.message);

describe('the layering check', () => {
  it('accepts downward imports through public faces, in every syntactic form', () => {
    const root = tree({
      'index.ts': "export * from './protocols/index.js';\nexport * from './runtime/index.js';",
      'protocols/index.ts': "export const a = 1;\nexport type A = 1;\nimport('node:fs');",
      'runtime/index.ts': "export { a } from '../protocols/index.js';\nexport { b } from './b.js';",
      'runtime/b.ts': [
        "import type { A } from '../protocols/index.js';",
        "import * as p from 'troupe/protocols';",
        "import { z } from 'zod';",
        'export const b: A | typeof p.a | typeof z = 1 as A;',
      ].join('\n'),
      'runtime/testkit/index.ts':
        "export type T = import('../index.js').B;\nexport type B = typeof import('./c.js');",
      'runtime/testkit/c.ts': 'export {};',
      'supervisors/index.ts': "import type { T } from 'troupe/testkit';\nexport type S = T;",
      'ops/index.ts': [
        "import { b } from '../runtime/index.js';",
        "import type { T } from '../runtime/testkit/index.js';",
        "export const c = import('../supervisors/index.js');",
        "export type D = import('troupe/runtime').B | T;",
        'export const e = b;',
      ].join('\n'),
    });
    const report = analyse(root);
    expect(report.violations).toEqual([]);
    expect(report.files).toBe(8);
    // Every specifier of this package counts; 'zod' and 'node:fs' do not.
    expect(report.imports).toBe(13);
    expect(formatReport(report)).toBe('layers: ok (8 files, 13 imports)');
  });

  it('reports an upward import, including a type-only one, with file and line', () => {
    const root = tree({
      'runtime/index.ts':
        "export const x = 1;\nimport type { X } from '../supervisors/index.js';\nexport type Y = X;",
      'supervisors/index.ts': 'export type X = 1;',
    });
    const { violations } = analyse(root);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ kind: 'upward', file: 'runtime/index.ts', line: 2 });
    expect(violations[0]?.message).toContain('runtime may not import supervisors');
  });

  it('reports upward imports hidden in dynamic imports, inline import types and self-imports', () => {
    const root = tree({
      'protocols/index.ts': [
        "export const r = () => import('../runtime/index.js');",
        "export type O = import('../ops/index.js').O;",
        "export type S = import('troupe/supervisors').S;",
      ].join('\n'),
      'runtime/index.ts': 'export {};',
      'supervisors/index.ts': 'export type S = 1;',
      'ops/index.ts': 'export type O = 1;',
    });
    expect(messages(root)).toEqual([
      expect.stringContaining('protocols/index.ts:1 imports runtime/index.ts'),
      expect.stringContaining('protocols/index.ts:2 imports ops/index.ts'),
      expect.stringContaining('protocols/index.ts:3 imports supervisors/index.ts'),
    ]);
    expect(kinds(root)).toEqual(['upward', 'upward', 'upward']);
  });

  it('checks module augmentations like imports: down to a public face is fine, up or past a face is not', () => {
    const root = tree({
      'runtime/index.ts': "export type { TroupeEvents } from './events.js';",
      'runtime/events.ts': 'export interface TroupeEvents {}',
      'supervisors/index.ts': "export * from './events.js';",
      'supervisors/events.ts': [
        "declare module '../runtime/index.js' { interface TroupeEvents { a: {} } }",
        "declare module '../runtime/events.js' { interface TroupeEvents { b: {} } }",
        "declare module 'some-package' { interface Outside {} }",
        'export {};',
      ].join('\n'),
      'protocols/index.ts': "declare module '../supervisors/index.js' { interface X {} }\nexport {};",
    });
    expect(messages(root)).toEqual([
      expect.stringContaining('protocols/index.ts:1 imports supervisors/index.ts'),
      expect.stringContaining('supervisors/events.ts:2 imports runtime/events.ts'),
    ]);
    expect(kinds(root)).toEqual(['upward', 'deep']);
  });

  it('reports an import past another layer’s public face', () => {
    const root = tree({
      'protocols/index.ts': "export * from './errors.js';",
      'protocols/errors.ts': 'export const e = 1;',
      'runtime/index.ts': "export { e } from '../protocols/errors.js';",
    });
    const { violations } = analyse(root);
    expect(violations.map((v) => v.kind)).toEqual(['deep']);
    expect(violations[0]?.message).toContain('runtime/index.ts:1 imports protocols/errors.ts');
  });

  it('lets a higher layer import a lower one’s internal face, but not the root index.ts', () => {
    const root = tree({
      'index.ts': "export * from './runtime/index.js';\nexport * from './runtime/internal.js';",
      'runtime/index.ts': 'export const r = 1;',
      'runtime/internal.ts': "export { hook } from './kernel.js';",
      'runtime/kernel.ts': 'export const hook = 1;',
      'supervisors/index.ts': "import { hook } from '../runtime/internal.js';\nexport const s = hook;",
    });
    expect(messages(root)).toEqual([expect.stringContaining('index.ts:2 imports runtime/internal.ts')]);
  });

  it('reports a deep import that is also upward under both rules', () => {
    const root = tree({
      'runtime/index.ts': "import { s } from '../supervisors/supervisor.js';\nexport const r = s;",
      'supervisors/index.ts': "export * from './supervisor.js';",
      'supervisors/supervisor.ts': 'export const s = 1;',
    });
    expect(kinds(root)).toEqual(['upward', 'deep']);
  });

  it('lets the root index.ts import any layer’s face, but not past it', () => {
    const root = tree({
      'index.ts': "export * from './ops/index.js';\nexport * from './ops/console.js';",
      'ops/index.ts': 'export const o = 1;',
      'ops/console.ts': 'export const c = 1;',
    });
    expect(messages(root)).toEqual([expect.stringContaining('index.ts:2 imports ops/console.ts')]);
  });

  it('reports a layer importing the root index.ts or a file outside the layers', () => {
    const root = tree({
      'index.ts': "export * from './runtime/index.js';",
      'runtime/index.ts': "import type {} from 'troupe';\nimport '../test/helpers.js';",
      'test/helpers.ts': 'export {};',
    });
    expect(kinds(root)).toContain('outside');
    expect(messages(root)).toEqual(
      expect.arrayContaining([
        expect.stringContaining('runtime/index.ts:1 imports index.ts'),
        expect.stringContaining('runtime/index.ts:2 imports test/helpers.ts'),
      ]),
    );
  });

  it('reports a cycle as a chain of files, type-only imports included', () => {
    const root = tree({
      'runtime/index.ts': "export * from './a.js';",
      'runtime/a.ts': "import { b } from './b.js';\nexport const a = b;",
      'runtime/b.ts': "import { c } from './c.js';\nexport const b = c;",
      'runtime/c.ts': "import type { a } from './a.js';\nexport const c: typeof a = 1;",
    });
    const { violations } = analyse(root);
    expect(violations.map((v) => v.kind)).toEqual(['cycle']);
    expect(violations[0]?.message).toBe(
      'import cycle: runtime/a.ts -> runtime/b.ts -> runtime/c.ts -> runtime/a.ts',
    );
  });

  it('reports a cycle across layers and through a directory import', () => {
    const root = tree({
      'protocols/index.ts': "import type { R } from '../runtime';\nexport type P = R;",
      'runtime/index.ts': "import type { P } from '../protocols/index.js';\nexport type R = P;",
    });
    expect(messages(root)).toEqual([
      expect.stringContaining('protocols/index.ts:1 imports runtime/index.ts'),
      'import cycle: protocols/index.ts -> runtime/index.ts -> protocols/index.ts',
    ]);
  });

  it('finds every strongly connected component and a real chain in each', () => {
    const graph = new Map([
      ['a', ['b']],
      ['b', ['c', 'a']],
      ['c', ['a']],
      ['d', ['d']],
      ['e', ['a']],
    ]);
    expect(cycles(graph)).toEqual([
      { chain: ['a', 'b', 'a'], files: ['a', 'b', 'c'] },
      { chain: ['d', 'd'], files: ['d'] },
    ]);
    expect(cycles(new Map([['x', ['y']]]))).toEqual([]);
  });

  it('reports an import of this package that names no file', () => {
    const root = tree({ 'runtime/index.ts': "export * from './missing.js';\nimport 'troupe/nowhere';" });
    expect(kinds(root)).toEqual(['unresolved', 'unresolved']);
  });

  it('scans neither node_modules nor dist', () => {
    const root = tree({
      'protocols/index.ts': 'export {};',
      'protocols/node_modules/x/index.ts': "import '../../../ops/index.js';",
      'protocols/dist/index.ts': "import '../../ops/index.js';",
      'ops/index.ts': 'export {};',
    });
    expect(analyse(root)).toMatchObject({ files: 2, violations: [] });
  });

  it('prints every violation, grouped by kind', () => {
    const root = tree({
      'runtime/index.ts': "import '../ops/index.js';",
      'ops/index.ts': "import '../runtime/mailbox.js';",
      'runtime/mailbox.ts': "import './index.js';",
    });
    const text = formatReport(analyse(root));
    expect(text).toMatch(/^layers: 3 violation\(s\)/);
    expect(text).toContain('imports of a higher layer (1):');
    expect(text).toContain("imports past another layer's faces (index.ts, internal.ts) (1):");
    expect(text).toContain('import cycles (1):');
  });

  it('passes on this repository', () => {
    const report = analyse(repo);
    expect(report.violations).toEqual([]);
    expect(report.files).toBeGreaterThan(20);
  });

  it('runs as a script: exit 0 on this repository, exit 1 with a report on a bad tree', () => {
    const script = join(repo, 'scripts/check-layers.ts');
    const tsx = join(repo, 'node_modules/.bin/tsx');
    expect(execFileSync(tsx, [script], { encoding: 'utf8' })).toMatch(
      /^layers: ok \(\d+ files, \d+ imports\)\n$/,
    );
    const bad = tree({ 'protocols/index.ts': "import '../ops/index.js';", 'ops/index.ts': 'export {};' });
    let failure: { status?: number; stderr?: string } = {};
    try {
      execFileSync(tsx, [script, bad], { encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      failure = error as typeof failure;
    }
    expect(failure.status).toBe(1);
    expect(failure.stderr).toContain('protocols/index.ts:1 imports ops/index.ts');
    // Two tsx processes that each parse the whole repository: slow on a loaded 2-core machine.
  }, 60_000);
});
