/**
 * The layering check (`npm run layers`, part of `npm test`). It reads every module specifier of the layered
 * sources with the TypeScript parser and enforces the rules of the README's "Layers" section:
 *
 * - a file imports its own layer or a lower one, never a higher one;
 * - an import into another layer targets that layer's `index.ts`, its public face
 *   (`runtime/testkit/index.ts` is a second face of `runtime`), or its `internal.ts`, the face it shows
 *   only to the layers above (kernel hooks; in no package export);
 * - no import cycles among files, type-only imports included.
 *
 * The root `index.ts` may import any layer's `index.ts`. `test/`, `bench/`, `examples/` and `scripts/`
 * are not scanned. Exits 1 and prints every violation, or prints `layers: ok (N files, M imports)`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The layers, bottom up: a file may import its own layer or a lower one. */
export const LAYERS = [
  'protocols',
  'runtime',
  'supervisors',
  'memory',
  'agents',
  'societies',
  'ops',
] as const;

export type Layer = (typeof LAYERS)[number];

/** The package's own name: `troupe` and `troupe/<folder>` are self-imports (see tsconfig.json `paths`). */
const SELF = 'troupe';

/** Self-import subpaths that do not follow `troupe/<folder>` → `<folder>/index.ts`. */
const SELF_SUBPATHS: Readonly<Record<string, string>> = {
  testkit: 'runtime/testkit/index.ts',
  chaos: 'ops/chaos/index.ts',
  nestjs: 'ops/nestjs/index.ts',
};

/** Public faces besides each layer's `index.ts`. */
const EXTRA_FACES = new Set(['runtime/testkit/index.ts']);

const SKIPPED_DIRS = new Set(['node_modules', 'dist']);

export type ViolationKind = 'upward' | 'deep' | 'outside' | 'cycle' | 'unresolved';

export interface Violation {
  readonly kind: ViolationKind;
  /** The importing file (for a cycle, its first file), relative to the root, with `/` separators. */
  readonly file: string;
  /** 1-based line of the import; absent for cycles. */
  readonly line?: number;
  readonly message: string;
}

export interface Report {
  /** Files scanned. */
  readonly files: number;
  /** Imports of the package's own files (relative or `troupe/...`); imports of other packages are not counted. */
  readonly imports: number;
  readonly violations: Violation[];
}

interface ImportSite {
  readonly specifier: string;
  readonly line: number;
}

/** Checks the import rules for the tree under `root`. Pure apart from reading files. */
export function analyse(root: string): Report {
  root = resolve(root);
  const files = LAYERS.flatMap((layer) => listTs(join(root, layer)));
  if (isFile(join(root, 'index.ts'))) files.push(join(root, 'index.ts'));
  const rel = (file: string) => relative(root, file).split(sep).join('/');
  const graph = new Map<string, Set<string>>();
  const violations: Violation[] = [];
  let imports = 0;

  for (const file of files) {
    const from = rel(file);
    const fromLayer = layerOf(from);
    const edges = new Set<string>();
    for (const { specifier, line } of importSites(file)) {
      const target = resolveSpecifier(root, file, specifier);
      if (target === 'external') continue;
      imports++;
      const at = `${from}:${line}`;
      if (target === undefined) {
        violations.push({
          kind: 'unresolved',
          file: from,
          line,
          message: `${at} cannot resolve '${specifier}'`,
        });
        continue;
      }
      if (!target.endsWith('.ts')) continue; // JSON and other assets are leaves
      const to = rel(target);
      edges.add(to);
      const toLayer = layerOf(to);
      if (toLayer === undefined) {
        // The root index.ts sits above every layer; test/, bench/, ... sit outside them.
        if (fromLayer !== undefined) {
          const what =
            to === 'index.ts'
              ? 'the root index.ts, which re-exports every layer'
              : 'a file outside the layers';
          violations.push({ kind: 'outside', file: from, line, message: `${at} imports ${to}: ${what}` });
        }
        continue;
      }
      if (fromLayer === toLayer) continue;
      if (fromLayer !== undefined && LAYERS.indexOf(toLayer) > LAYERS.indexOf(fromLayer)) {
        violations.push({
          kind: 'upward',
          file: from,
          line,
          message: `${at} imports ${to}: ${fromLayer} may not import ${toLayer}, a higher layer`,
        });
      }
      // The internal face is for the layers above only: the root index.ts must not publish it.
      const internalFace = to === `${toLayer}/internal.ts` && fromLayer !== undefined;
      if (to !== `${toLayer}/index.ts` && !internalFace && !EXTRA_FACES.has(to)) {
        violations.push({
          kind: 'deep',
          file: from,
          line,
          message: `${at} imports ${to}: import ${toLayer}/index.ts, the public face of ${toLayer}`,
        });
      }
    }
    graph.set(from, edges);
  }

  for (const { chain, files: group } of cycles(graph)) {
    const others = group.filter((f) => !chain.includes(f));
    const rest = others.length > 0 ? ` (also in this cycle: ${others.join(', ')})` : '';
    violations.push({
      kind: 'cycle',
      file: chain[0]!,
      message: `import cycle: ${chain.join(' -> ')}${rest}`,
    });
  }
  return { files: files.length, imports, violations };
}

