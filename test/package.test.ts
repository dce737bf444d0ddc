/**
 * What an installed package needs: every module the shipped code imports at run time is a dependency
 * (not a devDependency), so `import 'troupe'` works in a project that installs only dependencies.
 * Then the package as a user gets it: `npm pack`, installed in a new project with the README's
 * tsconfig (`skipLibCheck: false`), where the README's programs type-check and run.
 */
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

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

/** The folder of `troupe/nestjs`, the one entry allowed to import its optional peers (NestJS). */
const NEST_ENTRY = join(root, 'ops', 'nestjs');

it('declares every package the shipped code imports as a dependency (NestJS as optional peers of troupe/nestjs only)', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
    peerDependencies?: Record<string, string>;
    peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  };
  const deps = new Set(Object.keys(pkg.dependencies ?? {}));
  const optionalPeers = new Set(
    Object.keys(pkg.peerDependencies ?? {}).filter(
      (name) => pkg.peerDependenciesMeta?.[name]?.optional === true,
    ),
  );
  expect([...optionalPeers].sort()).toEqual(Object.keys(pkg.peerDependencies ?? {}).sort());
  const files = [join(root, 'index.ts'), ...SHIPPED.flatMap((dir) => sources(join(root, dir)))];
  const used = new Map<string, string>();
  for (const file of files) {
    for (const name of runtimeImports(readFileSync(file, 'utf8'))) used.set(`${name}\0${file}`, file);
  }
  expect(used.size).toBeGreaterThan(0);
  const missing = [...used]
    .map(([key, file]) => [key.split('\0')[0]!, file] as const)
    .filter(([name, file]) => !deps.has(name) && !(optionalPeers.has(name) && file.startsWith(NEST_ENTRY)))
    .map(([name, file]) => `${name} (${file})`);
  expect(missing, 'imported at run time but not in dependencies').toEqual([]);
  // The main entry and the other layers never load the NestJS entry: Nest stays optional.
  const importers = files.filter(
    (file) =>
      !file.startsWith(NEST_ENTRY) && /from '[./]+\/?(ops\/)?nestjs\//.test(readFileSync(file, 'utf8')),
  );
  expect(importers).toEqual([]);
});

it('keeps the kernel hooks for supervisors out of every package export, and the public API in the main entry', async () => {
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
  // Nor in the runtime's public face: they are internal (runtime/internal.ts), in no package export.
  const runtime = await import('../runtime/index.js');
  expect(runtime).not.toHaveProperty('withContext');
  const internal = await import('../runtime/internal.js');
  expect(internal).toHaveProperty('withContext');
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as {
    exports: Record<string, unknown>;
  };
  expect(Object.keys(pkg.exports).filter((key) => key.includes('internal'))).toEqual([]);
});

