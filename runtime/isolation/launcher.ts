/**
 * Starts hosts: worker threads and child processes running the host entry, with their memory limit
 * and (for processes) Node's permission model. A host is launched bare (the runtime loaded, no
 * identity yet) so that a spare can wait ready for the next start or restart.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { buildHost, type HostBuild } from './build.js';
import type { HostPort } from './port-transport.js';

/** What a process host may do under Node's permission model (`--experimental-permission`). */
export interface ProcessPermissions {
  /**
   * Paths the host may read, besides the runtime's own files, its dependencies and the actor's
   * module (which it always may). Defaults to none.
   */
  readonly fsRead?: readonly string[];
  /** Paths the host may write. Defaults to none. */
  readonly fsWrite?: readonly string[];
  /** May the host start child processes? Defaults to false. */
  readonly childProcess?: boolean;
  /** May the host start worker threads? Defaults to false. */
  readonly worker?: boolean;
}

/** How to launch one host. */
export interface LaunchOptions {
  readonly kind: 'worker' | 'process';
  /** The heap limit in MB (a worker's `maxOldGenerationSizeMb`, a process's `--max-old-space-size`). */
  readonly memoryLimitMb: number | undefined;
  /** Process hosts only: run under the permission model with these grants. */
  readonly permissions: ProcessPermissions | undefined;
  /** Modules the actors will load, readable under the permission model. */
  readonly modules: readonly string[];
}

/** How a host ended. */
export interface HostExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** The host ran out of its heap (its memory limit). */
  readonly outOfMemory: boolean;
  /** An error the thread or process reported as it died. */
  readonly error: Error | undefined;
  /** The last output of a process host's stderr. */
  readonly stderr: string;
}

/** A launched host: its port, and how it ends. */
export interface LaunchedHost {
  readonly kind: 'worker' | 'process';
  readonly port: HostPort;
  /** Resolves once the host ended, however it ended. */
  readonly exited: Promise<HostExit>;
  /** Ends the host now (a worker is terminated, a process killed). Idempotent. */
  terminate(): void;
}

const here = import.meta.url;
/** From TypeScript sources (tests, tsx) the host needs the TypeScript loader; from the package, not. */
const fromSources = here.endsWith('.ts');
const entry = new URL(`./host-entry.${fromSources ? 'ts' : 'js'}`, here);
const require = createRequire(here);
/** The project's root: the runtime's files and its dependencies are read from under it. */
const root = fileURLToPath(new URL('../../', here));

/**
 * A worker's first code: registers the TypeScript loader when the entry is TypeScript, then imports
 * the entry. Given as code (`eval`) so that the package needs no separate JavaScript file for it.
 */