/** Formats a report for the terminal: one line when clean, else every violation grouped by kind. */
export function formatReport(report: Report): string {
  if (report.violations.length === 0) return `layers: ok (${report.files} files, ${report.imports} imports)`;
  const titles: Record<ViolationKind, string> = {
    upward: 'imports of a higher layer',
    deep: "imports past another layer's faces (index.ts, internal.ts)",
    outside: 'imports from outside the layers',
    cycle: 'import cycles',
    unresolved: 'imports that resolve to no file',
  };
  const lines = [
    `layers: ${report.violations.length} violation(s) in ${report.files} files (${report.imports} imports)`,
  ];
  for (const kind of Object.keys(titles) as ViolationKind[]) {
    const found = report.violations.filter((v) => v.kind === kind);
    if (found.length === 0) continue;
    lines.push('', `${titles[kind]} (${found.length}):`);
    for (const v of found) lines.push(`  ${v.message}`);
  }
  lines.push('', `Layers, bottom up: ${LAYERS.join(' < ')}. See README.md, "Layers".`);
  return lines.join('\n');
}

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

function listTs(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      if (SKIPPED_DIRS.has(name) || name.startsWith('.')) return [];
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return listTs(path);
      return name.endsWith('.ts') ? [path] : [];
    });
}

function layerOf(relPath: string): Layer | undefined {
  const top = relPath.split('/')[0];
  return LAYERS.find((layer) => layer === top);
}

/**
 * Every module specifier of a file, from the syntax tree: `import`/`import type`, `export ... from`,
 * `import x = require('...')`, dynamic `import('...')`, `import('...').T` type references, and
 * `declare module '...'` augmentations. An augmentation is a dependency like an import (a layer adds
 * its event types to the runtime's `TroupeEvents` this way), so it obeys the same rules: it points
 * down, at a public face; a lower layer augmenting a higher one would be an upward import in disguise.
 */
function importSites(file: string): ImportSite[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const sites: ImportSite[] = [];
  const add = (literal: ts.Node | undefined): void => {
    if (literal === undefined || !ts.isStringLiteralLike(literal)) return;
    const line = source.getLineAndCharacterOfPosition(literal.getStart(source)).line + 1;
    sites.push({ specifier: literal.text, line });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      add(node.moduleSpecifier);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal);
    } else if (ts.isModuleDeclaration(node) && ts.isStringLiteral(node.name)) {
      add(node.name);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return sites;
}

/**
 * The file a specifier names: relative paths (`.js` → `.ts`, a directory → its `index.ts`) and self-imports
 * (`troupe`, `troupe/<folder>`). `'external'` for other packages and `node:` builtins; undefined when a
 * specifier of this package names no file.
 */
function resolveSpecifier(root: string, file: string, specifier: string): string | 'external' | undefined {
  let base: string;
  if (specifier === SELF) base = join(root, 'index.ts');
  else if (specifier.startsWith(`${SELF}/`)) {
    const subpath = specifier.slice(SELF.length + 1);
    base = join(root, SELF_SUBPATHS[subpath] ?? subpath);
  } else if (
    specifier.startsWith('./') ||
    specifier.startsWith('../') ||
    specifier === '.' ||
    specifier === '..'
  ) {
    base = resolve(dirname(file), specifier);
  } else return 'external';
  const candidates = [
    base.replace(/\.js$/, '.ts'),
    base.replace(/\.js$/, '.d.ts'),
    base.endsWith('.ts') || base.endsWith('.json') ? base : `${base}.ts`,
    join(base, 'index.ts'),
  ];
  return candidates.find(
    (candidate) => (candidate.endsWith('.ts') || candidate.endsWith('.json')) && isFile(candidate),
  );
}

/** One import cycle: a chain of import edges that ends where it starts, and every file of its component. */
export interface Cycle {
  readonly chain: string[];
  readonly files: string[];
}

/**
 * The import cycles: one per strongly connected component (Tarjan) with more than one file, or a file
 * importing itself. Its chain is the shortest run of real import edges from the component's first file
 * (alphabetically) back to itself; `files` lists the whole component, which can be larger.
 */
export function cycles(graph: ReadonlyMap<string, Iterable<string>>): Cycle[] {
  const edges = (v: string) => [...(graph.get(v) ?? [])].filter((w) => graph.has(w)).sort();
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: Cycle[] = [];
  let counter = 0;

  const connect = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges(v)) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component = new Set<string>();
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.add(w);
    } while (w !== v);
    if (component.size > 1 || edges(v).includes(v)) {
      found.push({ chain: chainThrough(component, edges), files: [...component].sort() });
    }
  };

  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);
  return found.sort((a, b) => (a.files[0]! < b.files[0]! ? -1 : 1));
}

/** The shortest chain of edges inside `component` from its first file back to itself (breadth first). */
function chainThrough(component: ReadonlySet<string>, edges: (v: string) => string[]): string[] {
  const start = [...component].sort()[0]!;
  const previous = new Map<string, string>();
  const queue = [start];
  let last: string | undefined;
  for (let i = 0; i < queue.length && last === undefined; i++) {
    const v = queue[i]!;
    for (const w of edges(v)) {
      if (!component.has(w)) continue;
      if (w === start) {
        last = v;
        break;
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  const chain = [start];
  for (let v = last; v !== undefined && v !== start; v = previous.get(v)) chain.splice(1, 0, v);
  chain.push(start);
  return chain;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..');
  const report = analyse(root);
  const text = formatReport(report);
  if (report.violations.length > 0) {
    console.error(text);
    process.exit(1);
  }
  console.log(text);
}
