/**
 * Society cases: durable workflows against LangGraph.js (a 10,000-step layered DAG, without and
 * with its Postgres checkpointer) and DBOS (1,000 concurrent workflows of 10 sequential steps), each
 * peer run in its documented way on the same Postgres server.
 *
 * The layered DAG: 100 layers of 100 trivial steps; each step after the first layer waits for two
 * steps of the layer before (its own column and the next one). Troupe declares both as `after`; in
 * LangGraph each step gets an edge from both. LangGraph runs a graph in supersteps (Pregel), and a
 * whole layer finishes in one superstep, so each node runs exactly once per invoke, as in Troupe. Its
 * barrier form (`addEdge([a, b], c)`) gives the same result but took 57 s to compile and 180-210 s
 * per invoke here, so the plain edges are LangGraph's fastest way to express this DAG.
 *
 * These cases run for minutes per side, so they do not use `sideBySide`'s warm-up: Troupe gets one
 * warm-up round, the peers' rounds are long enough to be warm (LangGraph compiles once per case),
 * and the sides alternate (A B | B A) over a few rounds.
 */
import { EventEmitter } from 'node:events';
import { DBOS } from '@dbos-inc/dbos-sdk';
import { Annotation, END, START, StateGraph } from '@langchain/langgraph';
import { PostgresSaver } from '@langchain/langgraph-checkpoint-postgres';
import {
  createSystem,
  inMemoryJournal,
  type Journal,
  postgresJournal,
  type SqlJournal,
  type StepDefinition,
  workflow,
  workflowEngine,
} from '../index.js';
import { PostgresServer } from '../test/harness/postgres.js';
import type { BenchCase, BenchTools } from './remote.js';

const LAYERS = 100;
const WIDTH = 100;

let server: Promise<PostgresServer> | undefined;
const closers: (() => Promise<void>)[] = [];

function postgres(): Promise<PostgresServer> {
  server ??= PostgresServer.fromEnvironment();
  return server;
}

/** Closes what the society cases opened. */
export async function tearDownWorkflows(): Promise<void> {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  if (server !== undefined) await (await server).dispose();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Alternates the two sides over `rounds` rounds (the first side alternating), after one warm-up
 * round of Troupe's; pairs each round of one side with the other's next to it.
 */
async function alternate(
  troupe: () => Promise<number>,
  peer: () => Promise<number>,
  rounds: number,
): Promise<[number, number, (readonly [number, number])[]]> {
  await troupe();
  const xs: number[] = [];
  const ys: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      xs.push(await troupe());
      ys.push(await peer());
    } else {
      ys.push(await peer());
      xs.push(await troupe());
    }
  }
  return [median(xs), median(ys), xs.map((x, i) => [x, ys[i]!] as const)];
}

/** The layered DAG as workflow steps. */
function dagSteps(): StepDefinition[] {
  const steps: StepDefinition[] = [];
  for (let layer = 0; layer < LAYERS; layer++) {
    for (let w = 0; w < WIDTH; w++) {
      steps.push({
        name: `s${layer}_${w}`,
        ...(layer === 0 ? {} : { after: [`s${layer - 1}_${w}`, `s${layer - 1}_${(w + 1) % WIDTH}`] }),
        run: () => 1,
      });
    }
  }
  return steps;
}