const WORKER_BOOT = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx !== undefined) (await import(workerData.tsx)).register();
  await import(workerData.entry);
})().catch((error) => {
  process.stderr.write('troupe host: cannot start: ' + (error && error.stack || error) + '\\n');
  process.exit(70);
});
`;

/** Starts a host. */
export function launchHost(options: LaunchOptions): LaunchedHost {
  return options.kind === 'worker' ? launchWorker(options) : launchProcess(options);
}

function launchWorker(options: LaunchOptions): LaunchedHost {
  const worker = new Worker(WORKER_BOOT, {
    eval: true,
    workerData: {
      entry: entry.href,
      // The loader's ESM face (its CommonJS one resolves a path that does not exist in a worker).
      tsx: fromSources
        ? pathToFileURL(require.resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href
        : undefined,
    },
    ...(options.memoryLimitMb === undefined
      ? {}
      : { resourceLimits: { maxOldGenerationSizeMb: options.memoryLimitMb, maxYoungGenerationSizeMb: 16 } }),
    stdout: false,
    stderr: false,
  });
  let error: Error | undefined;
  worker.on('error', (e) => {
    error = e;
  });
  const exited = new Promise<HostExit>((resolve) => {
    worker.once('exit', (code) => {
      const outOfMemory = /OUT_OF_MEMORY/.test(String((error as { code?: unknown } | undefined)?.code ?? ''));
      resolve({ code, signal: null, outOfMemory, error, stderr: '' });
    });
  });
  let terminated = false;
  return {
    kind: 'worker',
    port: {
      post: (message) => worker.postMessage(message),
      listen(onMessage) {
        worker.on('message', onMessage);
        return () => worker.off('message', onMessage);
      },
    },
    exited,
    terminate() {
      if (terminated) return;
      terminated = true;
      void worker.terminate();
    },
  };
}

function launchProcess(options: LaunchOptions): LaunchedHost {
  if (fromSources && options.permissions !== undefined) {
    // The TypeScript loader needs a worker and a child process, which such a host is denied: it runs
    // a JavaScript build of itself instead (see build.ts).
    return whenStarted(
      buildHost(fileURLToPath(entry), root, options.modules).then((built) =>
        forkHost(options, built.entry, built.modules),
      ),
      'process',
    );
  }
  return forkHost(options, fileURLToPath(entry), undefined);
}

/** Environment variable naming a restricted host's built modules (read by the host entry). */
export const BUILT_MODULES_ENV = 'TROUPE_HOST_MODULES';

function forkHost(
  options: LaunchOptions,
  entryPath: string,
  built: HostBuild['modules'] | undefined,
): LaunchedHost {
  const execArgv: string[] = [];
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env[BUILT_MODULES_ENV];
  if (built !== undefined) env[BUILT_MODULES_ENV] = JSON.stringify(built);
  if (entryPath.endsWith('.ts')) execArgv.push('--import', pathToFileURL(require.resolve('tsx')).href);
  if (options.memoryLimitMb !== undefined) execArgv.push(`--max-old-space-size=${options.memoryLimitMb}`);
  const permissions = options.permissions;
  if (permissions !== undefined) {
    execArgv.push('--experimental-permission', '--no-warnings');
    const reads = new Set<string>([real(resolvePath(root)), ...packageFolders(real(resolvePath(root)))]);
    for (const module of options.modules) {
      if (module.startsWith('file:')) reads.add(dirname(real(fileURLToPath(module))));
    }
    if (built !== undefined) reads.add(dirname(real(entryPath)));
    for (const path of permissions.fsRead ?? []) reads.add(resolvePath(path));
    if (permissions.worker === true) execArgv.push('--allow-worker');
    if (permissions.childProcess === true) execArgv.push('--allow-child-process');
    for (const path of outermost(reads)) execArgv.push(`--allow-fs-read=${path}`);
    for (const path of permissions.fsWrite ?? []) execArgv.push(`--allow-fs-write=${resolvePath(path)}`);
  }
  const child: ChildProcess = fork(entryPath, [], {
    execArgv,
    env,
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4096);
  });
  let error: Error | undefined;
  child.on('error', (e) => {
    error = e;
  });
  const exited = new Promise<HostExit>((resolve) => {
    child.once('exit', (code, signal) => {
      const outOfMemory = /heap out of memory|Reached heap limit/i.test(stderr);
      resolve({ code, signal, outOfMemory, error, stderr });
    });
  });
  let terminated = false;
  return {
    kind: 'process',
    port: {
      post: (message) => {
        if (child.connected) child.send(message as never);
      },
      listen(onMessage) {
        const listener = (message: unknown) => onMessage(message);
        child.on('message', listener);
        return () => child.off('message', listener);
      },
    },
    exited,
    terminate() {
      if (terminated) return;
      terminated = true;
      child.kill('SIGKILL');
    },
  };
}

/**
 * The `node_modules` folders Node resolves the runtime's packages from: under its root and each
 * folder above (an installed package's dependencies sit beside it, in its consumer's `node_modules`).
 */
function packageFolders(from: string): string[] {
  const folders: string[] = [];
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = resolvePath(dir, 'node_modules');
    if (existsSync(candidate)) folders.push(real(candidate));
    if (dirname(dir) === dir) return folders;
  }
}

/**
 * The paths not inside another of them: Node 20's permission model loses the grant of a directory
 * itself when a path inside it is granted too, so only the outermost are given.
 */
function outermost(paths: Iterable<string>): string[] {
  const all = [...paths].map((p) => (p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p));
  return all.filter(
    (path, i) =>
      all.indexOf(path) === i && !all.some((other) => other !== path && path.startsWith(`${other}/`)),
  );
}

function real(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * A host that starts once `starting` resolves (a process host waiting for its build): what is posted
 * before is kept and posted then, listeners are added then, and a failed start is an exit.
 */
function whenStarted(starting: Promise<LaunchedHost>, kind: 'worker' | 'process'): LaunchedHost {
  let host: LaunchedHost | undefined;
  let terminated = false;
  const queued: unknown[] = [];
  const listeners = new Map<(message: unknown) => void, () => void>();
  const started = starting.then((launched) => {
    host = launched;
    if (terminated) launched.terminate();
    for (const [listener] of listeners) listeners.set(listener, launched.port.listen(listener));
    for (const message of queued.splice(0)) launched.port.post(message);
    return launched;
  });
  return {
    kind,
    port: {
      post(message) {
        if (host === undefined) queued.push(message);
        else host.port.post(message);
      },
      listen(onMessage) {
        const listener = (message: unknown) => onMessage(message);
        listeners.set(listener, host === undefined ? () => {} : host.port.listen(listener));
        return () => {
          listeners.get(listener)?.();
          listeners.delete(listener);
        };
      },
    },
    exited: started.then(
      (launched) => launched.exited,
      (cause: unknown): HostExit => ({
        code: null,
        signal: null,
        outOfMemory: false,
        error: new Error(
          `the host could not be built: ${cause instanceof Error ? cause.message : String(cause)}`,
          {
            cause,
          },
        ),
        stderr: '',
      }),
    ),
    terminate() {
      terminated = true;
      host?.terminate();
    },
  };
}
