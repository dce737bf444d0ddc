/**
 * Chaos testing:
 * - `chaos.sim.speed`: simulated seconds per wall-clock second of a 5-node cluster in simulation
 *   (registers on named persistent actors, 5 clients, 10 random faults: partitions, kills, pauses,
 *   network loss and delay, clock skew) next to real time (1 s/s). Goal: >= 100.
 * - `chaos.check.linearizability`: ms to check a 5,000-operation history of one register written
 *   and read by 5 concurrent clients. Reported.
 */
import {
  type History,
  historyRecorder,
  linearizable,
  registerWorkload,
  simulate,
} from '../ops/chaos/index.js';
import { seededRandom } from '../runtime/index.js';
import type { BenchCase, BenchTools } from './remote.js';

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** A history of an atomic register: each operation takes effect at a random tick inside its span. */
export function registerHistory(ops: number, clients: number, seed: number): History {
  const random = seededRandom(seed);
  let time = 0;
  const rec = historyRecorder(() => time);
  let value: number | null = null;
  interface Flight {
    readonly at: number;
    readonly end: number;
    readonly apply: () => unknown;
    readonly complete: (result: unknown) => void;
    applied: boolean;
    result: unknown;
  }
  const flight = new Map<number, Flight>();
  let issued = 0;
  while (issued < ops || flight.size > 0) {
    time++;
    for (let c = 0; c < clients; c++) {
      const f = flight.get(c);
      if (f === undefined) {
        if (issued >= ops) continue;
        issued++;
        const at = time + 1 + Math.floor(random() * 3);
        const end = at + Math.floor(random() * 3);
        if (random() < 0.5) {
          const v = issued;
          const h = rec.invoke(c, 'write', v, { key: 'r' });
          const apply = () => {
            value = v;
            return undefined;
          };
          flight.set(c, { at, end, apply, complete: () => h.ok(), applied: false, result: undefined });
        } else {
          const h = rec.invoke(c, 'read', null, { key: 'r' });
          flight.set(c, {
            at,
            end,
            apply: () => value,
            complete: (r) => h.ok(r),
            applied: false,
            result: undefined,
          });
        }
        continue;
      }
      if (!f.applied && time >= f.at) {
        f.applied = true;
        f.result = f.apply();
      }
      if (f.applied && time >= f.end) {
        f.complete(f.result);
        flight.delete(c);
      }
    }
  }
  return { seed, plan: 'bench', nodes: ['n1'], durationMs: time, ops: rec.ops, log: [] };
}

export function chaosCases(tools: BenchTools): BenchCase[] {
  const { quick } = tools;
  return [
    {
      name: 'chaos.sim.speed',
      unit: 'simulated s per wall s',
      goal: 'troupe >= 100',
      async run() {
        const rounds = quick ? 1 : 5;
        const durationMs = quick ? 10_000 : 60_000;
        const speeds: number[] = [];
        for (let i = 0; i < rounds + 1; i++) {
          const result = await simulate(
            {
              name: 'bench',
              seed: 100 + i,
              durationMs,
              nodes: ['n1', 'n2', 'n3', 'n4', 'n5'],
              workload: { name: 'register' },
              faults: {
                count: 10,
                kinds: ['partition', 'crash-node', 'pause-node', 'network', 'clock-skew'],
              },
            },
            { workload: registerWorkload() },
          );
          // The first round warms up (compilation); it is not counted.
          if (i > 0) speeds.push(result.stats.simulatedMs / result.stats.wallMs);
        }
        const troupe = median(speeds);
        return {
          case: 'chaos.sim.speed',
          unit: 'simulated s per wall s',
          troupe,
          baseline: 'real time',
          baselineValue: 1,
          ratio: troupe,
          goal: 'troupe >= 100',
          pass: troupe >= 100,
        };
      },
    },
    {
      name: 'chaos.check.linearizability',
      unit: 'ms for 5,000 ops',
      goal: 'reported',
      async run() {
        const history = registerHistory(5000, 5, 42);
        const checker = linearizable();
        const times: number[] = [];
        for (let i = 0; i < (quick ? 2 : 7); i++) {
          const start = performance.now();
          const verdict = checker.check(history);
          times.push(performance.now() - start);
          if (verdict.verdict !== 'ok') throw new Error(`bench history not linearizable: ${verdict.message}`);
        }
        const troupe = median(times.slice(1));
        return {
          case: 'chaos.check.linearizability',
          unit: 'ms for 5,000 ops',
          troupe,
          baseline: 'reported',
          baselineValue: troupe,
          ratio: 1,
          goal: 'reported',
          pass: true,
        };
      },
    },
  ];
}