/** The same DAG as a LangGraph StateGraph: each node adds 1 to a summed channel. */
function dagGraph() {
  const State = Annotation.Root({
    count: Annotation<number>({ reducer: (a, b) => a + b, default: () => 0 }),
  });
  // The builder's types track node names literally; 10,000 generated names are beyond them.
  const graph = new StateGraph(State) as unknown as {
    addNode(name: string, run: () => { count: number }): void;
    addEdge(from: string, to: string): void;
    compile(options?: { checkpointer?: PostgresSaver }): {
      invoke(input: { count: number }, config: object): Promise<{ count: number }>;
    };
  };
  for (let layer = 0; layer < LAYERS; layer++)
    for (let w = 0; w < WIDTH; w++) graph.addNode(`s${layer}_${w}`, () => ({ count: 1 }));
  for (let w = 0; w < WIDTH; w++) graph.addEdge(START, `s0_${w}`);
  for (let layer = 1; layer < LAYERS; layer++) {
    for (let w = 0; w < WIDTH; w++) {
      graph.addEdge(`s${layer - 1}_${w}`, `s${layer}_${w}`);
      graph.addEdge(`s${layer - 1}_${(w + 1) % WIDTH}`, `s${layer}_${w}`);
    }
  }
  for (let w = 0; w < WIDTH; w++) graph.addEdge(`s${LAYERS - 1}_${w}`, END);
  return graph;
}

/** ms for Troupe to run one 10,000-step DAG instance on `journal`. */
async function troupeDag(journal: Journal) {
  const flow = workflow({
    name: 'dag',
    steps: dagSteps(),
    concurrency: LAYERS * WIDTH,
    output: () => 'done',
  });
  const engine = workflowEngine({ journal, workflows: [flow] });
  const system = createSystem({
    kinds: { workflow: engine.kind },
    devChecks: false,
    deadLetterLog: () => {},
  });
  closers.push(() => system.close());
  let n = 0;
  return async () => {
    const start = performance.now();
    const outcome = await engine.run(system, flow, `dag-${process.pid}-${n++}`, {});
    if (!outcome.ok) throw outcome.error;
    return performance.now() - start;
  };
}

