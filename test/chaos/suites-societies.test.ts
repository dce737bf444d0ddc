/**
 * Suites against the societies and the agents, in simulation with many seeds. The contract net
 * (managers as named actors, bidders on every node) under bidder crashes, node kills, pauses,
 * partitions and network loss: no task awarded or done twice, no award to a bidder that did not
 * bid, what clients are told agrees with the journal, every task settled after the heal; a contract
 * net without the journal's claim, and one that skips the call for proposals, are caught. Agents
 * under model storms (429 with Retry-After, 500, hangs, malformed bodies, slow streams) with nodes
 * killed and partitioned: breakers open, budgets hold, no run lost, retries wait out Retry-After;
 * agents without a breaker, without budgets, or behind a port that drops Retry-After are caught.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkChaos,
  contractNetWorkload,
  historyJson,
  historyRecorder,
  modelStormWorkload,
  type PlanInput,
  parsePlan,
  type SimContext,
  simulate,
} from 'troupe/chaos';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { AgentProtocol } from '../../agents/index.js';
import { inMemoryJournal } from '../../memory/index.js';
import { main } from '../../ops/cli/main.js';
import { createSystem, realClock, seededRandom } from '../../runtime/index.js';

// Whole simulated runs: tens to hundreds of ms of CPU each, more on a loaded machine.
const LONG = 120_000;

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

function contractPlan(seed: number): PlanInput {
  return {
    name: 'contract-net',
    seed,
    durationMs: 20_000,
    healMs: 5000,
    nodes: NODES,
    workload: { name: 'contract-net' },
    faults: {
      count: 6,
      kinds: ['crash-actor', 'crash-node', 'partition', 'pause-node', 'network'],
      actorPattern: 'troupe://sim/*/bidder',
    },
  };
}

const CONTRACT_CHECKERS = [
  'contract: awarded at most once',
  'noDuplicateEffects',
  'contract: awards only to bidders',
  'contract: outcomes agree with the journal',
  'contract: every task settled after the heal',
  'contract: no round after the task was decided',
  'singleActivation',
];

describe('contract net: managers and bidders spread over the nodes', () => {
  it(
    'awards and does every task at most once, only to bidders, and settles every task, for many seeds',
    async () => {
      const results = await checkChaos(contractPlan(1), {
        workload: contractNetWorkload(),
        seeds: [1, 2, 3, 4, 5, 6, 7, 8],
        strict: true,
      });
      const outcomes = new Set<string>();
      let crashedBidders = 0;
      for (const r of results) {
        expect(r.verdicts.map((v) => [v.checker, v.verdict])).toEqual(
          CONTRACT_CHECKERS.map((c) => [c, 'ok']),
        );
        for (const op of r.history.ops)
          if (op.process !== 'nemesis' && op.type !== 'invoke') outcomes.add(op.type);
        crashedBidders += r.history.log.filter(
          (e) => e.type === 'actor-crashed' && /\/bidder$/.test((e.data as { address: string }).address),
        ).length;
      }
      // Tasks were awarded, some failed, some answers were lost in the faults (and settled later).
      expect(outcomes).toEqual(new Set(['ok', 'fail', 'info']));
      expect(crashedBidders).toBeGreaterThan(0);
    },
    LONG,
  );

  it(
    'gives the same history, byte for byte, for the same seed',
    async () => {
      const a = await simulate(contractPlan(4), { workload: contractNetWorkload() });
      const b = await simulate(contractPlan(4), { workload: contractNetWorkload() });
      expect(a.history.ops.length).toBeGreaterThan(40);
      expect(historyJson(b.history)).toBe(historyJson(a.history));
    },
    LONG,
  );

  it(
    'catches bidders that work without claiming the task: a slow winner and the next-best both do it',
    async () => {
      const r = await simulate(contractPlan(1), { workload: contractNetWorkload({ broken: 'no-claim' }) });
      const byName = Object.fromEntries(r.verdicts.map((v) => [v.checker, v]));
      expect(byName['contract: awarded at most once']!.verdict).toBe('violated');
      expect(byName['contract: awarded at most once']!.message).toMatch(
        /went to troupe:\/\/sim\/n\d\/bidder and/,
      );
      expect(byName.noDuplicateEffects!.verdict).toBe('violated');
      expect(byName['contract: outcomes agree with the journal']!.verdict).toBe('violated');
      expect(byName['contract: outcomes agree with the journal']!.ops.length).toBeGreaterThan(0);
    },
    LONG,
  );

  it(
    'catches a manager that awards without a call for proposals',
    async () => {
      const r = await simulate(contractPlan(2), { workload: contractNetWorkload({ broken: 'no-call' }) });
      const verdict = r.verdicts.find((v) => v.checker === 'contract: awards only to bidders')!;
      expect(verdict.verdict).toBe('violated');
      expect(verdict.message).toMatch(/no recorded bid in that round/);
      expect(verdict.entries!.length).toBeGreaterThan(0);
    },
    LONG,
  );
});

