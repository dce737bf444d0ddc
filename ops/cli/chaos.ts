/**
 * `troupe chaos run <plan> --seed N [--simulate]` (in simulation, or on real processes: node
 * processes on a private nats-server and Postgres), `troupe chaos replay <history.json>` and
 * `troupe chaos shrink <plan> --seed N`: chaos plans from the command line, with the built-in
 * workloads (`register`, `counter`, `bank`, `contract-net`, `model-storm`) or a module's own.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { invalidOption } from '../../protocols/index.js';
import {
  bankWorkload,
  contractNetWorkload,
  historyJson,
  htmlReport,
  modelStormWorkload,
  type Plan,
  parseHistory,
  parsePlan,
  type RealResult,
  registerWorkload,
  runCheckers,
  runReal,
  type SimResult,
  shrink,
  simulate,
  summary,
  type Workload,
  worst,
} from '../chaos/index.js';
import type { CliIo, ExitCode } from './io.js';
import { SIGNAL_EXIT, untilSignal } from './signals.js';

/** The built-in workloads by name. */
function builtIn(name: string): Workload | undefined {
  if (name === 'register') return registerWorkload();
  if (name === 'counter') return registerWorkload({ model: 'counter' });
  if (name === 'bank') return bankWorkload();
  if (name === 'contract-net') return contractNetWorkload();
  if (name === 'model-storm') return modelStormWorkload();
  return undefined;
}

/** A plan from a JSON file, or a module whose default export is a plan (and may export `workload`). */
async function loadPlan(path: string, seed: string | undefined): Promise<{ plan: Plan; workload: Workload }> {
  let raw: unknown;
  let workload: Workload | undefined;
  if (path.endsWith('.json')) raw = readFileSync(path, 'utf8');
  else {
    const module = (await import(pathToFileURL(resolve(path)).href)) as {
      default?: unknown;
      workload?: Workload;
    };
    raw = module.default;
    workload = module.workload;
  }
  let plan = parsePlan(raw);
  if (seed !== undefined) {
    const n = Number(seed);
    if (!Number.isInteger(n)) throw invalidOption('--seed', 'must be an integer', seed);
    plan = { ...plan, seed: n };
  }
  // A node process of a real run builds a module's workload from the module itself.
  if (workload !== undefined && workload.origin === undefined)
    workload = { ...workload, origin: { module: resolve(path), export: 'workload' } };
  workload ??= builtIn(plan.workload.name);
  if (workload === undefined)
    throw invalidOption(
      'plan.workload.name',
      `"${plan.workload.name}" is not a built-in workload (register, counter, bank, contract-net, model-storm); export \`workload\` from a plan module`,
    );
  return { plan, workload };
}

/** Adds `troupe chaos` and its subcommands to the program. */
export function registerChaos(program: Command, io: CliIo, exit: (code: ExitCode) => void): void {
  const chaos = program
    .command('chaos')
    .description('chaos testing: run a fault plan, check a history again, shrink a failure');
  const progress = (simulatedMs: number, totalMs: number) => {
    const line = `simulated ${(simulatedMs / 1000).toFixed(0)} / ${(totalMs / 1000).toFixed(0)} s`;
    io.err(io.errIsTty === true ? `\r${line}` : `${line}\n`);
  };
  chaos
    .command('run')
    .description('run a plan (JSON, or a module exporting it by default) and judge its history')
    .argument('<plan>', 'the plan file')
    .option('--seed <n>', "the seed (defaults to the plan's)")
    .option('--simulate', 'run in deterministic simulation instead of on real processes')
    .option('--out <dir>', 'write history.json and report.html there')
    .action(async (path: string, options: { seed?: string; simulate?: boolean; out?: string }) => {
      const { plan, workload } = await loadPlan(path, options.seed);
      const simulated = options.simulate === true;
      // Ctrl-C or SIGTERM stops the run, and a real run stops the servers, node processes and net
      // lab it started before the command exits.
      const run = await untilSignal<SimResult | RealResult>(io, 'chaos run', (signal) =>
        simulated
          ? simulate(plan, { workload, onProgress: progress, signal })
          : runReal(plan, {
              workload,
              signal,
              onProgress: (elapsedMs, totalMs) => {
                const line = `elapsed ${(elapsedMs / 1000).toFixed(0)} / ${(totalMs / 1000).toFixed(0)} s`;
                io.err(io.errIsTty === true ? `\r${line}` : `${line}\n`);
              },
              onEvent: (line) => io.err(`${io.errIsTty === true ? '\r' : ''}${line}\n`),
            }),
      );
      if ('interrupted' in run) {
        io.err(
          simulated
            ? `chaos run "${plan.name}" seed ${plan.seed} interrupted (${run.interrupted})\n`
            : `chaos run "${plan.name}" seed ${plan.seed} interrupted (${run.interrupted}): the servers, node processes and net lab it started are stopped\n`,
        );
        exit(SIGNAL_EXIT[run.interrupted]);
        return;
      }
      const result = run.done;
      if (io.errIsTty === true) io.err('\n');
      io.out(`${summary(result)}\n`);
      if (options.out !== undefined) {
        mkdirSync(options.out, { recursive: true });
        writeFileSync(join(options.out, 'history.json'), historyJson(result.history));
        writeFileSync(join(options.out, 'report.html'), htmlReport(result));
        io.out(`wrote ${join(options.out, 'history.json')} and ${join(options.out, 'report.html')}\n`);
      }
      exit(result.verdict === 'violated' ? 1 : 0);
    });
  chaos
    .command('replay')
    .description("judge a history again with its workload's checkers")
    .argument('<history>', 'a history.json written by chaos run')
    .action((path: string) => {
      const history = parseHistory(readFileSync(path, 'utf8'));
      const workload = builtIn(history.workload ?? '');
      if (workload === undefined)
        throw invalidOption('history.workload', `no built-in workload "${history.workload}"`);
      const plan = parsePlan({
        name: history.plan,
        seed: history.seed,
        durationMs: Math.max(1, Math.round(history.durationMs)),
        nodes: history.nodes,
        workload: { name: history.workload },
      });
      const verdicts = runCheckers(history, workload.checkers(plan));
      io.out(`${summary({ history, verdicts })}\n`);
      exit(worst(verdicts) === 'violated' ? 1 : 0);
    });
  chaos
    .command('shrink')
    .description(
      'shrink the fault schedule of a failing run to a minimal one, and print the seed and schedule',
    )
    .argument('<plan>', 'the plan file')
    .option('--seed <n>', "the seed (defaults to the plan's)")
    .option('--max-runs <n>', 'most runs to try', '40')
    .action(async (path: string, options: { seed?: string; maxRuns: string }) => {
      const { plan, workload } = await loadPlan(path, options.seed);
      const shrunk = await shrink(plan, {
        workload,
        maxRuns: Number(options.maxRuns),
        onTry: (faults, failed) =>
          io.err(`tried ${faults.length} fault(s): ${failed ? 'fails' : 'passes'}\n`),
      });
      if (shrunk === undefined) {
        io.out(`seed ${plan.seed}: the run does not fail; nothing to shrink\n`);
        exit(0);
        return;
      }
      io.out(`${shrunk.summary}\n`);
      exit(1);
    });
}
