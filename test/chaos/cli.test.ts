/** `troupe chaos run | replay | shrink`: a plan file in, a summary, a history and a report out. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { natsServerBinary, netLabUnavailable, postgresBinaries } from '../../ops/chaos/index.js';
import { main } from '../../ops/cli/main.js';
import { TroupeProcess } from '../harness/troupe-cli.js';

const missing =
  natsServerBinary() === undefined || postgresBinaries() === undefined
    ? 'nats-server or PostgreSQL is not installed (npm run setup)'
    : undefined;
if (missing !== undefined) console.warn(`skipping troupe chaos run on real processes: ${missing}`);
const noLab = missing ?? netLabUnavailable();
if (noLab !== undefined) console.warn(`skipping troupe chaos run interrupted in the net lab: ${noLab}`);

const dir = mkdtempSync(join(tmpdir(), 'troupe-chaos-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The processes under `pid` (children, their children, ...), with their command names, from /proc. */
function descendants(pid: number): { pid: number; name: string }[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces: the parent's pid follows the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // Gone meanwhile.
    }
  }
  const out: { pid: number; name: string }[] = [];
  const walk = (parent: number) => {
    for (const child of parents.get(parent) ?? []) {
      try {
        out.push({ pid: child, name: readFileSync(`/proc/${child}/comm`, 'utf8').trim() });
      } catch {
        continue;
      }
      walk(child);
    }
  };
  walk(pid);
  return out;
}

