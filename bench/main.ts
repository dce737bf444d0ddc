/*
 * Troupe's benchmarks, side by side with the peer (nact) in one process, on the same workloads.
 *
 *   npm run bench                      a table
 *   npm run bench -- --json            one JSON object per line
 *   npm run bench -- --case ask        only cases whose name contains "ask"
 *   npm run bench -- --quick           few rounds (used by the smoke test)
 *
 * `ratio` > 1 always means Troupe is better: throughput troupe/baseline, time and memory baseline/troupe.
 * Troupe runs in its production configuration (`devChecks: false`: the plain-data check is a development
 * aid) with mailboxes large enough for each workload (capacity 1,000,000; the default 10,000 would reject
 * sends in the larger bursts); nact's are unbounded. Both sides get the same workload: the same messages,
 * the same state (the number 0), the same burst size; nact, being much slower, gets fewer bursts.
 * Each case warms up, then interleaves rounds of both sides (gc before each); it reports each side's
 * median and, as the ratio, the median of the ratios of blocks of rounds run next to each other
 * (A B | B A, so neither side gains from following itself).
 */

import { createRequire } from 'node:module';
import { z } from 'zod';
import {
  type ActorRef,
  type ActorSystem,
  ask,
  behavior,
  createSystem,
  defineProtocol,
  type SystemOptions,
  tell,
} from '../index.js';
import type { BenchTools, BenchCase as Case, BenchResult as Result } from './remote.js';

const require = createRequire(import.meta.url);
const nact = require('nact') as {
  start(): unknown;
  spawn(
    parent: unknown,
    f: (state: any, msg: any, ctx: any) => any,
    name?: string,
    options?: object,
  ): unknown;
  dispatch(ref: unknown, msg: unknown): void;
  query(ref: unknown, msg: (tempRef: unknown) => unknown, timeout: number): Promise<unknown>;
  stop(ref: unknown): void;
};

const args = process.argv.slice(2);
const json = args.includes('--json');
const quick = args.includes('--quick');
const caseAt = args.indexOf('--case');
const only = caseAt < 0 ? undefined : args[caseAt + 1];
if (caseAt >= 0 && (only === undefined || only.startsWith('--'))) {
  console.error('usage: bench/main.ts [--json] [--quick] [--case <substring>]');
  process.exit(2);
}
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench does)');

const Load = defineProtocol('bench.load', {
  add: tell(z.object({ n: z.number() })),
  crash: tell(z.object({})),
  get: ask(z.object({}), z.number()),
});

/**
 * A counter that resolves `done` when it has seen `target` messages (set per round). Its state is a
 * number, like nact's counter below, so both sides hold the same state.
 */
const meter = { seen: 0, target: 0, done: () => {} };
const counter = behavior({
  protocols: [Load],
  initialState: () => 0,
  handlers: {
    add: (_body, ctx) => {
      ctx.state++;
      if (++meter.seen === meter.target) meter.done();
    },
    crash: () => {
      throw new Error('injected');
    },
    get: (_body, ctx) => ctx.state,
  },
});

/**
 * A Troupe system in its production configuration. `devChecks: false`: the plain-data check of every
 * message body is a development aid (on by default unless NODE_ENV is production), not part of the
 * runtime's cost in production. The mailbox holds the largest chunk any case sends at once.
 */
function troupeSystem(options: SystemOptions = {}): ActorSystem {
  return createSystem({
    devChecks: false,
    mailbox: { capacity: 1_000_000 },
    deadLetterLog: () => {},
    ...options,
  });
}

