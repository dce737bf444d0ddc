/**
 * Guard and agent cases: the cost a guard adds to a call, the heap of idle agents next to nact
 * actors holding the same state, and agent runs on the scripted model next to the same model calls
 * made directly.
 */
import { createRequire } from 'node:module';
import { z } from 'zod';
import {
  type ActorRef,
  type AgentProtocol,
  agent,
  createSystem,
  guard,
  type ModelRequest,
  scriptedModel,
  tool,
} from '../index.js';
import type { BenchCase, BenchTools } from './remote.js';

const require = createRequire(import.meta.url);
const nact = require('nact') as {
  start(): unknown;
  spawn(parent: unknown, f: (state: any, msg: any) => any, name?: string, options?: object): unknown;
  stop(ref: unknown): void;
};

export function agentCases(tools: BenchTools): BenchCase[] {
  const { quick } = tools;
  const rounds = quick ? 1 : 10;
  return [
    {
      name: 'guards.overhead',
      unit: 'us added/call',
      goal: 'troupe <= 2',
      async run() {
        const calls = quick ? 20_000 : 200_000;
        const noop = async () => 1;
        // A breaker, a bulkhead and retries, as a provider's guard has them (no deadline timer).
        const g = guard({
          name: 'bench',
          bulkhead: { maxConcurrent: 64, maxQueue: 64 },
          retry: { attempts: 3 },
        });
        const perCall = (call: () => Promise<number>) => async () => {
          const start = performance.now();
          for (let i = 0; i < calls; i++) await call();
          return ((performance.now() - start) * 1000) / calls;
        };
        const guarded = perCall(() => g.call(noop));
        const raw = perCall(noop);
        const [, b, pairs] = await tools.sideBySide(guarded, raw, rounds);
        g.breaker?.close();
        // What the guard adds: per block, guarded minus raw, then the median.
        const added = pairs.map(([x, y]) => x - y).sort((p, q) => p - q)[Math.floor(pairs.length / 2)]!;
        return tools.result(
          this.name,
          this.unit,
          added,
          'raw call',
          b,
          false,
          pairs,
          this.goal,
          () => added <= 2,
        );
      },
    },
    {
      name: 'agents.idle.heap',
      unit: 'bytes/agent',
      goal: 'troupe <= 5000',
      async run() {
        const n = quick ? 10_000 : 100_000;
        const model = scriptedModel({ steps: ['ok'] });
        const idle = agent({ model, capabilities: { chat: 1 } });
        let names = 0;
        const [t, b, pairs] = await tools.sideBySide(
          () =>
            tools.heapPerItem(n, () => {
              const system = createSystem({
                name: 'bench-agents',
                devChecks: false,
                deadLetterLog: () => {},
              });
              const refs: ActorRef<typeof AgentProtocol>[] = [];
              for (let i = 0; i < n; i++) refs.push(system.spawn(idle));
              return { refs, teardown: () => system.close() };
            }),
          () =>
            tools.heapPerItem(n, () => {
              const nsys = nact.start();
              const refs: unknown[] = [];
              // The state an idle agent holds: an empty conversation and its counters.
              for (let i = 0; i < n; i++) {
                refs.push(
                  nact.spawn(nsys, (state: object) => state, `agent${names++}`, {
                    initialState: { messages: [], runs: 0, version: 0, stream: undefined, fence: undefined },
                  }),
                );
              }
              return { refs, teardown: async () => nact.stop(nsys) };
            }),
          quick ? 1 : 2,
        );
        return tools.result(
          this.name,
          this.unit,
          t,
          'nact actor, same state',
          b,
          false,
          pairs,
          this.goal,
          (r) => r.troupe <= 5000,
        );
      },
    },
    {
      name: 'agents.scripted.throughput',
      unit: 'runs/s',
      goal: 'reported',
      async run() {
        const agents = 1000;
        const perAgent = quick ? 2 : 10;
        // A run of two model calls with one tool call between them.
        const model = scriptedModel({
          steps: [{ toolCalls: [{ name: 'lookup', arguments: { key: 'k' } }] }, 'done'],
        });
        const lookup = tool({
          name: 'lookup',
          description: 'Looks a key up',
          input: z.object({ key: z.string() }),
          idempotent: true,
          run: ({ key }) => key,
        });
        const system = createSystem({ name: 'bench-scripted', devChecks: false, deadLetterLog: () => {} });
        // Each run starts afresh (maxHistory 0), as the direct calls do: the rate stays the same from
        // round to round instead of falling as conversations grow.
        const refs = Array.from({ length: agents }, () =>
          system.spawn(agent({ model, tools: [lookup], maxHistory: 0 })),
        );
        const troupe = async () => {
          const start = performance.now();
          await Promise.all(
            refs.map(async (r) => {
              for (let k = 0; k < perAgent; k++) {
                const outcome = await r.ask('run', { input: 'go' });
                if (!outcome.ok) throw new Error(outcome.error.message);
              }
            }),
          );
          return (agents * perAgent) / ((performance.now() - start) / 1000);
        };
        // The same two model calls per run, made directly, 1,000 at a time.
        const direct = async () => {
          const start = performance.now();
          await Promise.all(
            Array.from({ length: agents }, async () => {
              for (let k = 0; k < perAgent; k++) {
                const messages: ModelRequest['messages'][number][] = [{ role: 'user', content: 'go' }];
                const first = await model.complete({ messages });
                messages.push({ role: 'assistant', content: first.text, toolCalls: first.toolCalls });
                messages.push({
                  role: 'tool',
                  toolCallId: first.toolCalls[0]!.id,
                  name: 'lookup',
                  content: 'k',
                });
                await model.complete({ messages });
              }
            }),
          );
          return (agents * perAgent) / ((performance.now() - start) / 1000);
        };
        const [t, b, pairs] = await tools.sideBySide(troupe, direct, rounds, false);
        await system.close();
        return tools.result(
          this.name,
          this.unit,
          t,
          'scripted model called directly',
          b,
          true,
          pairs,
          this.goal,
          () => true,
        );
      },
    },
  ];
}
