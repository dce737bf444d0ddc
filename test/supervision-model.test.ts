import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  type Behavior,
  behavior,
  createSystem,
  defineProtocol,
  dynamicSupervisor,
  type RestartType,
  type Strategy,
  type SupervisorRef,
  startChild,
  supervisor,
  type TreeNode,
  TroupeError,
  tell,
} from '../index.js';
import { SimulatedClock, settle } from '../runtime/testkit/index.js';

/*
 * A model-based test of supervision: random trees of supervisors (static, of every strategy, and
 * dynamic) and workers of every restart type, driven by random crashes, normal exits, dynamic starts
 * and clock moves. After every step the live tree (who is running, who is kept stopped, restart counts)
 * and escalation are compared with a small reference model of OTP's rules written independently here.
 */

const SEED = Number(process.env.FC_SEED ?? 20261122);
const RUNS = Number(process.env.FC_RUNS ?? 500);
const PERIOD_MS = 1000;

const Worker = defineProtocol('model.worker', {
  crash: tell(z.object({})),
  exit: tell(z.object({})),
});

const worker = behavior({
  protocols: [Worker],
  handlers: {
    crash: () => {
      throw new Error('injected crash');
    },
    exit: (_body, ctx) => {
      void ctx.stop();
    },
  },
});

type Spec =
  | { kind: 'worker'; restart: RestartType }
  | { kind: 'sup'; restart: RestartType; strategy: Strategy; intensity: number; children: Spec[] }
  | { kind: 'dyn'; restart: RestartType; intensity: number };

type RootSpec = Extract<Spec, { kind: 'sup' }>;

const restartArb = fc.constantFrom<RestartType>('permanent', 'transient', 'temporary');
const strategyArb = fc.constantFrom<Strategy>('one_for_one', 'one_for_all', 'rest_for_one');
const intensityArb = fc.integer({ min: 0, max: 3 });

const specArb = fc.letrec<{ spec: Spec; sup: RootSpec }>((tie) => ({
  spec: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ kind: fc.constant('worker' as const), restart: restartArb }),
    tie('sup'),
    fc.record({ kind: fc.constant('dyn' as const), restart: restartArb, intensity: intensityArb }),
  ),
  sup: fc.record({
    kind: fc.constant('sup' as const),
    restart: restartArb,
    strategy: strategyArb,
    intensity: intensityArb,
    children: fc.array(tie('spec'), { minLength: 1, maxLength: 4 }),
  }),
})).sup;

type Command =
  | { op: 'crash'; pick: number }
  | { op: 'exit'; pick: number }
  | { op: 'start'; pick: number; restart: RestartType }
  | { op: 'advance'; ms: number };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('crash' as const), pick: fc.nat() }), weight: 4 },
  { arbitrary: fc.record({ op: fc.constant('exit' as const), pick: fc.nat() }), weight: 2 },
  {
    arbitrary: fc.record({ op: fc.constant('start' as const), pick: fc.nat(), restart: restartArb }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.constantFrom(100, 400, 1200) }),
    weight: 1,
  },
);

// ---- The reference model ----

interface MNode {
  name: string;
  spec: Spec;
  parent: MNode | undefined;
  alive: boolean;
  restarts: number;
  children: MNode[];
  restartLog: number[];
  nextDynamic: number;
}

class Model {
  failed = false;
  readonly root: MNode;

  constructor(spec: RootSpec) {
    this.root = this.create('root', spec, undefined);
  }

  create(name: string, spec: Spec, parent: MNode | undefined): MNode {
    const node: MNode = {
      name,
      spec,
      parent,
      alive: false,
      restarts: 0,
      children: [],
      restartLog: [],
      nextDynamic: 0,
    };
    this.start(node);
    return node;
  }

  /** Starting a supervisor starts its static children afresh; a dynamic supervisor starts empty. */
  start(node: MNode): void {
    node.alive = true;
    node.restartLog = [];
    node.children =
      node.spec.kind === 'sup' ? node.spec.children.map((child, i) => this.create(`c${i}`, child, node)) : [];
  }

