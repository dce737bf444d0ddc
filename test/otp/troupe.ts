/**
 * Runs a scenario on Troupe, on the simulated clock, and writes the same trace tokens as
 * oracle.escript (see there): workers log `preStart` as `+N` (`+N!` when it throws) and `postStop`
 * as `-N` (`-N!` after their own crash or exit); the steps and `X` (the root gone) are logged around
 * them.
 */
import { z } from 'zod';
import {
  type Behavior,
  behavior,
  createSystem,
  defineProtocol,
  dynamicSupervisor,
  type TreeNode as LiveNode,
  type SupervisorRef,
  startChild,
  supervisor,
  TroupeError,
  tell,
} from '../../index.js';
import { SimulatedClock, settle } from '../../runtime/testkit/index.js';
import { parentsOf, ROOT, type Scenario, type TreeNode } from './scenario.js';

const OracleWorker = defineProtocol('otp.worker', {
  crash: tell(z.object({})),
  exit: tell(z.object({})),
});

/** What the workers of one run share: the trace, and what OTP's logging process knows. */
interface Run {
  readonly trace: string[];
  readonly starts: Map<string, number>;
  /** Workers whose next postStop follows their own crash or exit (OTP: terminate's reason is not shutdown). */
  readonly ownExit: Set<string>;
}

/** What a run saw besides its trace, for the coverage count. */
export interface TroupeRun {
  readonly trace: string[];
  /** Restarted actors (paths from the root) and when, on the simulated clock. */
  readonly restarts: { readonly path: string; readonly at: number }[];
  /** Supervisors that gave up (paths) and during which step (-1: the first start). */
  readonly gaveUp: { readonly path: string; readonly step: number }[];
}

const SYSTEM = 'otp';

/** Runs `scenario` on a fresh system on the simulated clock (its steps at whole seconds, as on OTP). */
export async function runOnTroupe(scenario: Scenario): Promise<TroupeRun> {
  const clock = new SimulatedClock(1_000_000);
  const system = createSystem({ name: SYSTEM, clock, deadLetterLog: () => {}, devChecks: false });
  const run: Run = { trace: [], starts: new Map(), ownExit: new Set() };
  const result: TroupeRun = { trace: run.trace, restarts: [], gaveUp: [] };
  let step = -1;
  const prefix = address('');
  // Subscribing also keeps a failing root from writing to the console.
  const events = system.events$.subscribe((event) => {
    if (event.type === 'supervisor-escalated')
      result.gaveUp.push({ path: event.address.slice(prefix.length), step });
    if (event.type === 'actor-restarted')
      result.restarts.push({ path: event.address.slice(prefix.length), at: event.at });
  });
  const parents = parentsOf(scenario);
  const pathOf = (name: string): string => {
    const parent = parents.get(name);
    return parent === undefined ? name : `${pathOf(parent)}/${name}`;
  };
  const running = (name: string) => find(system.tree(), pathOf(name).split('/'))?.status === 'running';
  const gone = () => system.status.tag !== 'running';
  try {
    const root = system.spawn(build(scenario.root, run), { name: ROOT, restart: 'permanent' });
    await settle(system);
    if (gone()) {
      run.trace.push('X');
      return result;
    }
    for (const next of scenario.steps) {
      step++;
      if (next.op === 'wait') {
        run.trace.push(`wait:${next.seconds}`);
        await clock.advance(next.seconds * 1000);
      } else if (next.op === 'start') {
        run.trace.push(`start:${next.name}`);
        if (!running(next.dyn)) {
          run.trace.push('skip');
          continue;
        }
        const dyn = system.ref(address(pathOf(next.dyn))) as SupervisorRef;
        const restart = dynRestart(scenario, next.dyn);
        const child = worker(next.name, next.failStarts, run);
        await startChild(dyn, { id: next.name, behavior: child, restart }).catch((error: unknown) => {
          // A start that fails rejects so, and the worker has logged it; nothing else may go wrong.
          if (!TroupeError.is(error, 'ERR_START_FAILED')) throw error;
        });
      } else {
        run.trace.push(`${next.op}:${next.target}`);
        if (!running(next.target)) {
          run.trace.push('skip');
          continue;
        }
        system.ref(address(pathOf(next.target)), OracleWorker).tell(next.op, {});
      }
      await settle(system);
      if (gone()) {
        run.trace.push('X');
        return result;
      }
    }
    run.trace.push('stop:root');
    await system.stop(root);
    return result;
  } finally {
    await system.close();
    events.unsubscribe();
  }
}

function address(path: string): string {
  return `troupe://${SYSTEM}/local/${path}`;
}

function find(node: LiveNode, path: readonly string[]): LiveNode | undefined {
  if (path.length === 0) return node;
  const next = node.children.find((child) => child.name === path[0]);
  return next === undefined ? undefined : find(next, path.slice(1));
}

function dynRestart(scenario: Scenario, dyn: string) {
  const walk = (node: TreeNode): TreeNode | undefined =>
    node.name === dyn
      ? node
      : node.kind === 'sup'
        ? node.children.map(walk).find((n) => n !== undefined)
        : undefined;
  const node = walk(scenario.root);
  if (node?.kind !== 'dyn') throw new Error(`${dyn} is not a dynamic supervisor`);
  return node.childRestart;
}

function build(node: TreeNode, run: Run): Behavior<any, any> {
  switch (node.kind) {
    case 'worker':
      return worker(node.name, node.failStarts, run);
    case 'dyn':
      return dynamicSupervisor({ intensity: node.intensity, periodMs: node.periodSeconds * 1000 });
    case 'sup':
      return supervisor({
        strategy: node.strategy,
        intensity: node.intensity,
        periodMs: node.periodSeconds * 1000,
        children: node.children.map((child) => ({
          id: child.name,
          behavior: build(child, run),
          restart: child.restart,
        })),
      });
  }
}

function worker(
  name: string,
  failStarts: readonly number[],
  run: Run,
): Behavior<typeof OracleWorker, undefined> {
  return behavior({
    protocols: [OracleWorker],
    handlers: {
      crash: () => {
        run.ownExit.add(name);
        throw new Error('injected crash');
      },
      exit: (_body, ctx) => {
        run.ownExit.add(name);
        void ctx.stop();
      },
    },
    preStart: () => {
      const n = (run.starts.get(name) ?? 0) + 1;
      run.starts.set(name, n);
      if (failStarts.includes(n)) {
        run.trace.push(`+${name}!`);
        throw new Error(`start ${n} of ${name} fails`);
      }
      run.trace.push(`+${name}`);
    },
    postStop: () => {
      run.trace.push(run.ownExit.delete(name) ? `-${name}!` : `-${name}`);
    },
  });
}
