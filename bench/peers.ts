/**
 * The kernel against the strongest peers, side by side in one run: Erlang/OTP (bench/beam-peer.escript,
 * run with `escript` as a peer program: skynet, ring, idle-process memory, spawn time, messages to one
 * process) and xstate v5 (tell to one actor, spawn time and memory per idle actor).
 * Each side's rounds alternate (A B, B A, ...); the ratio is the median of the rounds' ratios.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { assign, createActor, createMachine } from 'xstate';
import { z } from 'zod';
import {
  type ActorRef,
  type ActorSystem,
  type Behavior,
  behavior,
  createSystem,
  defineProtocol,
  tell,
} from '../index.js';
import type { BenchCase, BenchTools } from './remote.js';

const escript = fileURLToPath(new URL('./beam-peer.escript', import.meta.url));

let beamVm: string | undefined;
/** The Erlang peer's VM as the baseline's name: release, schedulers online, emulator flavour. */
function beamLabel(): string {
  beamVm ??= execFileSync('escript', [escript, 'info'], { encoding: 'utf8', timeout: 60_000 }).trim();
  return beamVm;
}

/** One number from the Erlang peer. */
function beam(...args: string[]): number {
  const out = execFileSync('escript', [escript, ...args], { encoding: 'utf8', timeout: 600_000 });
  return Number(out.trim().split('\n').pop());
}

function system(): ActorSystem {
  return createSystem({ devChecks: false, mailbox: { capacity: 1_000_000 }, deadLetterLog: () => {} });
}

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const gc = (globalThis as { gc?: () => void }).gc!;

/** Runs `a` and `b` alternately `rounds` times each (gc before each); their medians and the pairs. */
async function alternate(
  a: () => Promise<number>,
  b: () => Promise<number>,
  rounds: number,
  warmUp = true,
): Promise<[number, number, (readonly [number, number])[]]> {
  if (warmUp) {
    await a();
    await b();
  }
  const xs: number[] = [];
  const ys: number[] = [];
  for (let r = 0; r < rounds; r++) {
    gc();
    if (r % 2 === 0) {
      xs.push(await a());
      gc();
      ys.push(await b());
    } else {
      ys.push(await b());
      gc();
      xs.push(await a());
    }
  }
  const median = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)]!;
  return [median(xs), median(ys), xs.map((x, i) => [x, ys[i]!] as const)];
}

const Sky = defineProtocol('bench.skynet', {
  start: tell(z.object({ num: z.number(), size: z.number() })),
  sum: tell(z.object({ n: z.number() })),
});
/** Where the root's sum goes. */
const skyRoot = { done: (_sum: number) => {} };
/**
 * Skynet: each actor below the leaves spawns ten children and sums their numbers; a leaf answers
 * its number; each actor stops once it has answered (as an Erlang process ends).
 */
const skynode: Behavior<typeof Sky, { sum: number; left: number; root: boolean }> = behavior({
  protocols: [Sky],
  initialState: () => ({ sum: 0, left: 0, root: false }),
  handlers: {
    start: ({ num, size }, ctx) => {
      if (size === 1) {
        ctx.parent!.tell('sum', { n: num });
        void ctx.stop();
        return;
      }
      const child = size / 10;
      ctx.state.left = 10;
      for (let i = 0; i < 10; i++) ctx.spawn(skynode).tell('start', { num: num + i * child, size: child });
    },
    sum: ({ n }, ctx) => {
      ctx.state.sum += n;
      if (--ctx.state.left > 0) return;
      if (ctx.state.root) skyRoot.done(ctx.state.sum);
      else ctx.parent!.tell('sum', { n: ctx.state.sum });
      void ctx.stop();
    },
  },
});
const skyroot = behavior({
  protocols: [Sky],
  initialState: () => ({ sum: 0, left: 0, root: true }),
  handlers: (skynode as unknown as { definition: { handlers: never } }).definition.handlers,
});

const Ring = defineProtocol('bench.ring', {
  next: tell(z.object({ to: z.unknown() })),
  token: tell(z.object({ left: z.number() })),
});
const ringDone = { done: () => {} };
const ringNode = behavior({
  protocols: [Ring],
  initialState: () => ({ next: undefined as ActorRef<typeof Ring> | undefined }),
  handlers: {
    next: ({ to }, ctx) => {
      ctx.state.next = to as ActorRef<typeof Ring>;
    },
    token: ({ left }, ctx) => {
      if (left === 0) ringDone.done();
      else ctx.state.next!.tell('token', { left: left - 1 });
    },
  },
});

