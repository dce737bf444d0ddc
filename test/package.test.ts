/**
 * What an installed package needs: every module the shipped code imports at run time is a dependency
 * (not a devDependency), so `import 'troupe'` works in a project that installs only dependencies.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const SHIPPED = ['protocols', 'runtime', 'supervisors', 'memory', 'agents', 'societies', 'ops'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Bare module names imported for their values (type-only imports are erased by the compiler). */
function runtimeImports(code: string): string[] {
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?[^;]*?\sfrom\s+'([^']+)'|^\s*import\s+'([^']+)'/gms;
  for (const match of code.matchAll(re)) {
    if (match[2] !== undefined) continue;
    const spec = match[3] ?? match[4]!;
    if (spec.startsWith('.') || spec.startsWith('node:')) continue;
    out.push(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
  }
  return out;
}

it('declares every package the shipped code imports as a dependency', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  const deps = new Set(Object.keys(pkg.dependencies ?? {}));
  const files = [join(root, 'index.ts'), ...SHIPPED.flatMap((dir) => sources(join(root, dir)))];
  const used = new Map<string, string>();
  for (const file of files) {
    for (const name of runtimeImports(readFileSync(file, 'utf8'))) used.set(name, file);
  }
  expect(used.size).toBeGreaterThan(0);
  const missing = [...used].filter(([name]) => !deps.has(name)).map(([name, file]) => `${name} (${file})`);
  expect(missing, 'imported at run time but not in dependencies').toEqual([]);
});

it('keeps the kernel hooks for supervisors out of the main entry, and the public API in it', async () => {
  const troupe = await import('../index.js');
  for (const name of [
    'createSystem',
    'createNode',
    'natsTransport',
    'inProcessNetwork',
    'supervisor',
    'defineProtocol',
  ]) {
    expect(troupe, name).toHaveProperty(name);
  }
  for (const name of [
    'withContext',
    'spawnAndStart',
    'childSlots',
    'restartChildSlot',
    'checkSpawnOptions',
  ]) {
    expect(troupe, name).not.toHaveProperty(name);
  }
  const runtime = await import('../runtime/index.js');
  expect(runtime).toHaveProperty('withContext');
});