describe('the package as installed', () => {
  const run = promisify(execFile);
  const dir = mkdtempSync(join(tmpdir(), 'troupe-consumer-'));
  const consumer = join(dir, 'consumer');
  let tarball = '';
  let packed: string[] = [];
  let install = { stdout: '', stderr: '' };
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const programs = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);

  beforeAll(async () => {
    // `npm pack` builds dist first (prepack), as a publish would.
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    });
    const [result] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
    tarball = join(dir, result.filename);
    packed = result.files.map((f) => f.path);

    const ours = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    mkdirSync(consumer);
    writeFileSync(
      join(consumer, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    );
    // What the README says a project needs, at the versions this repository tests with; npm's cache
    // has them after this repository's own install.
    install = await run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        tarball,
        `zod@${ours.dependencies.zod}`,
        `@types/node@${ours.devDependencies['@types/node']}`,
        `vitest@${ours.devDependencies.vitest}`,
      ],
      { cwd: consumer, maxBuffer: 16 * 1024 * 1024 },
    );
  }, 300_000);

  // A consumer with NestJS installed is a large tree to remove on a busy machine.
  afterAll(() => rm(dir, { recursive: true, force: true }), 120_000);

  // First in this group: the README's programs, type-checked below, include the NestJS one.
  it('installs without NestJS (an optional peer), then `troupe/nestjs` works once the project adds it', async () => {
    expect(existsSync(join(consumer, 'node_modules/@nestjs'))).toBe(false);
    const troupe = pathToFileURL(join(consumer, 'node_modules/troupe/dist/index.js')).href;
    await expect(import(troupe)).resolves.toHaveProperty('createSystem');
    const ours = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      devDependencies: Record<string, string>;
    };
    const nest = ['@nestjs/common', '@nestjs/core', '@nestjs/microservices', 'reflect-metadata'];
    await run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        ...nest.map((name) => `${name}@${ours.devDependencies[name]}`),
      ],
      { cwd: consumer, maxBuffer: 16 * 1024 * 1024 },
    );
    const entry = pathToFileURL(join(consumer, 'node_modules/troupe/dist/ops/nestjs/index.js')).href;
    const nestjs = (await import(entry)) as Record<string, unknown>;
    for (const name of ['TroupeModule', 'TroupeServer', 'TroupeClientProxy', 'InjectRef']) {
      expect(nestjs, name).toHaveProperty(name);
    }
  }, 300_000);

  it('ships the license, the docs and no source maps pointing at sources it does not ship', () => {
    expect(packed).toContain('LICENSE');
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toContain(
      'Apache License\n                           Version 2.0',
    );
    expect(packed).toContain('docs/errors.md');
    expect(packed.filter((path) => path.endsWith('.map'))).toEqual([]);
    expect(packed.filter((path) => path.endsWith('.ts') && !path.endsWith('.d.ts'))).toEqual([]);
  });

  it('has no prepare script for a consumer to run, and installs on this Node without engine warnings', () => {
    const installed = JSON.parse(
      readFileSync(join(consumer, 'node_modules/troupe/package.json'), 'utf8'),
    ) as {
      scripts?: Record<string, string>;
    };
    expect(installed.scripts?.prepare).toBeUndefined();
    expect(install.stderr).not.toContain('EBADENGINE');
  });

  it("type-checks the README's programs against the installed package with the README's tsconfig", () => {
    const tsconfig = [...readme.matchAll(/^```json\n([\s\S]*?)^```$/gm)]
      .map((m) => m[1]!)
      .find((block) => block.includes('"skipLibCheck": false'));
    expect(tsconfig, 'the README shows a consumer tsconfig').toBeDefined();
    writeFileSync(join(consumer, 'tsconfig.json'), tsconfig!);
    const files = programs.map((code, i) => {
      const file = join(consumer, `program-${i + 1}.ts`);
      writeFileSync(file, code);
      return file;
    });
    const configPath = join(consumer, 'tsconfig.json');
    const { config } = ts.readConfigFile(configPath, ts.sys.readFile);
    const { options, errors } = ts.parseJsonConfigFileContent(
      config,
      ts.sys,
      consumer,
      undefined,
      configPath,
    );
    expect(errors).toEqual([]);
    expect(options.skipLibCheck).toBe(false);
    const diagnostics = ts.getPreEmitDiagnostics(ts.createProgram(files, options));
    const text = ts.formatDiagnostics(diagnostics, {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => consumer,
      getNewLine: () => '\n',
    });
    expect(text).toBe('');
  }, 120_000);

  it('runs the embedding example and the troupe command from the install', async () => {
    const embedding = programs.find((code) => code.includes('// embedding example'))!;
    writeFileSync(join(consumer, 'embedding.ts'), embedding);
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const example = await run(process.execPath, ['--import', tsx, 'embedding.ts'], { cwd: consumer });
    expect(example.stdout).toContain('recalled 2 notes');

    const troupe = join(consumer, 'node_modules/.bin/troupe');
    const table = await run(troupe, ['errors'], { cwd: consumer });
    expect(table.stdout.trimEnd().split('\n').at(-1)).toBe(
      join(consumer, 'node_modules/troupe/docs/errors.md'),
    );
    const one = await run(troupe, ['errors', 'ERR_ASK_TIMEOUT'], { cwd: consumer });
    expect(one.stdout).toContain('To do: raise the timeout');
  }, 60_000);
});
