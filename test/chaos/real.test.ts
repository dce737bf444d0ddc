/**
 * Chaos plans on real processes: three node processes on a private nats-server and Postgres,
 * registers and counters under kill -9, a clean crash, SIGSTOP, a NATS restart and a Postgres
 * restart; every checker holds, and a register that acknowledges before writing is caught. Clock
 * skew on a node process; the bank, the contract net and agents under model storms over node
 * processes.
 * The servers are shared by the runs (each run has its own cluster and database).
 */

import {
  bankWorkload,
  contractNetWorkload,
  type FaultInput,
  modelStormWorkload,
  NatsServer,
  natsServerBinary,
  netLabUnavailable,
  type PlanInput,
  PostgresServer,
  postgresBinaries,
  registerWorkload,
  runReal,
  summary,
} from 'troupe/chaos';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inLab } from '../../ops/chaos/real/run.js';

const missing =
  natsServerBinary() === undefined
    ? 'nats-server is not installed (npm run setup)'
    : postgresBinaries() === undefined
      ? 'PostgreSQL is not installed (npm run setup)'
      : undefined;
if (missing !== undefined) console.warn(`skipping chaos runs on real processes: ${missing}`);
const noLab = missing ?? netLabUnavailable();
if (noLab !== undefined) console.warn(`skipping chaos runs on real processes in the net lab: ${noLab}`);

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

describe('network faults as the net lab plays them, through the NATS server', () => {
  it('puts the server on the largest side of a partition, so the others are cut off from it', () => {
    const split = (sides: string[][], oneWay = false) =>
      inLab({ kind: 'partition', at: 0, durationMs: 1, sides, oneWay }, 'nats', ['a', 'b', 'c']);
    expect(split([['a'], ['b', 'c']])).toEqual([
      { kind: 'partition', sides: [['a'], ['b', 'c', 'nats']], oneWay: false },
    ]);
    expect(split([['a', 'b'], ['c']], true)).toEqual([
      { kind: 'partition', sides: [['a', 'b', 'nats'], ['c']], oneWay: true },
    ]);
    expect(split([['a'], ['b'], ['c']])[0]).toMatchObject({ sides: [['a', 'nats'], ['b'], ['c']] });
  });

  it('splits a network fault over the way in and the way out, losses composing to the whole', () => {
    const legs = inLab(
      {
        kind: 'network',
        at: 0,
        durationMs: 1,
        from: ['a'],
        to: ['b'],
        delayMs: 40,
        jitterMs: 10,
        drop: 0.19,
        duplicate: 0,
        reorder: 0.3,
      },
      'nats',
      ['a', 'b', 'c'],
    );
    expect(legs).toMatchObject([
      { kind: 'network', from: ['a'], to: ['nats'], delayMs: 20, jitterMs: 5, reorder: 0.3 },
      { kind: 'network', from: ['nats'], to: ['b'], delayMs: 20, jitterMs: 5, reorder: 0 },
    ]);
    const kept = legs.reduce((p, leg) => p * (1 - (leg.kind === 'network' ? (leg.drop ?? 0) : 0)), 1);
    expect(1 - kept).toBeCloseTo(0.19, 10);
  });
});

