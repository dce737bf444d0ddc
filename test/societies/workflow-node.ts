/**
 * One cluster node in its own process hosting durable workflows, for the kill -9 test. Started with
 * `node --import tsx workflow-node.ts <nats url> <cluster> <node> <heartbeatMs> <postgres url>`;
 * driven over IPC. Its `pipeline` workflow has 12 sequential steps; each notes its run (step, node,
 * idempotency key) in the journal's stream `runs-<id>` before it takes 150 ms.
 */
import {
  createNode,
  natsTransport,
  postgresJournal,
  type StepDefinition,
  sleep,
  workflow,
  workflowEngine,
} from '../../index.js';

const [url, clusterName, node, heartbeat, journalUrl] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];

const journal = await postgresJournal({ connectionString: journalUrl, prefix: 'wfnode_' });
export const STEPS = 12;
const steps: StepDefinition<{ base: number }>[] = Array.from({ length: STEPS }, (_, i) => ({
  name: `step-${i}`,
  ...(i === 0 ? {} : { after: [`step-${i - 1}`] }),
  run: async ({ input, results, workflowId, idempotencyKey, system, signal }) => {
    await journal.append(`runs-${workflowId}`, [
      { type: 'ran', data: { step: i, node, key: idempotencyKey } },
    ]);
    // The step's own work takes a while, so that the test's kill -9 lands while a step is in flight.
    await sleep(150, { clock: system.clock, signal });
    return (i === 0 ? input.base : (results[`step-${i - 1}`] as number)) * 2 + 1;
  },
}));
const pipeline = workflow({ name: 'pipeline', steps, output: (results) => results[`step-${STEPS - 1}`] });
const engine = workflowEngine({ journal, workflows: [pipeline], pollMs: 100 });

const system = await createNode({
  name: clusterName,
  node,
  transport: await natsTransport({ servers: url }),
  kinds: { workflow: engine.kind },
  heartbeatMs: Number(heartbeat),
  deadLetterLog: () => {},
});

type Command =
  | { id: number; cmd: 'start'; workflow: string; base: number }
  | { id: number; cmd: 'result'; workflow: string }
  | { id: number; cmd: 'members' };

process.on('message', async (message: Command) => {
  const reply = (value: unknown) => process.send?.({ id: message.id, ok: true, value });
  const fail = (error: unknown) =>
    process.send?.({ id: message.id, ok: false, error: (error as { code?: string }).code ?? String(error) });
  try {
    switch (message.cmd) {
      case 'start':
        await engine.start(system, pipeline, message.workflow, { base: message.base });
        return reply(true);
      case 'result': {
        const outcome = await engine.handle(system, message.workflow).result({ askTimeoutMs: 2000 });
        return reply(
          outcome.ok ? { ok: true, output: outcome.output } : { ok: false, code: outcome.error.code },
        );
      }
      case 'members':
        return reply(system.members());
    }
  } catch (error) {
    fail(error);
  }
});
process.send?.({ ready: true });