const Count = defineProtocol('bench.count', { add: tell(z.object({ n: z.number() })) });
const counted = { seen: 0, target: 0, done: () => {} };
const countActor = behavior({
  protocols: [Count],
  initialState: () => 0,
  handlers: {
    add: (_b, ctx) => {
      ctx.state++;
      if (++counted.seen === counted.target) counted.done();
    },
  },
});

/**
 * Troupe's tell throughput to one actor: `total` messages in chunks of 10,000, each chunk awaited
 * until handled, as the kernel.tell cases send (a producer that yields; one burst of a million would
 * measure a million-deep mailbox instead).
 */
async function troupeTellRate(total: number): Promise<number> {
  const sys = system();
  const ref = sys.spawn(countActor);
  const chunk = 10_000;
  const start = performance.now();
  for (let from = 0; from < total; from += chunk) {
    const count = Math.min(chunk, total - from);
    counted.seen = 0;
    counted.target = count;
    const done = new Promise<void>((resolve) => {
      counted.done = resolve;
    });
    for (let i = from; i < from + count; i++) ref.tell('add', { n: i });
    await done;
  }
  const rate = total / ((performance.now() - start) / 1000);
  await sys.close();
  return rate;
}
const Idle = defineProtocol('bench.idle', { poke: tell(z.object({})) });
const idleActor = behavior({ protocols: [Idle], handlers: { poke: () => {} } });

export function peerCases({ quick, result, heapPerItem }: BenchTools): BenchCase[] {
  const rounds = quick ? 1 : 3;
  return [
    {
      name: 'kernel.skynet.1m',
      unit: 'ms',
      goal: 'ratio >= 1',
      async run() {
        const leaves = quick ? 10_000 : 1_000_000;
        const troupe = async () => {
          const sys = system();
          const start = performance.now();
          const done = new Promise<number>((resolve) => {
            skyRoot.done = resolve;
          });
          sys.spawn(skyroot).tell('start', { num: 0, size: leaves });
          const sum = await done;
          const ms = performance.now() - start;
          if (sum !== (leaves * (leaves - 1)) / 2) throw new Error(`skynet summed ${sum}`);
          await sys.close();
          return ms;
        };
        const [t, b, pairs] = await alternate(
          troupe,
          async () => beam('skynet', String(leaves)),
          rounds,
          !quick,
        );
        return result(this.name, this.unit, t, beamLabel(), b, false, pairs, this.goal, (r) => r.ratio >= 1);
      },
    },
    {
      name: 'kernel.ring.10k',
      unit: 'passes/s',
      goal: 'ratio >= 1',
      async run() {
        const n = 10_000;
        const passes = quick ? 100_000 : 1_000_000;
        const troupe = async () => {
          const sys = system();
          const nodes = Array.from({ length: n }, () => sys.spawn(ringNode));
          for (let i = 0; i < n; i++) nodes[i]!.tell('next', { to: nodes[(i + 1) % n] });
          await yieldTurn();
          const done = new Promise<void>((resolve) => {
            ringDone.done = resolve;
          });
          const start = performance.now();
          nodes[0]!.tell('token', { left: passes });
          await done;
          const rate = passes / ((performance.now() - start) / 1000);
          await sys.close();
          return rate;
        };
        const [t, b, pairs] = await alternate(
          troupe,
          async () => beam('ring', String(n), String(passes)),
          rounds,
          !quick,
        );
        return result(this.name, this.unit, t, beamLabel(), b, true, pairs, this.goal, (r) => r.ratio >= 1);
      },
    },
    {
      name: 'kernel.spawn.heap.vs-beam',
      unit: 'bytes/actor',
      goal: 'ratio >= 5',
      async run() {
        const n = quick ? 10_000 : 100_000;
        const troupe = () =>
          heapPerItem(n, () => {
            const sys = system();
            const refs: unknown[] = [];
            for (let i = 0; i < n; i++) refs.push(sys.spawn(idleActor));
            return { refs, teardown: () => sys.close() };
          });
        const [t, b, pairs] = await alternate(
          troupe,
          async () => beam('spawn-heap', String(n)),
          rounds,
          !quick,
        );
        return result(this.name, this.unit, t, beamLabel(), b, false, pairs, this.goal, (r) => r.ratio >= 5);
      },
    },
    {
      name: 'kernel.spawn.time.vs-beam',
      unit: 'us/actor',
      goal: 'reported',
      async run() {
        const n = quick ? 10_000 : 100_000;
        const troupe = async () => {
          const sys = system();
          const start = performance.now();
          for (let i = 0; i < n; i++) sys.spawn(idleActor);
          const us = ((performance.now() - start) * 1000) / n;
          await sys.close();
          return us;
        };
        const [t, b, pairs] = await alternate(
          troupe,
          async () => beam('spawn-time', String(n)),
          rounds,
          !quick,
        );
        return result(this.name, this.unit, t, beamLabel(), b, false, pairs, this.goal, () => true);
      },
    },
    {
      name: 'kernel.tell.vs-beam',
      unit: 'msg/s',
      goal: 'reported',
      async run() {
        const total = quick ? 100_000 : 1_000_000;
        const troupe = () => troupeTellRate(total);
        const [t, b, pairs] = await alternate(
          troupe,
          async () => beam('tell', String(total)),
          rounds,
          !quick,
        );
        return result(this.name, this.unit, t, beamLabel(), b, true, pairs, this.goal, () => true);
      },
    },
    ...xstateCases(quick, rounds, result, heapPerItem),
  ];
}