/** Agents under model storms: 429s on half the calls, a storm of 500s, a kill, a skewed clock, a hang. */
function stormPlan(seed: number): PlanInput {
  return {
    ...plan(seed, 'register'),
    name: 'real-model-storm',
    workload: { name: 'model-storm' },
    faults: [
      { kind: 'model', at: 1000, durationMs: 2000, mode: '429', probability: 0.5 },
      { kind: 'model', at: 3500, durationMs: 2000, mode: '500' },
      { kind: 'crash-node', at: 6000, durationMs: 1000, node: 'n2', signal: 'kill' },
      { kind: 'clock-skew', at: 6500, durationMs: 2000, node: 'n3', skewMs: 1500 },
      { kind: 'model', at: 8000, durationMs: 1000, mode: 'hang' },
    ],
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
    "skews a node process's wall clock (it reads off by the skew, then right again), and skips, saying so, network faults when told",
    async () => {
      const events: string[] = [];
      const result = await runReal(
        {
          ...plan(4, 'register'),
          durationMs: 4000,
          healMs: 3000,
          faults: [
            { kind: 'partition', at: 1000, durationMs: 1000, sides: [['n1'], ['n2', 'n3']] },
            { kind: 'clock-skew', at: 1500, durationMs: 1000, node: 'n2', skewMs: 30_000 },
          ],
        },
        {
          workload: registerWorkload({ clients: 2 }),
          nats,
          postgres,
          network: 'off',
          onEvent: (line) => events.push(line),
        },
      );
      expect(result.skipped.map((s) => s.fault.kind)).toEqual(['partition']);
      const text = summary(result);
      expect(text).toMatch(/partition @\d+ ms skipped: network faults are off/);
      // The node's own clock, read through its gateway: off by the skew (within a round trip), then right.
      const reads = events
        .map((line) => /^clock of n2 set (-?\d+) ms off; it reads (-?\d+) ms off$/.exec(line))
        .filter((m) => m !== null)
        .map((m) => [Number(m[1]), Number(m[2])]);
      expect(reads, events.join('\n')).toHaveLength(2);
      expect(reads[0]![0]).toBe(30_000);
      expect(Math.abs(reads[0]![1]! - 30_000)).toBeLessThan(1000);
      expect(reads[1]![0]).toBe(0);
      expect(Math.abs(reads[1]![1]!)).toBeLessThan(1000);
      expect(result.history.ops.filter((op) => op.f === 'clock-skew').map((op) => op.type)).toEqual([
        'invoke',
        'ok',
      ]);
      expect(result.verdict, text).toBe('ok');
    },
    LONG,
  );

  it.skipIf(noLab !== undefined)(
    'plays partitions (symmetric and one-way) and a lossy, slow, duplicating, reordering network in the net lab',
    async () => {
      const result = await runReal(
        {
          ...plan(6, 'register'),
          durationMs: 9000,
          faults: [
            { kind: 'partition', at: 1500, durationMs: 2500, sides: [['n1'], ['n2', 'n3']] },
            { kind: 'partition', at: 5000, durationMs: 1500, sides: [['n3'], ['n1', 'n2']], oneWay: true },
            {
              kind: 'network',
              at: 7000,
              durationMs: 1000,
              delayMs: 40,
              jitterMs: 20,
              drop: 0.1,
              duplicate: 0.1,
              reorder: 0.2,
            },
          ],
        },
        // Its own NATS server: the lab runs it in a namespace of its own.
        { workload: registerWorkload({ clients: 4 }), postgres },
      );
      const text = summary(result);
      expect(result.skipped, text).toEqual([]);
      // Linearizable although n1, cut off for less than its NATS client's ping timeout, does not notice
      // while n2 and n3 take its leases over: it fences itself (holds what comes for its named actors)
      // once its heartbeats go unacknowledged, so its old activations never answer after the takeover.
      expect(
        result.verdicts.map((v) => [v.checker, v.verdict]),
        text,
      ).toEqual([
        ['linearizable(register)', 'ok'],
        ['singleActivation', 'ok'],
        ['noDuplicateEffects', 'ok'],
        ['livenessAfterHeal', 'ok'],
      ]);
      // The partition cut n1 off: nothing asked through it while it lasted was answered.
      const [start, end] = result.history.ops
        .filter((op) => op.process === 'nemesis' && op.f === 'partition')
        .slice(0, 2)
        .map((op) => op.time);
      const through = (node: string) =>
        result.history.ops.filter(
          (op) => op.process !== 'nemesis' && op.node === node && op.time > start! + 500 && op.time < end!,
        );
      expect(through('n1').filter((op) => op.type === 'invoke').length).toBeGreaterThan(0);
      expect(through('n1').filter((op) => op.type === 'ok')).toEqual([]);
      expect(through('n2').filter((op) => op.type === 'ok').length).toBeGreaterThan(0);
    },
    LONG,
  );

  it(
    'keeps the bank (transfers as sagas between persistent accounts) whole under kill -9, SIGSTOP and a Postgres restart',
    async () => {
      const result = await runReal(
        {
          ...plan(7, 'register'),
          name: 'real-bank',
          durationMs: 6000,
          workload: { name: 'bank' },
          faults: [
            { kind: 'crash-node', at: 1500, durationMs: 1500, node: 'n2', signal: 'kill' },
            { kind: 'pause-node', at: 3000, durationMs: 1000, node: 'n3' },
            { kind: 'postgres-restart', at: 4200, durationMs: 800 },
          ],
        },
        { workload: bankWorkload({ clients: 2 }), nats, postgres },
      );
      const text = summary(result);
      expect(
        result.verdicts.map((v) => [v.checker, v.verdict]),
        text,
      ).toEqual([
        ['bank total constant', 'ok'],
        ['sagaAtomicity', 'ok'],
        ['workflowStepsOnce', 'ok'],
        ['noDuplicateEffects', 'ok'],
        ['singleActivation', 'ok'],
      ]);
      expect(result.history.log.filter((e) => e.type === 'workflow-started').length).toBeGreaterThan(0);
    },
    LONG,
  );

  it(
    'runs the contract net over node processes: no task awarded or done twice, every task settled, under kill -9 and SIGSTOP of bidders',
    async () => {
      const result = await runReal(
        {
          ...plan(11, 'register'),
          name: 'real-contract-net',
          durationMs: 6000,
          workload: { name: 'contract-net' },
          faults: [
            { kind: 'crash-node', at: 1500, durationMs: 1500, node: 'n2', signal: 'kill' },
            { kind: 'pause-node', at: 3500, durationMs: 1000, node: 'n3' },
          ],
        },
        { workload: contractNetWorkload({ clients: 2 }), nats, postgres },
      );
      const text = summary(result);
      expect(
        result.verdicts.map((v) => [v.checker, v.verdict]),
        text,
      ).toEqual(result.verdicts.map((v) => [v.checker, 'ok']));
      expect(result.skipped).toEqual([]);
      expect(result.verdicts.length).toBeGreaterThanOrEqual(5);
      expect(
        result.history.ops.filter((op) => op.process !== 'nemesis' && op.type === 'ok').length,
      ).toBeGreaterThan(0);
    },
    LONG,
  );

  it(
    'runs agents under model storms over node processes: breakers open, budgets hold across kill -9, no run lost, Retry-After honoured',
    async () => {
      const result = await runReal(stormPlan(12), {
        workload: modelStormWorkload({ tokenBudget: 1000 }),
        nats,
        postgres,
      });
      const text = summary(result);
      // A breaker that opened at the first storm may leave the next too few calls to judge by: unknown.
      expect(
        result.verdicts.map((v) => [v.checker, v.verdict]),
        text,
      ).toEqual([
        ['agents: breakers open during storms', expect.stringMatching(/^(ok|unknown)$/)],
        ['agents: budgets hold', 'ok'],
        ['agents: no run lost', 'ok'],
        ['agents: retries honour Retry-After', 'ok'],
      ]);
      expect(result.skipped).toEqual([]);
      // The nodes' scripted models played the storms: 429s and 500s, breakers open on the nodes.
      const calls = result.history.log.filter((e) => e.type === 'model-call');
      expect(new Set(calls.map((e) => e.node))).toEqual(new Set(['n1', 'n2', 'n3']));
      const outcomes = new Set(calls.map((e) => (e.data as { outcome: string }).outcome));
      expect([...outcomes], text).toEqual(expect.arrayContaining(['ok', '429', '500']));
      const opened = result.history.log.filter(
        (e) => e.type === 'breaker-transition' && (e.data as { to: string }).to === 'open',
      );
      expect(opened.length, text).toBeGreaterThan(0);
      const errors = new Set(result.history.ops.filter((op) => op.type === 'fail').map((op) => op.error));
      expect([...errors], text).toEqual(expect.arrayContaining(['ERR_CIRCUIT_OPEN']));
    },
    LONG,
  );
});