/** Whether `pid` runs (a zombie waiting for its reaper does not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) }, out, err };
}

describe('troupe chaos', () => {
  it('runs a JSON plan in simulation with progress, writes the history and report; replay judges it again', async () => {
    const plan = join(dir, 'plan.json');
    writeFileSync(
      plan,
      JSON.stringify({
        name: 'cli',
        seed: 1,
        durationMs: 6000,
        healMs: 3000,
        nodes: ['a', 'b', 'c'],
        workload: { name: 'register' },
        faults: [{ kind: 'partition', at: 2000, durationMs: 1500, sides: [['a'], ['b', 'c']] }],
      }),
    );
    const run = io();
    const out = join(dir, 'out');
    expect(await main(['chaos', 'run', plan, '--seed', '2', '--simulate', '--out', out], run.io)).toBe(0);
    expect(run.err.join('')).toMatch(/simulated 6 \/ 6 s/);
    expect(run.out.join('')).toMatch(/chaos run "cli" seed 2: 3 nodes/);
    expect(run.out.join('')).toMatch(/✓ linearizable\(register\): ok/);
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    const history = JSON.parse(readFileSync(join(out, 'history.json'), 'utf8'));
    expect(history).toMatchObject({ seed: 2, workload: 'register' });
    const replay = io();
    expect(await main(['chaos', 'replay', join(out, 'history.json')], replay.io)).toBe(0);
    expect(replay.out.join('')).toMatch(/✓ singleActivation: ok/);
  }, 120_000);

  it('exits 1 for a failing plan module, and shrink prints the seed and a minimal schedule', async () => {
    const plan = join(import.meta.dirname, 'fixtures', 'stale-plan.ts');
    const run = io();
    expect(await main(['chaos', 'run', plan, '--simulate'], run.io)).toBe(1);
    expect(run.out.join('')).toMatch(/✗ linearizable\(register\): violated/);
    const s = io();
    expect(await main(['chaos', 'shrink', plan, '--max-runs', '6'], s.io)).toBe(1);
    expect(s.out.join('')).toMatch(/^seed 3, 0 fault\(s\) left after \d+ run\(s\)/);
    expect(s.err.join('')).toMatch(/tried 2 fault\(s\): fails/);
  }, 120_000);

  it.skipIf(missing !== undefined)(
    'runs a plan on real processes without --simulate: progress, the faults as they happen, summary, history and report',
    async () => {
      const plan = join(dir, 'real-plan.json');
      writeFileSync(
        plan,
        JSON.stringify({
          name: 'cli-real',
          seed: 1,
          durationMs: 6000,
          healMs: 5000,
          nodes: ['a', 'b', 'c'],
          workload: { name: 'counter' },
          faults: [
            { kind: 'crash-node', at: 1500, durationMs: 1500, node: 'b', signal: 'kill' },
            { kind: 'partition', at: 2000, durationMs: 1000, sides: [['a'], ['b', 'c']] },
          ],
        }),
      );
      const run = io();
      const out = join(dir, 'real-out');
      const code = await main(['chaos', 'run', plan, '--seed', '4', '--out', out], run.io);
      const err = run.err.join('');
      expect(code, `${run.out.join('')}\n${err}`).toBe(0);
      expect(err).toMatch(/elapsed 6 \/ 6 s/);
      expect(err).toMatch(/3 node process\(es\) up/);
      expect(err).toMatch(/kill node b for 1500 ms/);
      expect(run.out.join('')).toMatch(/chaos run "cli-real" seed 4: 3 nodes/);
      expect(run.out.join('')).toMatch(/✓ linearizable\(counter\): ok/);
      expect(existsSync(join(out, 'report.html'))).toBe(true);
      const history = JSON.parse(readFileSync(join(out, 'history.json'), 'utf8'));
      expect(history).toMatchObject({ seed: 4, workload: 'counter', nodes: ['a', 'b', 'c'] });
      const replay = io();
      expect(await main(['chaos', 'replay', join(out, 'history.json')], replay.io)).toBe(0);
      expect(replay.out.join('')).toMatch(/✓ singleActivation: ok/);
    },
    120_000,
  );

  /**
   * Runs `faults` on two real nodes for long, interrupts the CLI with SIGINT once `applied` is
   * printed and the run goes on, and checks that it exits 130 leaving none of the processes it
   * started. `running` looks at the run before the signal, given the CLI's pid. Resolves with that pid.
   */
  async function interruptRealRun(
    name: string,
    faults: unknown[],
    applied: string,
    running: (pid: number) => void = () => {},
  ): Promise<number> {
    const plan = join(dir, `${name}.json`);
    writeFileSync(
      plan,
      JSON.stringify({
        name,
        seed: 1,
        durationMs: 600_000,
        healMs: 5000,
        nodes: ['a', 'b'],
        workload: { name: 'counter' },
        faults,
      }),
    );
    const run = TroupeProcess.start(['chaos', 'run', plan]);
    try {
      await expect
        .poll(() => run.stderr, { timeout: 90_000, interval: 200 })
        .toMatch(new RegExp(`${applied}.*elapsed \\d+ / 600 s`, 's'));
      const started = descendants(run.child.pid!);
      const names = started.map((p) => p.name);
      expect(names).toContain('nats-server');
      expect(names).toContain('postgres');
      // The runner's node processes (tsx may add its esbuild service beside them).
      expect(names.filter((n) => n === 'node').length).toBeGreaterThanOrEqual(2);
      running(run.child.pid!);
      run.signal('SIGINT');
      const { code } = await run.exited;
      expect(code, run.stderr).toBe(130);
      expect(run.stderr).toContain(`chaos run "${name}" seed 1 interrupted (SIGINT)`);
      expect(run.stdout).toBe('');
      // Every client, fault and wait of the run listens to the signal: no leak warning for that.
      expect(run.stderr).not.toContain('MaxListenersExceededWarning');
      // Postgres's own workers end a moment after their server.
      await expect
        .poll(() => started.filter((p) => alive(p.pid)), { timeout: 15_000, interval: 100 })
        .toEqual([]);
      return run.child.pid!;
    } finally {
      await run.stop();
    }
  }

  it.skipIf(missing !== undefined)(
    'stops a real run on SIGINT: its servers and node processes (a paused one too) are gone, and it exits 130',
    async () => {
      // A paused node cannot see its runner's pipe close: only the runner's cleanup ends it. The
      // faults still to come wait on the run's signal, with the clients: more than ten listeners.
      const later = Array.from({ length: 6 }, (_, i) => ({
        kind: 'crash-actor',
        at: 300_000 + i * 1000,
        pattern: 'troupe://*/a/nothing',
      }));
      await interruptRealRun(
        'cli-interrupted',
        [{ kind: 'pause-node', at: 500, durationMs: 500_000, node: 'b' }, ...later],
        'pause node b',
      );
    },
    120_000,
  );

  it.skipIf(missing !== undefined)(
    'exits at once on a second SIGINT while its servers start, and the servers it spawned die with it, their stores removed',
    async () => {
      const plan = join(dir, 'cli-twice.json');
      writeFileSync(
        plan,
        JSON.stringify({
          name: 'cli-twice',
          seed: 1,
          durationMs: 600_000,
          nodes: ['a'],
          workload: { name: 'counter' },
        }),
      );
      const run = TroupeProcess.start(['chaos', 'run', plan]);
      try {
        // The NATS server is spawned, and the run has not said its servers are up (Postgres's
        // initdb takes a second or two more).
        let servers: { pid: number; name: string }[] = [];
        await expect
          .poll(
            () => {
              servers = descendants(run.child.pid!).filter((p) => p.name === 'nats-server');
              return servers.length;
            },
            { timeout: 60_000, interval: 10 },
          )
          .toBe(1);
        expect(run.stderr).not.toContain('nats-server on');
        // Its JetStream store, in the temporary directory.
        const args = readFileSync(`/proc/${servers[0]!.pid}/cmdline`, 'utf8').split('\0');
        const store = args[args.indexOf('-sd') + 1]!;
        expect(store).toContain('troupe-nats-');
        expect(existsSync(store)).toBe(true);
        // Two presses of Ctrl-C (two signals at once would be one: a pending signal is not queued twice).
        run.signal('SIGINT');
        await expect
          .poll(() => run.stderr, { timeout: 30_000, interval: 10 })
          .toContain('SIGINT: interrupting');
        run.signal('SIGINT');
        const { code } = await run.exited;
        expect(code, run.stderr).toBe(130);
        expect(run.stderr).toContain('SIGINT again: exiting now');
        // It exited before its servers were up: the race this test is for.
        expect(run.stderr).not.toContain('nats-server on');
        await expect
          .poll(() => servers.filter((p) => alive(p.pid)), { timeout: 15_000, interval: 100 })
          .toEqual([]);
        expect(existsSync(store)).toBe(false);
      } finally {
        await run.stop();
      }
    },
    120_000,
  );

  it.skipIf(noLab !== undefined)(
    'stops a real run in the net lab on SIGINT: its namespaces, packet filters and uplink are gone too',
    async () => {
      // The lab's namespaces (their packet filters with them) are named after the runner's pid, and
      // its uplink in the root namespace names the hub's namespace as its peer's.
      const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
      const links = () => execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
      const pid = await interruptRealRun(
        'cli-interrupted-lab',
        [{ kind: 'partition', at: 500, durationMs: 500_000, sides: [['a'], ['b']] }],
        'partition',
        (running) => {
          expect(namespaces()).toContain(`tnl-${running}-`);
          expect(links()).toContain(`link-netns tnl-${running}-`);
        },
      );
      expect(namespaces()).not.toContain(`tnl-${pid}-`);
      expect(links()).not.toContain(`link-netns tnl-${pid}-`);
    },
    120_000,
  );

  it('stops a simulated run on SIGTERM and exits 143', async () => {
    const plan = join(dir, 'long-sim-plan.json');
    writeFileSync(
      plan,
      JSON.stringify({
        name: 'cli-sim-interrupted',
        seed: 1,
        durationMs: 3_600_000,
        nodes: ['a', 'b', 'c'],
        workload: { name: 'register' },
      }),
    );
    const run = TroupeProcess.start(['chaos', 'run', plan, '--simulate']);
    try {
      await expect
        .poll(() => run.stderr, { timeout: 60_000, interval: 200 })
        .toMatch(/simulated \d+ \/ 3600 s/);
      run.signal('SIGTERM');
      const { code } = await run.exited;
      expect(code, run.stderr).toBe(143);
      expect(run.stderr).toMatch(/chaos run "cli-sim-interrupted" seed 1 interrupted \(SIGTERM\)/);
    } finally {
      await run.stop();
    }
  }, 90_000);
});