const xCounter = createMachine({
  context: { count: 0 },
  on: { add: { actions: assign({ count: ({ context }) => context.count + 1 }) } },
});
const xIdle = createMachine({ on: { poke: {} } });

function xstateCases(
  quick: boolean,
  rounds: number,
  result: BenchTools['result'],
  heapPerItem: BenchTools['heapPerItem'],
): BenchCase[] {
  return [
    {
      name: 'kernel.tell.vs-xstate',
      unit: 'msg/s',
      goal: 'ratio >= 10',
      async run() {
        const total = quick ? 100_000 : 1_000_000;
        const troupe = () => troupeTellRate(total);
        const xstate = async () => {
          const actor = createActor(xCounter).start();
          const n = total / 10;
          const start = performance.now();
          // xstate handles each event inside send(), so the count is done when the loop is.
          for (let i = 0; i < n; i++) actor.send({ type: 'add' });
          const rate = n / ((performance.now() - start) / 1000);
          if (actor.getSnapshot().context.count !== n) throw new Error('xstate lost events');
          actor.stop();
          return rate;
        };
        const [t, b, pairs] = await alternate(troupe, xstate, rounds, !quick);
        return result(this.name, this.unit, t, 'xstate v5', b, true, pairs, this.goal, (r) => r.ratio >= 10);
      },
    },
    {
      name: 'kernel.spawn.time.vs-xstate',
      unit: 'us/actor',
      goal: 'reported',
      async run() {
        const n = quick ? 10_000 : 100_000;
        const troupe = async () => {
          const sys = system();
          const start = performance.now();
          for (let i = 0; i < n; i++) sys.spawn(idleActor);
          const us = ((performance.now() - start) * 1000) / n;
          await sys.close();
          return us;
        };
        const xstate = async () => {
          const start = performance.now();
          const actors = Array.from({ length: n }, () => createActor(xIdle).start());
          const us = ((performance.now() - start) * 1000) / n;
          for (const a of actors) a.stop();
          return us;
        };
        const [t, b, pairs] = await alternate(troupe, xstate, rounds, !quick);
        return result(this.name, this.unit, t, 'xstate v5', b, false, pairs, this.goal, () => true);
      },
    },
    {
      name: 'kernel.spawn.heap.vs-xstate',
      unit: 'bytes/actor',
      goal: 'reported',
      async run() {
        const n = quick ? 10_000 : 100_000;
        const troupe = () =>
          heapPerItem(n, () => {
            const sys = system();
            const refs: unknown[] = [];
            for (let i = 0; i < n; i++) refs.push(sys.spawn(idleActor));
            return { refs, teardown: () => sys.close() };
          });
        const xstate = () =>
          heapPerItem(n, () => {
            const refs = Array.from({ length: n }, () => createActor(xIdle).start());
            return {
              refs,
              teardown: async () => {
                for (const a of refs) a.stop();
              },
            };
          });
        const [t, b, pairs] = await alternate(troupe, xstate, rounds, !quick);
        return result(this.name, this.unit, t, 'xstate v5', b, false, pairs, this.goal, () => true);
      },
    },
  ];
}
