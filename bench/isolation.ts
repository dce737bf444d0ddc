/**
 * The isolation cases: tell throughput to an actor in a worker thread against raw
 * `MessagePort.postMessage` of the same messages, restart latency onto a spare host, and a pool of
 * two workers against the main thread on a CPU-bound handler.
 */
import { Worker } from 'node:worker_threads';
import {
  type ActorRef,
  type ActorSystem,
  createSystem,
  isolated,
  isolationPool,
  TroupeError,
} from '../index.js';
import { sparesReady } from '../runtime/isolation/link.js';
import type { ActorSystemImpl } from '../runtime/kernel/system.js';
import { Work, worker as workerBehavior } from './isolation-actor.js';
import type { BenchCase, BenchTools } from './remote.js';

const module = new URL('./isolation-actor.ts', import.meta.url);
const spec = {
  protocols: [Work],
  module,
  export: 'worker',
  spawn: { mailbox: { capacity: 1_000_000 } },
} as const;

function system(): ActorSystem {
  return createSystem({ devChecks: false, mailbox: { capacity: 1_000_000 }, deadLetterLog: () => {} });
}

/** A raw worker that counts `{ n }` messages and answers `{ get: true }` with the count. */
const RAW_WORKER = `
const { parentPort } = require('node:worker_threads');
let count = 0;
parentPort.on('message', (m) => {
  if (m.get === true) parentPort.postMessage(count);
  else count += 1;
});
`;

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export function isolationCases({ quick, sideBySide, result }: BenchTools): BenchCase[] {
  return [
    {
      name: 'isolation.tell',
      unit: 'msg/s',
      goal: 'ratio >= 0.8',
      async run() {
        const total = quick ? 50_000 : 500_000;
        const chunk = 10_000;
        const sys = system();
        const ref = sys.spawn(isolated(spec, { standby: false, startTimeoutMs: 120_000 }), {
          name: 'counter',
          mailbox: { capacity: 1_000_000 },
        });
        await ref.ask('get', {}, { timeoutMs: 120_000 });
        const raw = new Worker(RAW_WORKER, { eval: true });
        const rawGet = () =>
          new Promise<number>((resolve) => {
            raw.once('message', resolve);
            raw.postMessage({ get: true });
          });
        await rawGet();
        const [t, b, pairs] = await sideBySide(
          async () => {
            const start = performance.now();
            for (let sent = 0; sent < total; sent += chunk) {
              for (let i = sent; i < sent + chunk; i++) ref.tell('add', { n: i });
              await ref.ask('get', {});
            }
            return total / ((performance.now() - start) / 1000);
          },
          async () => {
            const start = performance.now();
            for (let sent = 0; sent < total; sent += chunk) {
              for (let i = sent; i < sent + chunk; i++) raw.postMessage({ n: i });
              await rawGet();
            }
            return total / ((performance.now() - start) / 1000);
          },
        );
        await raw.terminate();
        await sys.close();
        return result(
          this.name,
          this.unit,
          t,
          'raw postMessage',
          b,
          true,
          pairs,
          this.goal,
          (r) => r.ratio >= 0.8,
        );
      },
    },
    {
      name: 'isolation.restart.latency',
      unit: 'ms',
      goal: 'troupe <= 100',
      async run() {
        const rounds = quick ? 1 : 5;
        const sys = system();
        const ref = sys.spawn(isolated(spec, { standby: true, startTimeoutMs: 120_000 }), {
          name: 'restarting',
        });
        await ref.ask('get', {}, { timeoutMs: 120_000 });
        /** From the kill to the restarted actor's answer, onto a spare host. */
        const restart = async (target: ActorRef<typeof Work>) => {
          await sparesReady(sys as unknown as ActorSystemImpl);
          const start = performance.now();
          target.tell('die', {});
          for (;;) {
            try {
              await target.ask('get', {}, { timeoutMs: 120_000 });
              return performance.now() - start;
            } catch (error) {
              if (!TroupeError.is(error, 'ERR_HOST_CRASHED')) throw error;
            }
          }
        };
        const times: number[] = [];
        for (let r = 0; r < rounds; r++) times.push(await restart(ref));
        // The baseline: the same restart with no spare, so a host starts from nothing.
        const cold = sys.spawn(isolated(spec, { standby: false, startTimeoutMs: 120_000 }), { name: 'cold' });
        await cold.ask('get', {}, { timeoutMs: 120_000 });
        const coldTime = await restart(cold);
        await sys.close();
        const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
        return result(
          this.name,
          this.unit,
          median,
          'restart without a spare',
          coldTime,
          false,
          [[median, coldTime]],
          this.goal,
          (r) => r.troupe <= 100,
        );
      },
    },
    {
      name: 'isolation.cpu-scale',
      unit: 'runs/s',
      goal: 'ratio >= 1.7',
      async run() {
        const runs = quick ? 16 : 64;
        const n = 27;
        const sys = system();
        const pool = await isolationPool(sys, spec, {
          name: 'pool',
          hosts: 2,
          standby: false,
          startTimeoutMs: 120_000,
          cpuBudgetMs: 60_000,
        });
        const local = sys.spawn(workerBehavior, { name: 'local' });
        const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
        for (const key of keys) await pool.actor(key).ask('fib', { n: 10 }, { timeoutMs: 60_000 });
        const [t, b, pairs] = await sideBySide(
          async () => {
            const start = performance.now();
            await Promise.all(
              Array.from({ length: runs }, (_, i) =>
                pool.actor(keys[i % keys.length]!).ask('fib', { n }, { timeoutMs: 120_000 }),
              ),
            );
            return runs / ((performance.now() - start) / 1000);
          },
          async () => {
            const start = performance.now();
            await Promise.all(
              Array.from({ length: runs }, () => local.ask('fib', { n }, { timeoutMs: 120_000 })),
            );
            await yieldTurn();
            return runs / ((performance.now() - start) / 1000);
          },
          quick ? 1 : 4,
        );
        await sys.close();
        return result(
          this.name,
          this.unit,
          t,
          'main thread',
          b,
          true,
          pairs,
          this.goal,
          (r) => r.ratio >= 1.7,
        );
      },
    },
  ];
}
