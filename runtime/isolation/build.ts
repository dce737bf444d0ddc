/**
 * JavaScript for a restricted process host when the runtime runs from its TypeScript sources (tests,
 * tsx). The TypeScript loader cannot run under Node 20's permission model without the very grants
 * such a host is denied: tsx registers its hooks with `module.register()`, which starts a loader
 * thread (a worker, to the permission model: Node's access-denied error for `WorkerThreads` unless
 * `--allow-worker`), and it transforms each file with esbuild, a child process. So the parent, which
 * is not restricted, builds the host ahead of its start with esbuild (tsx's own): the host's entry and
 * the actors' modules in one build, their shared code (the runtime) in shared chunks, the packages
 * left to Node to load. The host then runs plain JavaScript, as it does from the compiled package,
 * with the same flags.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** A built host: its entry, and each module (a `file:` URL) as built, or why it could not be. */
export interface HostBuild {
  /** The path of the built host entry. */
  readonly entry: string;
  /** Module URL to the URL of its build, or the error that stopped it (the host reports it at load). */
  readonly modules: Readonly<Record<string, string | { readonly error: string }>>;
}

/** The subset of esbuild's API used here. */
interface Esbuild {
  build(options: Record<string, unknown>): Promise<unknown>;
}

const builds = new Map<string, Promise<HostBuild>>();
let esbuild: Esbuild | undefined;
let sequence = 0;
/** The build folders this process made, removed when it exits. */
const made: string[] = [];

/**
 * Builds the host entry `entry` (a TypeScript file) with `modules`, once per set of modules in this
 * process (a failed build is tried again at the next start). Outputs go under the project's
 * `node_modules/.cache/troupe`, where Node finds the packages they import, and are removed when this
 * process exits.
 */
export function buildHost(entry: string, root: string, modules: readonly string[]): Promise<HostBuild> {
  const key = JSON.stringify([entry, [...new Set(modules)].sort()]);
  let building = builds.get(key);
  if (building === undefined) {
    building = build(entry, root, [...new Set(modules)].sort());
    builds.set(key, building);
    building.then(
      (done) => {
        if (Object.values(done.modules).some((m) => typeof m !== 'string')) builds.delete(key);
      },
      () => builds.delete(key),
    );
  }
  return building;
}

async function build(entry: string, root: string, modules: readonly string[]): Promise<HostBuild> {
  esbuild ??= loadEsbuild();
  const run = esbuild.build;
  const cache = join(root, 'node_modules', '.cache', 'troupe');
  if (sequence === 0) {
    sweep(cache);
    process.once('exit', () => {
      for (const dir of made) rmSync(dir, { recursive: true, force: true });
    });
  }
  const outdir = join(cache, `host-${process.pid}-${++sequence}`);
  mkdirSync(outdir, { recursive: true });
  made.push(outdir);
  // A module that is not a file is left to the host's import, which names it (ERR_MODULE_NOT_FOUND).
  const files = modules.filter((m) => m.startsWith('file:') && existsSync(fileURLToPath(m)));
  const attempt = (included: readonly string[]) =>
    run({
      entryPoints: {
        'host-entry': entry,
        ...Object.fromEntries(included.map((m, i) => [`module-${i}`, fileURLToPath(m)])),
      },
      outdir,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      packages: 'external',
      sourcemap: 'inline',
      logLevel: 'silent',
    });
  const built: Record<string, string | { error: string }> = {};
  try {
    await attempt(files);
    files.forEach((m, i) => {
      built[m] = pathToFileURL(join(outdir, `module-${i}.js`)).href;
    });
  } catch (error) {
    // One module that does not build (a syntax error) should not stop the host: it is built without
    // them, and each reports the build's error when an actor of it is spawned.
    if (files.length === 0) throw error;
    await attempt([]);
    const message = error instanceof Error ? error.message : String(error);
    for (const m of files) built[m] = { error: message };
  }
  return { entry: join(outdir, 'host-entry.js'), modules: built };
}

/** Removes the builds of processes that are gone (killed before they could remove their own). */
function sweep(cache: string): void {
  let names: string[];
  try {
    names = readdirSync(cache);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^host-(\d+)-/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    rmSync(join(cache, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** esbuild, as tsx (a development dependency, present whenever the runtime runs from sources) has it. */
function loadEsbuild(): Esbuild {
  const fromTsx = createRequire(createRequire(import.meta.url).resolve('tsx'));
  return fromTsx('esbuild') as Esbuild;
}
