/**
 * Chaos plans on real processes: three node processes on a private nats-server and Postgres,
 * registers and counters under kill -9, a clean crash, SIGSTOP, a NATS restart and a Postgres
 * restart; every checker holds, and a register that acknowledges before writing is caught.
 * The servers are shared by the runs (each run has its own cluster and database).
 */

import {
  type FaultInput,
  NatsServer,
  natsServerBinary,
  type PlanInput,
  PostgresServer,
  postgresBinaries,
  registerWorkload,
  runReal,
  summary,
} from 'troupe/chaos';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const missing =
  natsServerBinary() === undefined
    ? 'nats-server is not installed (npm run setup)'
    : postgresBinaries() === undefined
      ? 'PostgreSQL is not installed (npm run setup)'
      : undefined;
if (missing !== undefined) console.warn(`skipping chaos runs on real processes: ${missing}`);

// Each run: a few seconds of setup, its plan, the final reads; more on a loaded machine.
const LONG = 90_000;

const FAULTS: FaultInput[] = [
  { kind: 'crash-node', at: 1500, durationMs: 1500, node: 'n2', signal: 'kill' },
  { kind: 'pause-node', at: 3500, durationMs: 1200, node: 'n3' },
  { kind: 'nats-restart', at: 5200, durationMs: 800 },
  { kind: 'postgres-restart', at: 6500, durationMs: 800 },
  { kind: 'crash-node', at: 7600, durationMs: 1000, node: 'n1', signal: 'crash' },
];

function plan(seed: number, model: 'register' | 'counter'): PlanInput {
  return {
    name: `real-${model}`,
    seed,
    durationMs: 10_000,
    healMs: 5000,
    nodes: ['n1', 'n2', 'n3'],
    workload: { name: model },
    faults: FAULTS,
  };
}

describe.skipIf(missing !== undefined)('chaos on real processes', () => {
  let nats: NatsServer;
  let postgres: PostgresServer;
  beforeAll(async () => {
    [nats, postgres] = await Promise.all([NatsServer.start(), PostgresServer.start()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([nats?.dispose(), postgres?.dispose()]);
  });

  it.each([
    [1, 'register'],
    [2, 'counter'],
    [5, 'register'],
  ] as const)(
    'seed %i, %s: linearizable, fenced, no effect twice and live after kill -9, a crash, SIGSTOP, NATS and Postgres restarts',
    async (seed, model) => {
      const events: string[] = [];
      const result = await runReal(plan(seed, model), {
        workload: registerWorkload({ model, clients: 4 }),
        nats,
        postgres,
        onEvent: (line) => events.push(line),
      });
      const text = summary(result);
      expect(
        result.verdicts.map((v) => [v.checker, v.verdict]),
        text,
      ).toEqual([
        [`linearizable(${model})`, 'ok'],
        ['singleActivation', 'ok'],
        ['noDuplicateEffects', 'ok'],
        ['livenessAfterHeal', 'ok'],
      ]);
      // The faults happened: every one started and healed (a node's restart may end after the next
      // fault began), and the nodes came back.
      const nemesis = result.history.ops.filter((op) => op.process === 'nemesis');
      for (const type of ['invoke', 'ok'])
        expect(nemesis.filter((op) => op.type === type).map((op) => op.f)).toEqual(
          expect.arrayContaining([
            'crash-node',
            'crash-node',
            'pause-node',
            'nats-restart',
            'postgres-restart',
          ]),
        );
      expect(nemesis).toHaveLength(10);
      expect(result.stats.nodeStarts).toBeGreaterThanOrEqual(5);
      expect(events.some((line) => line.includes('kill node n2'))).toBe(true);
      // Work went on, and the journal's log (read back from Postgres) carries fences and nodes.
      expect(result.history.ops.filter((op) => op.type === 'ok').length).toBeGreaterThan(50);
      expect(result.history.log.length).toBeGreaterThan(20);
      expect(result.history.log.every((e) => e.fence !== undefined && e.node !== undefined)).toBe(true);
      expect(new Set(result.history.log.map((e) => e.node)).size).toBeGreaterThan(1);
    },
    LONG,
  );

  it(
    'catches a register that acknowledges writes before persisting them',
    async () => {
      const result = await runReal(
        { ...plan(3, 'register'), durationMs: 7000, faults: FAULTS.slice(0, 2) },
        { workload: registerWorkload({ broken: 'ack-before-write', clients: 4 }), nats, postgres },
      );
      expect(result.verdicts[0], summary(result)).toMatchObject({
        checker: 'linearizable(register)',
        verdict: 'violated',
      });
      expect(result.verdicts[0]!.ops.length).toBeGreaterThan(0);
    },
    LONG,
  );

  it(
    'skips, and says so, the faults it cannot play: network faults without netlab, clock skew',
    async () => {
      const result = await runReal(
        {
          ...plan(4, 'register'),
          durationMs: 4000,
          healMs: 3000,
          faults: [
            { kind: 'partition', at: 1000, durationMs: 1000, sides: [['n1'], ['n2', 'n3']] },
            { kind: 'clock-skew', at: 1500, durationMs: 1000, node: 'n2', skewMs: 500 },
          ],
        },
        {
          workload: registerWorkload({ clients: 2 }),
          nats,
          postgres,
          networkUnavailable: 'netlab not available',
        },
      );
      expect(result.skipped.map((s) => s.fault.kind)).toEqual(['partition', 'clock-skew']);
      const text = summary(result);
      expect(text).toMatch(/partition @\d+ ms skipped: netlab not available/);
      expect(text).toMatch(/clock-skew on n2 @\d+ ms skipped: /);
      expect(result.verdict).toBe('ok');
    },
    LONG,
  );
});