function stormPlan(seed: number): PlanInput {
  return {
    name: 'model-storm',
    seed,
    durationMs: 20_000,
    healMs: 5000,
    nodes: ['n1', 'n2', 'n3'],
    workload: { name: 'model-storm' },
    // Storms weigh three to one against node kills and partitions.
    faults: { count: 6, kinds: ['model', 'model', 'model', 'crash-node', 'partition'], maxDurationMs: 6000 },
  };
}

describe('contract net: a manager that forgets', () => {
  it(
    'is caught announcing a task again after it was decided',
    async () => {
      const r = await simulate(contractPlan(1), { workload: contractNetWorkload({ broken: 'forgetful' }) });
      const verdict = r.verdicts.find((v) => v.checker === 'contract: no round after the task was decided')!;
      expect(verdict.verdict).toBe('violated');
      expect(verdict.entries!.every((e) => e.type === 'announced')).toBe(true);
    },
    LONG,
  );
});

describe('agents under model storms', () => {
  it(
    'open their breakers, keep their budgets, lose no run and wait out Retry-After, for many seeds',
    async () => {
      const seeds = [1, 2, 3, 4, 5, 6, 7, 8];
      // Not strict: a seed whose storms are too short to judge a breaker leaves that checker unknown.
      const results = await checkChaos(stormPlan(1), { workload: modelStormWorkload(), seeds });
      const breakers: string[] = [];
      const errors = new Set<string>();
      for (const r of results) {
        const byName = Object.fromEntries(r.verdicts.map((v) => [v.checker, v.verdict]));
        expect(byName).toEqual({
          'agents: breakers open during storms': expect.stringMatching(/^(ok|unknown)$/),
          'agents: budgets hold': 'ok',
          'agents: no run lost': 'ok',
          'agents: retries honour Retry-After': 'ok',
        });
        breakers.push(byName['agents: breakers open during storms']!);
        for (const op of r.history.ops) if (op.type === 'fail') errors.add(op.error!);
      }
      // Most seeds' storms were long enough to judge the breakers, and they opened.
      expect(breakers.filter((v) => v === 'ok').length).toBeGreaterThanOrEqual(seeds.length / 2);
      // Runs failed for every reason a storm gives: an open breaker, a spent budget, the provider.
      expect([...errors]).toEqual(
        expect.arrayContaining(['ERR_CIRCUIT_OPEN', 'ERR_BUDGET_EXCEEDED', 'ERR_MODEL_MALFORMED']),
      );
    },
    LONG,
  );

  it(
    'gives the same history, byte for byte, for the same seed',
    async () => {
      const a = await simulate(stormPlan(5), { workload: modelStormWorkload() });
      const b = await simulate(stormPlan(5), { workload: modelStormWorkload() });
      expect(a.history.log.some((e) => e.type === 'breaker-transition')).toBe(true);
      expect(historyJson(b.history)).toBe(historyJson(a.history));
    },
    LONG,
  );

  it(
    'catches agents whose port has no breaker',
    async () => {
      const r = await simulate(stormPlan(1), { workload: modelStormWorkload({ broken: 'no-breaker' }) });
      const verdict = r.verdicts.find((v) => v.checker === 'agents: breakers open during storms')!;
      expect(verdict.verdict).toBe('violated');
      expect(verdict.message).toMatch(
        /storm at \d+ ms failed enough calls by [\d.]+ ms, and no breaker opened/,
      );
    },
    LONG,
  );

  it(
    'catches agents without budgets',
    async () => {
      const r = await simulate(stormPlan(1), { workload: modelStormWorkload({ broken: 'no-budget' }) });
      const verdict = r.verdicts.find((v) => v.checker === 'agents: budgets hold')!;
      expect(verdict.verdict).toBe('violated');
      expect(verdict.message).toMatch(
        /agent\(s\) over budget, first troupe:\/\/sim\/n\d\/agent-0: \d+ of 2000 tokens/,
      );
    },
    LONG,
  );

  it(
    'catches a port that drops Retry-After: its retries come too soon',
    async () => {
      // A storm of 429s on half the calls: retries meet 429s, and a port without Retry-After retries early.
      const storm: PlanInput = {
        ...stormPlan(2),
        durationMs: 12_000,
        faults: [{ kind: 'model', at: 3000, durationMs: 4000, mode: '429', probability: 0.5 }],
      };
      const good = await simulate(storm, { workload: modelStormWorkload() });
      expect(good.verdicts.find((v) => v.checker === 'agents: retries honour Retry-After')!.verdict).toBe(
        'ok',
      );
      const r = await simulate(storm, { workload: modelStormWorkload({ broken: 'ignore-retry-after' }) });
      const verdict = r.verdicts.find((v) => v.checker === 'agents: retries honour Retry-After')!;
      expect(verdict.verdict).toBe('violated');
      expect(verdict.entries!.length).toBeGreaterThan(0);
    },
    LONG,
  );
});

