/**
 * Runs a TypeScript program in its own Node process, as a user would run one, and reports how it
 * ended. The program is written inside the repository (under `.tmp/`), so it imports the sources by a
 * relative path such as `../../index.js`.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** How a program ended: its exit code (or the signal that ended it) and what it printed. */
export interface ScriptRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link runScript}. */
export interface RunScriptOptions {
  /** Extra arguments after the file. */
  readonly args?: readonly string[] | undefined;
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** Kills the program after this long. Defaults to 60 s. */
  readonly timeoutMs?: number | undefined;
  /** Runs it as another user (the test runs as root); see {@link unprivileged}. */
  readonly user?: { readonly uid: number; readonly gid: number } | undefined;
}

/**
 * A user to run a program as whom file permissions apply: root ignores them, so a test of a
 * permission error run as root runs its program as `nobody`. Undefined when not root.
 */
export function unprivileged(): { uid: number; gid: number } | undefined {
  return process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
}

/** Writes `code` to `.tmp/<dir>/<name>.ts` and runs it with tsx. Resolves however it ends. */
export function runScript(
  dir: string,
  name: string,
  code: string,
  options: RunScriptOptions = {},
): Promise<ScriptRun> {
  const folder = join(repoRoot, '.tmp', dir);
  mkdirSync(folder, { recursive: true });
  const file = join(folder, `${name}.ts`);
  writeFileSync(file, code);
  return runFile(file, options);
}

/** Runs a TypeScript file of the repository with tsx. Resolves however it ends. */
export function runFile(file: string, options: RunScriptOptions = {}): Promise<ScriptRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', file, ...(options.args ?? [])],
      {
        cwd: repoRoot,
        env: { ...process.env, ...options.env },
        timeout: options.timeoutMs ?? 60_000,
        ...options.user,
      },
      (error, stdout, stderr) => {
        const ended = error as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
        resolve({
          code: ended === null ? 0 : typeof ended.code === 'number' ? ended.code : null,
          signal: ended?.signal ?? null,
          stdout,
          stderr,
        });
      },
    );
  });
}
