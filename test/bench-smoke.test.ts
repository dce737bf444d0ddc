import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);

// Runs the benchmark in its quickest form and checks only the shape of its output: timings on a shared
// machine are too noisy to assert on.
it('prints one well-formed JSON result per line with --json', async () => {
  const root = join(import.meta.dirname, '..');
  const { stdout } = await run(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', 'bench/main.ts', '--json', '--quick', '--case', 'kernel.ask'],
    { cwd: root, timeout: 60_000 },
  );
  const lines = stdout.trimEnd().split('\n');
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) {
    const result = JSON.parse(line) as Record<string, unknown>;
    expect(Object.keys(result).sort()).toEqual(
      ['baseline', 'baselineValue', 'case', 'goal', 'pass', 'ratio', 'troupe', 'unit'].sort(),
    );
    expect(result.case).toMatch(/^kernel\.ask/);
    expect(result.baseline).toBe('nact');
    for (const field of ['unit', 'goal'] as const) {
      expect(typeof result[field], `${field} in ${line}`).toBe('string');
      expect((result[field] as string).length).toBeGreaterThan(0);
    }
    expect(typeof result.pass, `pass in ${line}`).toBe('boolean');
    for (const field of ['troupe', 'baselineValue', 'ratio'] as const) {
      expect(typeof result[field], `${field} in ${line}`).toBe('number');
      expect(Number.isFinite(result[field]), `${field} in ${line}`).toBe(true);
      expect(result[field] as number).toBeGreaterThan(0);
    }
  }
}, 90_000);
