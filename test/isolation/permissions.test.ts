/**
 * A process host under Node's permission model: it reads its own code and what it was granted, and
 * nothing else; it starts no child process and no worker unless granted. The suite runs from
 * TypeScript sources, where the TypeScript loader itself would need a worker and a child process: a
 * restricted host runs a JavaScript build instead, with the same flags as the compiled package's.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ActorRef, type ActorSystem, createSystem, startIsolated, TroupeError } from '../../index.js';
import { Calc, Escape } from './fixtures/protocols.js';

const module = new URL('./fixtures/calc.ts', import.meta.url);
const escapeModule = new URL('./fixtures/escape.ts', import.meta.url);
const root = join(import.meta.dirname, '..', '..');
const granted = mkdtempSync(join(tmpdir(), 'troupe-granted-'));
const denied = mkdtempSync(join(tmpdir(), 'troupe-denied-'));
writeFileSync(join(granted, 'note.txt'), 'granted');
writeFileSync(join(denied, 'secret.txt'), 'secret');

describe('a process host with permissions', () => {
  let system: ActorSystem;
  let calc: ActorRef<typeof Calc>;
  let sandboxed: ActorRef<typeof Escape>;
  let trusted: ActorRef<typeof Escape>;
  beforeAll(async () => {
    system = createSystem({ name: 'perm', deadLetterLog: () => {} });
    [calc, sandboxed, trusted] = await Promise.all([
      startIsolated(
        system,
        { protocols: [Calc], module, export: 'calculator' },
        { host: 'process', permissions: { fsRead: [granted] }, standby: false, name: 'calc' },
      ),
      startIsolated(
        system,
        { protocols: [Escape], module: escapeModule, export: 'escaper' },
        { host: 'process', permissions: { fsRead: [granted] }, standby: false, name: 'sandboxed' },
      ),
      // The same actor with the grants: what the sandbox refuses is what the grants allow.
      startIsolated(
        system,
        { protocols: [Escape], module: escapeModule, export: 'escaper' },
        {
          host: 'process',
          permissions: { fsRead: [granted], childProcess: true, worker: true },
          standby: false,
          name: 'trusted',
        },
      ),
    ]);
  }, 90_000);
  afterAll(() => system.close());

  it('reads what it was granted', async () => {
    expect(await calc.ask('read', { path: join(granted, 'note.txt') })).toBe('granted');
    expect(await sandboxed.ask('read', { path: join(granted, 'note.txt') })).toBe('ok: granted');
  });

  it('is denied what it was not granted: the handler fails, the actor restarts and answers', async () => {
    await expect(calc.ask('read', { path: join(denied, 'secret.txt') })).rejects.toSatisfy(
      (e) => TroupeError.is(e, 'ERR_ACTOR_CRASHED') && /restricted|ACCESS_DENIED/.test(e.message),
    );
    await expect(calc.ask('read', { path: '/etc/passwd' })).rejects.toSatisfy((e) =>
      TroupeError.is(e, 'ERR_ACTOR_CRASHED'),
    );
    expect(await calc.ask('fib', { n: 12 })).toBe(144);
  });

  it('cannot read outside its paths, start a child process or start a worker', async () => {
    expect(await sandboxed.ask('read', { path: join(denied, 'secret.txt') })).toBe('ERR_ACCESS_DENIED');
    expect(await sandboxed.ask('read', { path: '/etc/hostname' })).toBe('ERR_ACCESS_DENIED');
    expect(await sandboxed.ask('spawnProcess', {})).toBe('ERR_ACCESS_DENIED');
    expect(await sandboxed.ask('startWorker', {})).toBe('ERR_ACCESS_DENIED');
  });

  it('starts child processes and workers when granted them, and still reads only its paths', async () => {
    expect(await trusted.ask('spawnProcess', {}, { timeoutMs: 30_000 })).toBe('ok: child ran');
    expect(await trusted.ask('startWorker', {}, { timeoutMs: 30_000 })).toBe('ok: worker ran');
    expect(await trusted.ask('read', { path: join(denied, 'secret.txt') })).toBe('ERR_ACCESS_DENIED');
  });
});

function typescriptFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return typescriptFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [path] : [];
  });
}

/**
 * The compiled package's mode: the runtime as JavaScript files (one per source, as `tsc` writes
 * them), run by plain `node` with no TypeScript loader anywhere. The files go under the project's
 * `node_modules/.cache`, where Node finds the packages they import.
 */
describe('a process host with permissions, from JavaScript run by plain node', () => {
  const out = join(root, 'node_modules', '.cache', 'troupe', `js-${process.pid}`);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('cannot read outside its paths, start a child process or start a worker', async () => {
    const esbuild = createRequire(createRequire(import.meta.url).resolve('tsx'))('esbuild') as {
      build(options: Record<string, unknown>): Promise<unknown>;
    };
    const sources = ['protocols', 'runtime', 'test/isolation/fixtures'].flatMap((dir) =>
      typescriptFiles(join(root, dir)),
    );
    await esbuild.build({
      entryPoints: sources,
      outbase: root,
      outdir: out,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'silent',
    });
    const script = join(out, 'sandbox.mjs');
    writeFileSync(
      script,
      `
import { createSystem, startIsolated } from './runtime/index.js';
import { Escape } from './test/isolation/fixtures/protocols.js';
const system = createSystem({ name: 'js', deadLetterLog: () => {} });
const ref = await startIsolated(
  system,
  { protocols: [Escape], module: new URL('./test/isolation/fixtures/escape.js', import.meta.url), export: 'escaper' },
  { host: 'process', permissions: { fsRead: [${JSON.stringify(granted)}] }, standby: false },
);
const answers = {
  granted: await ref.ask('read', { path: ${JSON.stringify(join(granted, 'note.txt'))} }),
  denied: await ref.ask('read', { path: ${JSON.stringify(join(denied, 'secret.txt'))} }),
  spawnProcess: await ref.ask('spawnProcess', {}),
  startWorker: await ref.ask('startWorker', {}),
};
await system.close();
process.stdout.write(JSON.stringify(answers));
`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual({
      granted: 'ok: granted',
      denied: 'ERR_ACCESS_DENIED',
      spawnProcess: 'ERR_ACCESS_DENIED',
      startWorker: 'ERR_ACCESS_DENIED',
    });
  }, 90_000);
});