  /** Stopping a node stops its subtree; a stopped node has no children. */
  stop(node: MNode): void {
    node.alive = false;
    node.children = [];
  }

  liveWorkers(): MNode[] {
    return this.collect((n) => n.spec.kind === 'worker' && n.alive);
  }

  liveDynamics(): MNode[] {
    return this.collect((n) => n.spec.kind === 'dyn' && n.alive);
  }

  private collect(pred: (n: MNode) => boolean): MNode[] {
    const out: MNode[] = [];
    const walk = (n: MNode) => {
      if (pred(n)) out.push(n);
      for (const c of n.children) walk(c);
    };
    walk(this.root);
    return out;
  }

  /** `child` exited; `crashed` tells an abnormal exit from a normal one. */
  exit(child: MNode, crashed: boolean, now: number): void {
    const parent = child.parent;
    if (parent === undefined) {
      // The root supervisor failed: the system stops.
      this.failed = true;
      this.stop(child);
      return;
    }
    const restart = child.spec.restart;
    if (restart === 'temporary' || (restart === 'transient' && !crashed)) {
      this.stop(child);
      // A static supervisor keeps the spec of a permanent/transient child; others forget it.
      if (parent.spec.kind !== 'sup' || restart === 'temporary') this.remove(parent, child);
      return;
    }
    const intensity = parent.spec.kind === 'worker' ? 0 : parent.spec.intensity;
    parent.restartLog = parent.restartLog.filter((t) => t >= now - PERIOD_MS);
    parent.restartLog.push(now);
    if (parent.restartLog.length > intensity) {
      this.stop(parent);
      // A supervisor that gives up exits with reason `shutdown`, which OTP does not count as a crash:
      // a permanent slot restarts it, a transient or temporary one does not.
      this.exit(parent, false, now);
      return;
    }
    const strategy = parent.spec.kind === 'sup' ? parent.spec.strategy : 'one_for_one';
    const index = parent.children.indexOf(child);
    const group =
      strategy === 'one_for_one'
        ? [child]
        : strategy === 'one_for_all'
          ? [...parent.children]
          : parent.children.slice(index);
    for (const member of group) {
      if (member !== child && member.spec.restart === 'temporary') {
        this.stop(member);
        this.remove(parent, member);
        continue;
      }
      member.restarts++;
      this.start(member);
    }
  }

  private remove(parent: MNode, child: MNode): void {
    parent.children = parent.children.filter((c) => c !== child);
  }
}

// ---- Driving the real system ----

function build(spec: Spec): Behavior<any, any> {
  switch (spec.kind) {
    case 'worker':
      return worker;
    case 'dyn':
      return dynamicSupervisor({ intensity: spec.intensity, periodMs: PERIOD_MS });
    case 'sup':
      return supervisor({
        strategy: spec.strategy,
        intensity: spec.intensity,
        periodMs: PERIOD_MS,
        children: spec.children.map((child, i) => ({
          id: `c${i}`,
          behavior: build(child),
          restart: child.restart,
        })),
      });
  }
}

function pathOf(node: MNode): string {
  return node.parent === undefined ? node.name : `${pathOf(node.parent)}/${node.name}`;
}

interface Shape {
  name: string;
  alive: boolean;
  restarts: number;
  children: Shape[];
}

function modelShape(node: MNode): Shape {
  return {
    name: node.name,
    alive: node.alive,
    restarts: node.restarts,
    children: node.children.map(modelShape),
  };
}

function realShape(node: TreeNode): Shape {
  return {
    name: node.name,
    alive: node.status !== 'stopped',
    restarts: node.restarts,
    children: node.children.map(realShape),
  };
}

function unsettled(node: TreeNode): string[] {
  const here =
    node.status === 'running' || node.status === 'stopped' ? [] : [`${node.address}: ${node.status}`];
  return [...here, ...node.children.flatMap(unsettled)];
}

