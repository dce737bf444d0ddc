/**
 * Runs scenarios on real Erlang/OTP: one `escript` process per batch (oracle.escript), every scenario
 * of the batch at once. Debian's `erlang-base` provides `escript` (scripts/setup.sh installs it).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Scenario, toErlang } from './scenario.js';

const SCRIPT = fileURLToPath(new URL('./oracle.escript', import.meta.url));
const CANDIDATES = ['/usr/bin/escript', '/usr/local/bin/escript', '/usr/lib/erlang/bin/escript'];

/** The escript binary, or undefined when Erlang/OTP is not installed. */
export function escriptBinary(): string | undefined {
  return CANDIDATES.find((path) => existsSync(path));
}

/** How often a scenario whose steps overran their second (a loaded machine) is run again. */
const TIMING_ATTEMPTS = 4;

/** Scenarios run again so far because their steps overran their second. */
export let rerun = 0;

/**
 * The OTP trace of every scenario, by id. A scenario whose steps did not all fit in their second is
 * run again in a smaller batch; one that never fits makes this reject.
 */
export async function runOnOtp(scenarios: readonly Scenario[]): Promise<Map<string, string[]>> {
  const traces = new Map<string, string[]>();
  let pending = scenarios;
  for (let attempt = 1; pending.length > 0; attempt++) {
    const results = await runBatch(pending);
    const late: Scenario[] = [];
    for (const scenario of pending) {
      const result = results.get(scenario.id);
      if (result === undefined) throw new Error(`oracle.escript gave no trace for scenario ${scenario.id}`);
      if (result === 'timing') late.push(scenario);
      else traces.set(scenario.id, result);
    }
    rerun += late.length;
    if (late.length > 0 && attempt === TIMING_ATTEMPTS) {
      throw new Error(
        `OTP could not run ${late.length} scenario(s) within their whole seconds in ${TIMING_ATTEMPTS} attempts (machine overloaded?): ${late.map((s) => s.id).join(', ')}`,
      );
    }
    pending = late;
  }
  return traces;
}

async function runBatch(scenarios: readonly Scenario[]): Promise<Map<string, string[] | 'timing'>> {
  const escript = escriptBinary();
  if (escript === undefined) {
    throw new Error(
      'escript not found: install Erlang/OTP with `npm run setup` (Debian package erlang-base)',
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'troupe-otp-'));
  try {
    const file = join(dir, 'scenarios.terms');
    await writeFile(file, `${scenarios.map(toErlang).join('\n')}\n`);
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(escript, [SCRIPT, file], { maxBuffer: 256 * 1024 * 1024 }, (error, out, err) => {
        if (error) reject(new Error(`oracle.escript failed: ${error.message}\n${err}`));
        else resolve(out);
      });
    });
    const results = new Map<string, string[] | 'timing'>();
    for (const line of stdout.split('\n')) {
      if (line.length === 0) continue;
      const [id, trace = ''] = line.split('\t');
      results.set(id!, trace === 'timing' ? 'timing' : trace.split(' ').filter((t) => t.length > 0));
    }
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