function expect(target: number): Promise<void> {
  meter.seen = 0;
  meter.target = target;
  return new Promise((resolve) => {
    meter.done = resolve;
  });
}

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const heapPerItem: BenchTools['heapPerItem'] = async (n, spawnAll) => {
  for (let i = 0; i < 3; i++) gc!();
  const before = process.memoryUsage().heapUsed;
  const { refs, teardown } = spawnAll();
  // What started asynchronously (a preStart) has done so.
  for (let i = 0; i < 3; i++) await yieldTurn();
  for (let i = 0; i < 3; i++) gc!();
  const bytes = (process.memoryUsage().heapUsed - before) / n;
  if (refs.length !== n) throw new Error('lost refs');
  await teardown();
  await yieldTurn();
  return bytes;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// An even number: rounds pair up in blocks (see sideBySide).
const rounds = quick ? 1 : 10;

/**
 * Sends `total` messages in chunks, waiting for each chunk to be handled; returns msg/s, timed until the
 * last message is handled. Both sides use the same chunk size, so both queue the same backlog (a deeper
 * queue means more live messages for the GC to trace and copy); nact gets fewer chunks.
 * `sendChunk(from, count)` holds the send loop itself, so each side's loop is compiled for its own
 * send call (a per-message callback here would be one megamorphic call site shared by every case).
 */
async function throughput(
  total: number,
  chunk: number,
  sendChunk: (from: number, count: number) => void,
): Promise<number> {
  const start = performance.now();
  for (let sent = 0; sent < total; sent += chunk) {
    const n = Math.min(chunk, total - sent);
    const done = expect(n);
    sendChunk(sent, n);
    await done;
  }
  return total / ((performance.now() - start) / 1000);
}

/**
 * Runs `a` and `b` in alternation, after warming both up, with the one that goes first alternating and
 * a full GC before every round; returns their medians and the pairs to compare.
 *
 * The order alternates in blocks A B | B A, so a side runs once after itself (warm caches) and once
 * after the other side in each block; a pair is a block's two rounds averaged per side. Pairing single
 * rounds instead would favour whichever side follows itself in more rounds (seen here: nact at 1.5M
 * msg/s after its own round and 1.1M after Troupe's in the 10,000-actor case).
 * `forceGc: false` skips the full GC before each round (see the journal cases).
 */
async function sideBySide(
  a: () => Promise<number>,
  b: () => Promise<number>,
  n = rounds,
  forceGc = true,
): Promise<[number, number, (readonly [number, number])[]]> {
  const collect = forceGc ? gc! : () => {};
  for (let w = 0; w < (quick ? 1 : 2); w++) {
    await a();
    await b();
  }
  const xs: number[] = [];
  const ys: number[] = [];
  for (let r = 0; r < n; r++) {
    const [first, second, firstOut, secondOut] = r % 2 === 0 ? [a, b, xs, ys] : [b, a, ys, xs];
    collect();
    firstOut.push(await first());
    collect();
    secondOut.push(await second());
  }
  const pairs: (readonly [number, number])[] = [];
  for (let i = 0; i + 1 < n; i += 2) pairs.push([(xs[i]! + xs[i + 1]!) / 2, (ys[i]! + ys[i + 1]!) / 2]);
  if (pairs.length === 0) pairs.push([xs[0]!, ys[0]!]);
  return [median(xs), median(ys), pairs];
}

// ---- nact workloads ----

// nact names anonymous actors with random integers, which collide at tens of thousands: name them.
let nactNames = 0;
// Like Troupe's counter: state 0 from the start, `{ n }` counts, `{ sender }` (a query's temporary
// ref) gets the count back.
function nactCounter(parent: unknown, name = `a${nactNames++}`): unknown {
  return nact.spawn(
    parent,
    (state: number, msg: { n?: number; sender?: unknown; crash?: boolean }) => {
      if (msg.crash) throw new Error('injected');
      if (msg.sender !== undefined) {
        nact.dispatch(msg.sender, state);
        return state;
      }
      if (++meter.seen === meter.target) meter.done();
      return state + 1;
    },
    name,
    { initialState: 0 },
  );
}

// ---- cases ----

/** A case's result from its rounds; the signature is the one `BenchTools` gives every case module. */
const result: BenchTools['result'] = (
  name,
  unit,
  troupe,
  baseline,
  baselineValue,
  higherIsBetter,
  pairs,
  goal,
  pass,
) => {
  // The ratio is the median of the blocks' ratios: Troupe's rounds and the baseline's run next
  // to it see the same machine, so drift in the machine's speed cancels out.
  const ratio = median(pairs.map(([t, b]) => (higherIsBetter ? t / b : b / t)));
  return { case: name, unit, troupe, baseline, baselineValue, ratio, goal, pass: pass({ troupe, ratio }) };
};

const cases: Case[] = [
  {
    name: 'kernel.tell.1-actor',
    unit: 'msg/s',
    goal: 'ratio >= 20',
    async run() {
      const system = troupeSystem();
      const ref = system.spawn(counter);
      const nsys = nact.start();
      const nref = nactCounter(nsys);
      const [t, b, pairs] = await sideBySide(
        () =>
          throughput(quick ? 100_000 : 1_000_000, 10_000, (from, count) => {
            for (let i = from; i < from + count; i++) ref.tell('add', { n: i });
          }),
        () =>
          throughput(quick ? 20_000 : 100_000, 10_000, (from, count) => {
            for (let i = from; i < from + count; i++) nact.dispatch(nref, { n: i });
          }),
      );
      await system.close();
      nact.stop(nsys);
      return result(this.name, this.unit, t, 'nact', b, true, pairs, this.goal, (r) => r.ratio >= 20);
    },
  },
  {
    name: 'kernel.tell.10k-actors',
    unit: 'msg/s',
    goal: 'ratio >= 20',
    async run() {
      const n = 10_000;
      const system = troupeSystem();
      const refs = Array.from({ length: n }, () => system.spawn(counter));
      const nsys = nact.start();
      const nrefs = Array.from({ length: n }, () => nactCounter(nsys));
      // Rounds of about the same length on both sides (~80 ms here): the gc before each round leaves
      // 10,000 actors' worth of memory cold, which a short round would weigh more than a long one.
      const [t, b, pairs] = await sideBySide(
        () =>
          throughput(quick ? 100_000 : 3_000_000, 20_000, (from, count) => {
            for (let i = from; i < from + count; i++) refs[i % n]!.tell('add', { n: i });
          }),
        () =>
          throughput(quick ? 20_000 : 100_000, 20_000, (from, count) => {
            for (let i = from; i < from + count; i++) nact.dispatch(nrefs[i % n], { n: i });
          }),
      );
      await system.close();
      nact.stop(nsys);
      return result(this.name, this.unit, t, 'nact', b, true, pairs, this.goal, (r) => r.ratio >= 20);
    },
  },
  {
    name: 'kernel.tell.10k-children',
    unit: 'msg/s',
    goal: 'ratio >= 1000',
    async run() {
      const n = 10_000;
      const Parent = defineProtocol('bench.parent', { add: tell(z.object({ n: z.number() })) });
      const parentBehavior = behavior({
        protocols: [Parent],
        handlers: {
          add: () => {
            if (++meter.seen === meter.target) meter.done();
          },
        },
        preStart: (ctx) => {
          for (let i = 0; i < n; i++) ctx.spawn(counter);
        },
      });
      const system = troupeSystem();
      const parent = system.spawn(parentBehavior);
      const nsys = nact.start();
      const nparent = nact.spawn(
        nsys,
        (
          state = 0,
          msg: { spawn?: boolean; count?: boolean },
          ctx: { self: unknown; sender: unknown; children: Map<string, unknown> },
        ) => {
          if (msg.spawn) {
            for (let i = 0; i < n; i++) nactCounter(ctx.self);
            meter.done();
            return state;
          }
          if (msg.count) {
            nact.dispatch(ctx.sender, ctx.children.size);
            return state;
          }
          if (++meter.seen === meter.target) meter.done();
          return state + 1;
        },
        'parent',
      );
      const spawned = expect(Number.NaN);
      nact.dispatch(nparent, { spawn: true });
      await spawned;
      // nact copies the parent's children map for every message (about a millisecond each with 10,000
      // children), so it gets far fewer messages, in chunks of 50: a chunk of 10,000 would take seconds.
      const [t, b, pairs] = await sideBySide(
        () =>
          throughput(quick ? 100_000 : 1_000_000, 10_000, (from, count) => {
            for (let i = from; i < from + count; i++) parent.tell('add', { n: i });
          }),
        () =>
          throughput(quick ? 50 : 300, 50, (from, count) => {
            for (let i = from; i < from + count; i++) nact.dispatch(nparent, { n: i });
          }),
      );
      // Both parents really had their 10,000 children while the messages went in.
      const troupeChildren = system.tree().children[0]?.children.length;
      const nactChildren = await nact.query(nparent, () => ({ count: true }), 5000);
      if (troupeChildren !== n || nactChildren !== n) {
        throw new Error(`children: troupe ${troupeChildren}, nact ${String(nactChildren)}; want ${n}`);
      }
      await system.close();
      nact.stop(nsys);
      return result(this.name, this.unit, t, 'nact', b, true, pairs, this.goal, (r) => r.ratio >= 1000);
    },
  },
  {
    name: 'kernel.ask.sequential',
    unit: 'round trips/s',
    goal: 'ratio >= 5',
    async run() {
      const system = troupeSystem();
      const ref = system.spawn(counter);
      const nsys = nact.start();
      const nref = nactCounter(nsys);
      const asks = async (count: number, one: () => Promise<unknown>) => {
        const start = performance.now();
        for (let i = 0; i < count; i++) await one();
        return count / ((performance.now() - start) / 1000);
      };
      const [t, b, pairs] = await sideBySide(
        () => asks(quick ? 20_000 : 200_000, () => ref.ask('get', {})),
        () => asks(quick ? 5_000 : 40_000, () => nact.query(nref, (sender) => ({ sender }), 5000)),
      );
      await system.close();
      nact.stop(nsys);
      return result(this.name, this.unit, t, 'nact', b, true, pairs, this.goal, (r) => r.ratio >= 5);
    },
  },
  {
    name: 'kernel.spawn.time',
    unit: 'us/actor',
    goal: 'ratio >= 3',
    async run() {
      const n = quick ? 5_000 : 50_000;
      // Only the spawning is timed; the teardown is awaited before the next round starts.
      const time = async (spawnAll: () => () => Promise<void>) => {
        const start = performance.now();
        const teardown = spawnAll();
        const us = ((performance.now() - start) * 1000) / n;
        await teardown();
        await yieldTurn();
        return us;
      };
      const [t, b, pairs] = await sideBySide(
        () =>
          time(() => {
            const system = troupeSystem();
            for (let i = 0; i < n; i++) system.spawn(counter);
            return () => system.close();
          }),
        () =>
          time(() => {
            const nsys = nact.start();
            for (let i = 0; i < n; i++) nactCounter(nsys);
            return async () => nact.stop(nsys);
          }),
      );
      return result(this.name, this.unit, t, 'nact', b, false, pairs, this.goal, (r) => r.ratio >= 3);
    },
  },
  {
    name: 'kernel.spawn.heap',
    unit: 'bytes/actor',
    goal: 'troupe <= 600',
    async run() {
      const n = quick ? 10_000 : 100_000;
      const [t, b, pairs] = await sideBySide(
        () =>
          heapPerItem(n, () => {
            const system = troupeSystem();
            const refs: ActorRef<typeof Load>[] = [];
            for (let i = 0; i < n; i++) refs.push(system.spawn(counter));
            return { refs, teardown: () => system.close() };
          }),
        () =>
          heapPerItem(n, () => {
            const nsys = nact.start();
            const refs: unknown[] = [];
            for (let i = 0; i < n; i++) refs.push(nactCounter(nsys));
            return { refs, teardown: async () => nact.stop(nsys) };
          }),
        quick ? 1 : 3,
      );
      return result(this.name, this.unit, t, 'nact', b, false, pairs, this.goal, (r) => r.troupe <= 600);
    },
  },
  {
    name: 'kernel.restart.latency',
    unit: 'us',
    goal: 'ratio >= 1',
    async run() {
      const crashes = quick ? 500 : 5_000;
      // Restart on every crash: the default one_for_one supervision with room for all of them.
      const system = troupeSystem({ supervision: { intensity: 1_000_000, periodMs: 1000 } });
      const ref = system.spawn(counter);
      const nsys = nact.start();
      const nref = nact.spawn(
        nsys,
        (state = 0, msg: { crash?: boolean }) => {
          if (msg.crash) throw new Error('injected');
          // A reset actor starts again from its initial state.
          if (state !== 0) nactNotReset++;
          if (++meter.seen === meter.target) meter.done();
          return state + 1;
        },
        'restarting',
        { onCrash: (_msg: unknown, _err: unknown, ctx: { reset: unknown }) => ctx.reset },
      );
      let troupeCrashes = 0;
      let nactNotReset = 0;
      const latency = async (crashThenCount: () => void) => {
        let total = 0;
        for (let i = 0; i < crashes; i++) {
          const done = expect(1);
          const start = performance.now();
          crashThenCount();
          await done;
          total += performance.now() - start;
        }
        return (total * 1000) / crashes;
      };
      const [t, b, pairs] = await sideBySide(
        () =>
          latency(() => {
            troupeCrashes++;
            ref.tell('crash', {});
            ref.tell('add', { n: 0 });
          }),
        () =>
          latency(() => {
            nact.dispatch(nref, { crash: true });
            nact.dispatch(nref, { n: 0 });
          }),
      );
      // Every crash was followed by a restart with fresh state, on both sides.
      const restarts = system.tree().children[0]?.restarts;
      const state = await ref.ask('get', {});
      if (restarts !== troupeCrashes || state !== 1 || nactNotReset !== 0) {
        throw new Error(
          `restarts: troupe ${restarts} of ${troupeCrashes} (state ${state}), nact ${nactNotReset} not reset`,
        );
      }
      await system.close();
      nact.stop(nsys);
      return result(this.name, this.unit, t, 'nact', b, false, pairs, this.goal, (r) => r.ratio >= 1);
    },
  },
  {
    name: 'kernel.tell.1-actor.observed',
    unit: 'msg/s',
    goal: 'ratio >= 0.95',
    async run() {
      const plain = troupeSystem();
      const observed = troupeSystem();
      let events = 0;
      observed.events$.subscribe(() => events++);
      const a = plain.spawn(counter);
      const b = observed.spawn(counter);
      const total = quick ? 100_000 : 1_000_000;
      // The two sides run the same message path (the subscriber sees no per-message event), so the goal
      // is within noise: many more interleaved rounds than elsewhere, compared by their medians.
      const [t, u, pairs] = await sideBySide(
        () =>
          throughput(total, 10_000, (from, count) => {
            for (let i = from; i < from + count; i++) b.tell('add', { n: i });
          }),
        () =>
          throughput(total, 10_000, (from, count) => {
            for (let i = from; i < from + count; i++) a.tell('add', { n: i });
          }),
        quick ? 1 : 22,
      );
      await plain.close();
      await observed.close();
      if (events === 0) throw new Error('the subscriber saw no event');
      return result(
        this.name,
        this.unit,
        t,
        'troupe-unobserved',
        u,
        true,
        pairs,
        this.goal,
        (r) => r.ratio >= 0.95,
      );
    },
  },
];

function format(value: number): string {
  if (value >= 100_000) return `${(value / 1_000_000).toFixed(2)}M`;
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  return value.toFixed(value < 10 ? 2 : 1);
}

/**
 * The groups of cases, in the order they run. Each group's module is loaded only when one of its cases
 * is about to run, after the groups before it have run: the kernel cases run in a process that has not
 * loaded NestJS, the OpenTelemetry SDK, the chaos simulation or the peers, whose code and heap would
 * otherwise weigh on them (and on nothing the kernel does).
 */
const tearDowns: (() => Promise<void>)[] = [];
const tools = (): BenchTools => ({ quick, sideBySide, result, heapPerItem });
const groups: (() => Promise<Case[]>)[] = [
  async () => cases,
  async () => {
    const m = await import('./remote.js');
    tearDowns.push(m.tearDownRemote);
    return m.remoteCases(tools());
  },
  async () => {
    const m = await import('./journal.js');
    tearDowns.push(m.tearDownJournal);
    return m.journalCases(tools());
  },
  async () => (await import('./agents.js')).agentCases(tools()),
  async () => (await import('./topics.js')).topicCases(tools()),
  async () => (await import('./societies.js')).societyCases(tools()),
  async () => {
    const m = await import('./workflows.js');
    tearDowns.push(m.tearDownWorkflows);
    return m.workflowCases(tools());
  },
  async () => (await import('./nest.js')).nestCases(tools()),
  async () => (await import('./chaos.js')).chaosCases(tools()),
  async () => (await import('./isolation.js')).isolationCases(tools()),
  async () => (await import('./peers.js')).peerCases(tools()),
  async () => (await import('./ops.js')).opsCases(tools()),
  // Last: they install the OpenTelemetry SDK (for their own run only).
  async () => (await import('./telemetry.js')).telemetryCases(tools()),
];

async function main(): Promise<void> {
  const results: Result[] = [];
  const names: string[] = [];
  for (const group of groups) {
    const all = await group();
    names.push(...all.map((c) => c.name));
    for (const c of all.filter((c) => only === undefined || c.name.includes(only))) {
      const r = await c.run();
      results.push(r);
      if (json) console.log(JSON.stringify(r));
    }
  }
  if (results.length === 0) {
    console.error(`bench: no case matches "${only}"; cases: ${names.join(', ')}`);
    process.exit(2);
  }
  if (!json) {
    const rows = [
      ['case', 'unit', 'troupe', 'baseline', 'baseline value', 'ratio', 'goal', 'pass'],
      ...results.map((r) => [
        r.case,
        r.unit,
        format(r.troupe),
        r.baseline,
        format(r.baselineValue),
        `${r.ratio.toFixed(2)}x`,
        r.goal,
        r.pass ? 'yes' : 'NO',
      ]),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    const line = (row: string[]) => `| ${row.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
    console.log(line(rows[0]!));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const row of rows.slice(1)) console.log(line(row));
  }
  const missed = results
    .filter((r) => !r.pass)
    .map((r) => `${r.case} (${r.goal}, got ratio ${r.ratio.toFixed(2)})`);
  if (missed.length > 0) console.error(`bench: goals missed: ${missed.join('; ')}`);
  for (const tearDown of tearDowns) await tearDown();
  process.exit(0);
}

await main();