async function runScenario(rootSpec: RootSpec, commands: Command[]): Promise<void> {
  const clock = new SimulatedClock(1_000_000);
  const system: ActorSystem = createSystem({
    name: 'model',
    clock,
    deadLetterLog: () => {},
    devChecks: false,
  });
  const events: string[] = [];
  system.events$.subscribe((e) => {
    if (e.type !== 'actor-spawned' && e.type !== 'actor-started') events.push(e.type);
  });
  try {
    const model = new Model(rootSpec);
    system.spawn(build(rootSpec), { name: 'root', restart: 'permanent' });
    await settle(system);
    const trace: string[] = [];
    const check = () => {
      const context = `after ${JSON.stringify(trace)}`;
      if (model.failed) {
        expect(system.status.tag, context).toBe('failed');
        return;
      }
      expect(system.status.tag, context).toBe('running');
      const tree = system.tree();
      expect(unsettled(tree), context).toEqual([]);
      expect(tree.children.map(realShape), context).toEqual([modelShape(model.root)]);
    };
    check();
    for (const command of commands) {
      if (model.failed) break;
      trace.push(JSON.stringify(command));
      switch (command.op) {
        case 'crash':
        case 'exit': {
          const workers = model.liveWorkers();
          if (workers.length === 0) continue;
          const target = workers[command.pick % workers.length]!;
          system.ref(`troupe://model/local/${pathOf(target)}`).tell(command.op, {});
          await settle(system);
          model.exit(target, command.op === 'crash', clock.now());
          break;
        }
        case 'start': {
          const dynamics = model.liveDynamics();
          if (dynamics.length === 0) continue;
          const dyn = dynamics[command.pick % dynamics.length]!;
          const name = `d${dyn.nextDynamic++}`;
          const ref = system.ref(`troupe://model/local/${pathOf(dyn)}`) as SupervisorRef;
          await startChild(ref, { id: name, behavior: worker, restart: command.restart });
          await settle(system);
          const child: MNode = {
            name,
            spec: { kind: 'worker', restart: command.restart },
            parent: dyn,
            alive: true,
            restarts: 0,
            children: [],
            restartLog: [],
            nextDynamic: 0,
          };
          dyn.children.push(child);
          break;
        }
        case 'advance':
          await clock.advance(command.ms);
          await settle(system);
          break;
      }
      check();
    }
    if (model.failed) {
      const error = await system.closed();
      expect(TroupeError.is(error, 'ERR_ESCALATION')).toBe(true);
      expect(events).toContain('supervisor-escalated');
    }
  } finally {
    await system.close();
  }
}

describe('supervision against a reference model of OTP', () => {
  const failures: string[] = [];
  afterAll(() => {
    if (failures.length > 0) console.error(failures.join('\n'));
  });

  it('matches the model for random trees, crashes, exits, dynamic starts and time', async () => {
    await fc.assert(
      fc.asyncProperty(specArb, fc.array(commandArb, { maxLength: 25 }), async (spec, commands) => {
        await runScenario(spec, commands);
      }),
      {
        seed: SEED,
        numRuns: RUNS,
        reporter: (details) => {
          if (details.failed) {
            failures.push(`supervision model failed with seed ${SEED} (FC_SEED=${SEED} to replay)`);
            const cause = details.errorInstance instanceof Error ? `\n${details.errorInstance.message}` : '';
            throw new Error(`${fc.defaultReportMessage(details) ?? `failed with seed ${SEED}`}${cause}`);
          }
        },
      },
    );
  }, 120_000);

  it('escalates a root supervisor past its intensity and stops the system with ERR_ESCALATION', async () => {
    await runScenario(
      {
        kind: 'sup',
        restart: 'permanent',
        strategy: 'one_for_one',
        intensity: 1,
        children: [{ kind: 'worker', restart: 'permanent' }],
      },
      [
        { op: 'crash', pick: 0 },
        { op: 'crash', pick: 0 },
      ],
    );
  });
});
