/**
 * A PGlite directory, with real processes. One process at a time: a second opener is refused while
 * the first holds the directory, no acknowledged note is lost, and the lock goes with its holder,
 * whether it closes or is killed with `kill -9`. A directory this process may not write is refused
 * at once, naming the path and the permission.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { pgliteJournal, type TroupeError } from '../../index.js';
import { PGLITE_LOCK_FILE } from '../../memory/pglite.js';
import { stopChild } from '../harness/child.js';
import { repoRoot, runFile, unprivileged } from '../harness/script.js';

const WRITER = join(import.meta.dirname, 'pglite-writer.ts');
const dir = mkdtempSync(join(tmpdir(), 'troupe-lock-'));
const dataDir = join(dir, 'db');
const holders: ChildProcess[] = [];

afterAll(async () => {
  for (const holder of holders) await stopChild(holder, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a writer that keeps the directory open once it has written; resolves when it holds it. */
async function holder(writer: string, notes: number): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dataDir, writer, String(notes), 'hold'], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  holders.push(child);
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  await expect.poll(() => output, { timeout: 60_000, interval: 100 }).toContain('count ');
  return { child, output: () => output };
}

const write = (writer: string, notes: number) => runFile(WRITER, { args: [dataDir, writer, String(notes)] });

it('refuses a second process while the first holds the directory, and loses no acknowledged note', async () => {
  const first = await holder('a', 5);
  expect(first.output()).toContain('count 5');

  const refused = await write('b', 5);
  expect(refused, refused.stderr).toMatchObject({ code: 0, stdout: 'ERR_JOURNAL_LOCKED\n' });

  const exited = new Promise((resolve) => first.child.once('exit', resolve));
  first.child.stdin!.end();
  expect(await exited).toBe(0);

  const second = await write('b', 5);
  expect(second, second.stderr).toMatchObject({ code: 0 });
  expect(second.stdout).toContain('count 10');
}, 180_000);

it('lets the directory be opened again after its holder is killed with kill -9', async () => {
  const killed = await holder('c', 3);
  expect(killed.output()).toContain('count 13');
  killed.child.kill('SIGKILL');
  await new Promise((resolve) => killed.child.once('exit', resolve));

  // Refused until the dead holder's lock goes stale, then opened, with every acknowledged note.
  let last = '';
  await expect
    .poll(
      async () => {
        last = (await write('d', 0)).stdout;
        return last;
      },
      { timeout: 60_000, interval: 500 },
    )
    .toBe('count 13\n');
}, 180_000);

it('says what is happening when it creates a database, and only then', async () => {
  const fresh = join(dir, 'fresh');
  const lines: string[] = [];
  const first = await pgliteJournal({ dataDir: fresh, notice: (line) => lines.push(line) });
  await first.close();
  expect(lines).toEqual([
    `troupe: creating a PGlite database in ${fresh} (takes several seconds and about 40 MB)`,
  ]);
  const again = await pgliteJournal({ dataDir: fresh, notice: (line) => lines.push(line) });
  await again.close();
  expect(lines).toHaveLength(1);
}, 180_000);

it('tells onDefect when it loses its lock', async () => {
  // The directory of the test above when it ran first (no new database to create then).
  const fresh = join(dir, 'fresh');
  const defects: TroupeError[] = [];
  const journal = await pgliteJournal({ dataDir: fresh, notice: false, onDefect: (e) => defects.push(e) });
  try {
    // As if another process had taken the directory over: the lock's next refresh finds it gone.
    rmSync(join(fresh, PGLITE_LOCK_FILE), { recursive: true, force: true });
    await vi.waitFor(() => expect(defects).toHaveLength(1), { timeout: 30_000, interval: 100 });
    expect(defects[0]).toMatchObject({ code: 'ERR_JOURNAL_LOCKED', details: { dataDir: fresh } });
    expect(defects[0]!.message).toContain(`the lock of the PGlite directory ${fresh} was lost`);
  } finally {
    await journal.close();
  }
}, 180_000);

describe('a directory this process may not write', () => {
  // Written by the test, read by a program that may run as another user.
  const open = (path: string) => runFile(WRITER, { args: [path, 'e', '0'], user: unprivileged() });

  it('names the path and the permission for an existing directory it may not write', async () => {
    const locked = join(dir, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o555);
    chmodSync(dir, 0o755);
    const result = await open(locked);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(result.stdout).toBe(
      `the PGlite directory ${locked} is not readable and writable by this process: permission denied (EACCES)\n`,
    );
  }, 90_000);

  it('names the path and the permission for a directory it may not create', async () => {
    const inside = join(dir, 'locked', 'db');
    const result = await open(inside);
    expect(result.stdout).toBe(
      `the PGlite directory ${inside} cannot be created: permission denied (EACCES)\n`,
    );
  }, 90_000);

  it('names the path and the permission for a read-only database', async () => {
    // The database the tests above wrote, made read-only.
    chmodSync(dataDir, 0o555);
    const result = await open(dataDir);
    expect(result.stdout).toBe(
      `the PGlite directory ${dataDir} is not readable and writable by this process: permission denied (EACCES)\n`,
    );
  }, 90_000);
});