export function workflowCases(tools: BenchTools): BenchCase[] {
  const { quick } = tools;
  const previousMax = EventEmitter.defaultMaxListeners;
  // LangGraph adds an abort listener per running node to one signal; Node warns past 10.
  const quietly = async <T>(run: () => Promise<T>) => {
    EventEmitter.defaultMaxListeners = 100_000;
    try {
      return await run();
    } finally {
      EventEmitter.defaultMaxListeners = previousMax;
    }
  };
  return [
    {
      name: 'society.dag.10k-steps',
      unit: 'ms',
      goal: 'ratio >= 5',
      async run() {
        const troupe = await troupeDag(inMemoryJournal());
        const app = dagGraph().compile();
        const langgraph = async () => {
          const start = performance.now();
          const out = await app.invoke({ count: 0 }, { recursionLimit: LAYERS + 10 });
          if (out.count !== LAYERS * WIDTH) throw new Error(`LangGraph ran ${out.count} nodes`);
          return performance.now() - start;
        };
        const [t, b, pairs] = await quietly(() => alternate(troupe, langgraph, quick ? 1 : 2));
        return tools.result(
          this.name,
          this.unit,
          t,
          'LangGraph.js StateGraph',
          b,
          false,
          pairs,
          this.goal,
          (r) => r.ratio >= 5,
        );
      },
    },
    {
      name: 'society.dag.10k-steps.durable',
      unit: 'ms',
      goal: 'ratio >= 5',
      async run() {
        const db = await postgres();
        const journal: SqlJournal = await postgresJournal({
          connectionString: db.url,
          prefix: `benchsoc${process.pid}_`,
        });
        closers.push(() => journal.close());
        const troupe = await troupeDag(journal);
        const saver = PostgresSaver.fromConnString(db.url);
        await saver.setup();
        closers.push(() => saver.end());
        const app = dagGraph().compile({ checkpointer: saver });
        let thread = 0;
        const langgraph = async () => {
          const start = performance.now();
          const out = await app.invoke(
            { count: 0 },
            { recursionLimit: LAYERS + 10, configurable: { thread_id: `dag-${process.pid}-${thread++}` } },
          );
          if (out.count !== LAYERS * WIDTH) throw new Error(`LangGraph ran ${out.count} nodes`);
          return performance.now() - start;
        };
        const [t, b, pairs] = await quietly(() => alternate(troupe, langgraph, quick ? 1 : 2));
        return tools.result(
          this.name,
          this.unit,
          t,
          'LangGraph.js + PostgresSaver',
          b,
          false,
          pairs,
          this.goal,
          (r) => r.ratio >= 5,
        );
      },
    },
    {
      name: 'society.workflow.durable-steps',
      unit: 'steps/s',
      goal: 'ratio >= 2',
      async run() {
        const db = await postgres();
        const WORKFLOWS = 1000;
        const STEPS = 10;
        const journal: SqlJournal = await postgresJournal({
          connectionString: db.url,
          prefix: `benchwf${process.pid}_`,
        });
        closers.push(() => journal.close());
        const steps: StepDefinition<number>[] = Array.from({ length: STEPS }, (_, i) => ({
          name: `step${i}`,
          ...(i === 0 ? {} : { after: [`step${i - 1}`] }),
          run: ({ input, results }) => (i === 0 ? input : (results[`step${i - 1}`] as number)) + 1,
        }));
        const flow = workflow<number>({
          name: 'ten',
          steps,
          output: (results) => results[`step${STEPS - 1}`],
        });
        const engine = workflowEngine({ journal, workflows: [flow] });
        const system = createSystem({
          kinds: { workflow: engine.kind },
          devChecks: false,
          deadLetterLog: () => {},
          mailbox: { capacity: 100_000 },
        });
        closers.push(() => system.close());
        let round = 0;
        const troupe = async () => {
          const r = round++;
          const start = performance.now();
          const outcomes = await Promise.all(
            Array.from({ length: WORKFLOWS }, (_, i) =>
              engine.run(system, flow, `wf-${process.pid}-${r}-${i}`, i),
            ),
          );
          const seconds = (performance.now() - start) / 1000;
          outcomes.forEach((o, i) => {
            if (!o.ok || o.output !== i + STEPS) throw new Error(`workflow ${i} gave ${JSON.stringify(o)}`);
          });
          return (WORKFLOWS * STEPS) / seconds;
        };

        // DBOS, as its documentation shows: registered steps and workflow, launched on a system database.
        DBOS.setConfig({ name: 'troupe-bench', systemDatabaseUrl: db.url, logLevel: 'error' });
        const increment = DBOS.registerStep(async (value: number) => value + 1, { name: 'increment' });
        const tenSteps = DBOS.registerWorkflow(
          async (value: number) => {
            let v = value;
            for (let i = 0; i < STEPS; i++) v = await increment(v);
            return v;
          },
          { name: 'tenSteps' },
        );
        let dbos: () => Promise<number>;
        try {
          await DBOS.launch();
          closers.push(() => DBOS.shutdown());
          dbos = async () => {
            const start = performance.now();
            const results = await Promise.all(Array.from({ length: WORKFLOWS }, (_, i) => tenSteps(i)));
            const seconds = (performance.now() - start) / 1000;
            results.forEach((v, i) => {
              if (v !== i + STEPS) throw new Error(`DBOS workflow ${i} gave ${v}`);
            });
            return (WORKFLOWS * STEPS) / seconds;
          };
        } catch (error) {
          console.error(`bench: DBOS could not run: ${(error as Error).stack ?? String(error)}`);
          await troupe();
          const t = await troupe();
          return {
            case: this.name,
            unit: this.unit,
            troupe: t,
            baseline: 'DBOS (failed to run)',
            baselineValue: 0,
            ratio: 0,
            goal: this.goal,
            pass: false,
          };
        }
        const [t, b, pairs] = await alternate(troupe, dbos, quick ? 1 : 4);
        return tools.result(
          this.name,
          this.unit,
          t,
          'DBOS workflows',
          b,
          true,
          pairs,
          this.goal,
          (r) => r.ratio >= 2,
        );
      },
    },
  ];
}
