/**
 * Starts hosts: worker threads and child processes running the host entry, with their memory limit
 * and (for processes) Node's permission model. A host is launched bare (the runtime loaded, no
 * identity yet) so that a spare can wait ready for the next start or restart.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
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
  const execArgv: string[] = [];
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (fromSources) execArgv.push('--import', pathToFileURL(require.resolve('tsx')).href);
  if (options.memoryLimitMb !== undefined) execArgv.push(`--max-old-space-size=${options.memoryLimitMb}`);
  const permissions = options.permissions;
  if (permissions !== undefined) {
    execArgv.push('--experimental-permission', '--no-warnings');
    const reads = new Set<string>([real(resolvePath(root)), real(resolvePath(root, 'node_modules'))]);
    for (const module of options.modules) {
      if (module.startsWith('file:')) reads.add(dirname(real(fileURLToPath(module))));
    }
    for (const path of permissions.fsRead ?? []) reads.add(resolvePath(path));
    if (fromSources) {
      // From TypeScript sources the loader needs more than the package will: it checks whether the
      // file system is case-sensitive (reading the working directory under both cases), runs its
      // hooks in a worker and esbuild as a service process, and must not write its cache. The
      // compiled package needs none of this, and keeps workers and child processes denied.
      const cwd = process.cwd();
      reads.add(cwd);
      reads.add(invertCase(cwd));
      env.TSX_DISABLE_CACHE = '1';
      execArgv.push('--allow-worker', '--allow-child-process');
    } else {
      if (permissions.worker === true) execArgv.push('--allow-worker');
      if (permissions.childProcess === true) execArgv.push('--allow-child-process');
    }
    for (const path of outermost(reads)) execArgv.push(`--allow-fs-read=${path}`);
    for (const path of permissions.fsWrite ?? []) execArgv.push(`--allow-fs-write=${resolvePath(path)}`);
  }
  const child: ChildProcess = fork(fileURLToPath(entry), [], {
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

function invertCase(text: string): string {
  let out = '';
  for (const c of text) out += c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
  return out;
}