describe('agents under model storms: budgets that outlive a node', () => {
  /**
   * Boots the workload's agents on one node, as a node process started again does: its book does
   * not know them, and the journal holds what agent-0 spent before (`spentBefore` tokens). Resolves
   * with the code of agent-0's answer to one run (`ok` when it ran).
   */
  async function firstRun(spentBefore: number): Promise<string> {
    const journal = inMemoryJournal();
    if (spentBefore > 0)
      await journal.append('spend-n1-agent-0', [
        { type: 'spent', data: { tokens: spentBefore, costUsd: 0 } },
      ]);
    const system = createSystem({ name: 'c', node: 'n1' });
    try {
      const plan = parsePlan({ ...stormPlan(1), faults: [] });
      const ctx: SimContext = {
        plan,
        random: seededRandom(1),
        clock: realClock,
        history: historyRecorder(() => realClock.now()),
        journal,
        stopped: false,
        pickNode: () => system,
        modelFault: { current: undefined },
        // Only the workload's clients wait or set deadlines, and none runs here.
        sleep: () => Promise.reject(new Error('no client runs in this test')),
        within: (work) => work,
      };
      modelStormWorkload({ agentsPerNode: 1, tokenBudget: 1000 }).boot!(system, journal, ctx);
      const agent = system.ref('troupe://c/n1/agent-0', AgentProtocol);
      // The agent is spawned once its budgets are read back.
      const addresses = (node: { address: string; children: readonly unknown[] }): string[] => [
        node.address,
        ...node.children.flatMap((child) => addresses(child as typeof node)),
      ];
      await vi.waitFor(() => expect(addresses(system.tree())).toContain(agent.address));
      const result = await agent.ask('run', { input: 'task', runId: 'r1' }, { timeoutMs: 10_000 });
      return result.ok ? 'ok' : result.error.code;
    } finally {
      await system.close();
    }
  }

  it("charge a node's fresh book with what its agents spent, so a restarted node keeps their budgets", async () => {
    expect(await firstRun(0)).toBe('ok');
    expect(await firstRun(500)).toBe('ok');
    expect(await firstRun(990)).toBe('ERR_BUDGET_EXCEEDED');
  });
});

describe('the suites from the CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-chaos-suites-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(
    'runs `contract-net` and `model-storm` as built-in workloads, and replays their histories',
    async () => {
      for (const [name, checker] of [
        ['contract-net', 'contract: awarded at most once'],
        ['model-storm', 'agents: no run lost'],
      ] as const) {
        const plan = join(dir, `${name}.json`);
        writeFileSync(
          plan,
          JSON.stringify({
            name,
            seed: 3,
            durationMs: 8000,
            nodes: ['a', 'b', 'c'],
            workload: { name },
            faults: [
              { kind: 'crash-node', at: 2000, durationMs: 1500, node: 'b' },
              { kind: 'model', at: 3000, durationMs: 2000, mode: '500' },
            ],
          }),
        );
        const out: string[] = [];
        const io = { out: (t: string) => void out.push(t), err: () => {} };
        const target = join(dir, name);
        expect(await main(['chaos', 'run', plan, '--simulate', '--out', target], io)).toBe(0);
        expect(out.join('')).toContain(`✓ ${checker}: ok`);
        const again: string[] = [];
        const replay = { out: (t: string) => void again.push(t), err: () => {} };
        expect(await main(['chaos', 'replay', join(target, 'history.json')], replay)).toBe(0);
        expect(again.join('')).toContain(`✓ ${checker}: ok`);
      }
    },
    LONG,
  );
});
