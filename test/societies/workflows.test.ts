/**
 * Durable workflows: definitions refused at definition time, DAG features (fan-out, fan-in, a
 * concurrency limit, conditional edges, maps over run-time lists, signals with deadlines, retries,
 * deadlines and guards), steps that ask actors and agents, typed failures, and durability: a crash
 * (an append that fails before or after it commits) resumes from the completed steps on the
 * in-memory journal and on Postgres, and a new system on the same Postgres finishes a workflow
 * whose system was closed in the middle of a step.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  AgentProtocol,
  agent,
  agentStep,
  ask,
  askStep,
  behavior,
  createSystem,
  defineProtocol,
  exponential,
  guard,
  inMemoryJournal,
  type Journal,
  type KindOptions,
  type StepDefinition,
  type SystemEvent,
  scriptedModel,
  TroupeError,
  type Workflow,
  workflow,
  workflowEngine,
} from '../../index.js';
import { postgresJournals } from '../memory/postgres-journals.js';
import { crashingJournal } from './workflow-check.js';

const systems: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.splice(0).map((s) => s.close()));
});

/** A single-node system hosting `kind` as `workflow`, its events collected. */
function host(kind: KindOptions, events?: SystemEvent[]): ActorSystem {
  const system = createSystem({ kinds: { workflow: kind }, deadLetterLog: () => {} });
  systems.push(system);
  if (events !== undefined) system.events$.subscribe((e) => events.push(e));
  return system;
}

const fast = { outageBackoff: exponential({ baseMs: 1, maxMs: 5 }) };

function invalid(define: () => unknown): TroupeError {
  try {
    define();
  } catch (error) {
    expect(TroupeError.is(error, 'ERR_INVALID_OPTION')).toBe(true);
    return error as TroupeError;
  }
  throw new Error('not refused');
}

describe('workflow definitions', () => {
  it('refuses a cycle, an unknown dependency, a duplicate name and a step without work, naming the part', () => {
    expect(
      invalid(() =>
        workflow({
          name: 'cyclic',
          steps: [
            { name: 'a', after: ['c'], run: () => 1 },
            { name: 'b', after: ['a'], run: () => 1 },
            { name: 'c', after: ['b'], run: () => 1 },
            { name: 'd', run: () => 1 },
          ],
        }),
      ).message,
    ).toMatch(/workflow "cyclic"\.steps.*cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)/);
    expect(
      invalid(() => workflow({ name: 'w', steps: [{ name: 'a', after: ['nope'], run: () => 1 }] })).message,
    ).toMatch(/step "a"\.after.*unknown step "nope"/);
    expect(
      invalid(() =>
        workflow({
          name: 'w',
          steps: [
            { name: 'a', run: () => 1 },
            { name: 'a', run: () => 2 },
          ],
        }),
      ).message,
    ).toMatch(/step "a".*duplicate/);
    expect(invalid(() => workflow({ name: 'w', steps: [{ name: 'a' } as StepDefinition] })).message).toMatch(
      /step "a".*exactly one of run, map or signal/,
    );
    expect(invalid(() => workflow({ name: 'w', steps: [] })).message).toMatch(/workflow "w"\.steps/);
    expect(
      invalid(() => workflow({ name: 'w', steps: [{ name: 'a', signal: { timeoutMs: 0 } }] })).message,
    ).toMatch(/step "a"\.signal\.timeoutMs/);
    expect(
      invalid(() => workflow({ name: 'w', concurrency: 0, steps: [{ name: 'a', run: () => 1 }] })).message,
    ).toMatch(/workflow "w"\.concurrency/);
  });

  it('refuses an engine given two definitions of one name', () => {
    const a = workflow({ name: 'same', steps: [{ name: 'a', run: () => 1 }] });
    const b = workflow({ name: 'same', steps: [{ name: 'b', run: () => 1 }] });
    expect(invalid(() => workflowEngine({ journal: inMemoryJournal(), workflows: [a, b] })).message).toMatch(
      /two definitions named "same"/,
    );
  });

  it('orders 10,000 steps and refuses a 10,000-step cycle', () => {
    const chain = (closed: boolean) =>
      Array.from({ length: 10_000 }, (_, i) => ({
        name: `s${i}`,
        run: () => i,
        ...(i > 0 ? { after: [`s${i - 1}`] } : closed ? { after: ['s9999'] } : {}),
      }));
    expect(workflow({ name: 'long', steps: chain(false) }).steps).toHaveLength(10_000);
    expect(invalid(() => workflow({ name: 'loop', steps: chain(true) })).message).toMatch(/cycle/);
  });
});

describe('running a workflow', () => {
  it('fans out and in under a concurrency limit, skips by condition and maps over a run-time list', async () => {
    let running = 0;
    let most = 0;
    const slow = (value: number) => async () => {
      running++;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => queueMicrotask(resolve));
      await Promise.resolve();
      running--;
      return value;
    };
    const flow = workflow<{ items: number[]; express: boolean }>({
      name: 'shapes',
      concurrency: 2,
      steps: [
        { name: 'start', run: ({ input }) => input.items.length },
        ...[1, 2, 3, 4, 5].map((n) => ({ name: `fan${n}`, after: ['start'], run: slow(n) })),
        {
          name: 'sum',
          after: ['fan1', 'fan2', 'fan3', 'fan4', 'fan5'],
          run: ({ results }) => [1, 2, 3, 4, 5].reduce((t, n) => t + (results[`fan${n}`] as number), 0),
        },
        { name: 'express', after: ['sum'], when: ({ input }) => input.express, run: () => 'fast lane' },
        { name: 'standard', after: ['sum'], when: ({ input }) => !input.express, run: () => 'slow lane' },
        {
          name: 'double',
          after: ['start'],
          map: { over: ({ input }) => input.items, run: (item) => (item as number) * 2, concurrency: 2 },
        },
        {
          name: 'report',
          after: ['express', 'standard', 'double'],
          run: ({ results }) => ({ lane: results.express ?? results.standard, doubled: results.double }),
        },
      ],
    });
    const journal = inMemoryJournal();
    const engine = workflowEngine({ journal, workflows: [flow] });
    const system = host(engine.kind);
    const outcome = await engine.run(system, flow, 'shapes-1', { items: [1, 2, 3], express: false });
    expect(outcome).toEqual({ ok: true, output: { report: { lane: 'slow lane', doubled: [2, 4, 6] } } });
    expect(most).toBe(2);
    const types = (await journal.readStream('workflow-shapes-1')).map((e) => e.type);
    expect(types.filter((t) => t === 'step-skipped')).toHaveLength(1);
    expect(types.filter((t) => t === 'item-completed')).toHaveLength(3);
    expect(types.at(-1)).toBe('workflow-completed');
  });

  it('retries a step with the same idempotency key, and fails a step past its deadline with a typed error', async () => {
    const keys: string[] = [];
    const flow = workflow({
      name: 'flaky',
      steps: [
        {
          name: 'charge',
          retry: { attempts: 3, backoff: exponential({ baseMs: 1, maxMs: 2 }) },
          run: ({ idempotencyKey, attempt }) => {
            keys.push(`${idempotencyKey}#${attempt}`);
            if (attempt < 3) throw new Error('card network busy');
            return 'charged';
          },
        },
        {
          name: 'ship',
          after: ['charge'],
          timeoutMs: 20,
          run: ({ signal }) =>
            new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
        },
      ],
    });
    const events: SystemEvent[] = [];
    const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [flow] });
    const system = host(engine.kind, events);
    const outcome = await engine.run(system, flow, 'f1', {});
    expect(keys).toEqual(['f1/charge#1', 'f1/charge#2', 'f1/charge#3']);
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.error.code).toBe('ERR_STEP_FAILED');
    expect(outcome.error.details).toMatchObject({ workflow: 'f1', step: 'ship' });
    expect((outcome.error.cause as TroupeError).code).toBe('ERR_CALL_TIMEOUT');
    expect(events.filter((e) => e.type === 'workflow-step' && e.status === 'failed')).toMatchObject([
      { workflow: 'f1', step: 'ship', error: { code: 'ERR_STEP_FAILED' } },
    ]);
    expect(events.filter((e) => e.type === 'workflow-ended')).toMatchObject([
      { workflow: 'f1', ok: false, error: { code: 'ERR_STEP_FAILED' } },
    ]);
  });

  it('runs each attempt under a guard: an open breaker fails the step with its refusal', async () => {
    const providerGuard = guard({ name: 'provider', retry: false, breaker: { volumeThreshold: 1 } });
    // Two failures open the breaker.
    for (let i = 0; i < 2; i++)
      await providerGuard.call(() => Promise.reject(new Error('provider down'))).catch(() => undefined);
    expect(providerGuard.breaker!.state).toBe('open');
    let called = 0;
    const flow = workflow({
      name: 'guarded',
      steps: [{ name: 'call', guard: providerGuard, run: () => ++called }],
    });
    const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [flow] });
    const outcome = await engine.run(host(engine.kind), flow, 'g1', {});
    providerGuard.breaker!.close();
    expect(called).toBe(0);
    expect(outcome.ok === false && (outcome.error.cause as TroupeError).code).toBe('ERR_CIRCUIT_OPEN');
  });

  it('waits for an approval signal, and fails with ERR_SIGNAL_TIMEOUT when none comes by the deadline', async () => {
    const flow = workflow({
      name: 'approval',
      steps: [
        { name: 'draft', run: () => 'v1' },
        { name: 'approve', after: ['draft'], signal: { timeoutMs: 30_000 } },
        {
          name: 'publish',
          after: ['approve'],
          run: ({ results }) => `published ${results.draft} by ${results.approve}`,
        },
      ],
    });
    const quick = workflow({
      name: 'quick-approval',
      steps: [{ name: 'approve', signal: { timeoutMs: 50 } }],
    });
    const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [flow, quick] });
    const system = host(engine.kind);
    const handle = await engine.start(system, flow, 'a1', {});
    await vi.waitFor(async () => expect((await handle.status()).waiting).toEqual(['approve']));
    expect(await handle.signal('draft', 'x')).toBe(false);
    expect(await handle.signal('approve', 'ada')).toBe(true);
    expect(await handle.signal('approve', 'bob')).toBe(false);
    expect(await handle.result()).toEqual({ ok: true, output: { publish: 'published v1 by ada' } });

    const late = await engine.run(system, quick, 'a2', {});
    expect(late.ok === false && late.error.code).toBe('ERR_SIGNAL_TIMEOUT');
  });

  it('asks actors and runs agents on the scripted model as steps, with the idempotency key as the run id', async () => {
    const Pricing = defineProtocol('test.pricing', {
      quote: ask(z.object({ sku: z.string() }), z.number()),
    });
    const pricing = behavior({
      protocols: [Pricing],
      handlers: { quote: ({ sku }) => sku.length * 10 },
    });
    const model = scriptedModel({ steps: [(request) => `summary of ${request.messages.at(-1)?.content}`] });
    const flow = workflow<{ sku: string }>({
      name: 'research',
      steps: [
        {
          name: 'price',
          run: askStep(
            ({ system }) => system.actorOf('pricing', 'main', Pricing),
            'quote',
            ({ input }) => ({ sku: input.sku }),
          ),
        },
        {
          name: 'summary',
          after: ['price'],
          run: agentStep(
            ({ system }) => system.actorOf('writer', 'w', AgentProtocol),
            ({ results }) => `price ${results.price}`,
          ),
        },
      ],
    });
    const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [flow] });
    const system = createSystem({
      kinds: { workflow: engine.kind, pricing, writer: agent({ model, journal: inMemoryJournal() }) },
      deadLetterLog: () => {},
    });
    systems.push(system);
    const outcome = await engine.run(system, flow, 'r1', { sku: 'tea' });
    expect(outcome).toEqual({ ok: true, output: { summary: 'summary of price 30' } });
  });

  it('refuses an input its schema refuses, and an id that runs another definition', async () => {
    const typed = workflow({
      name: 'typed',
      input: z.object({ n: z.number() }),
      steps: [{ name: 'a', run: () => 1 }],
    });
    const other = workflow({ name: 'other', steps: [{ name: 'a', run: () => 1 }] });
    const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [typed, other] });
    const system = host(engine.kind);
    await expect(engine.start(system, typed, 't1', { n: 'one' } as never)).rejects.toMatchObject({
      code: 'ERR_VALIDATION',
    });
    await engine.run(system, typed, 't1', { n: 1 });
    await expect(engine.start(system, other, 't1', {})).rejects.toMatchObject({ code: 'ERR_ILLEGAL_STATE' });
    // Starting the same id again starts nothing and gives the outcome it had.
    expect(await engine.run(system, typed, 't1', { n: 2 })).toEqual({ ok: true, output: { a: 1 } });
  });
});

/** A 4-step pipeline whose steps count their runs and note their idempotency keys. */
function countingPipeline(name: string) {
  const runs: Record<string, number> = {};
  const keys: string[] = [];
  const step = (id: string, after?: string) => ({
    name: id,
    ...(after === undefined ? {} : { after: [after] }),
    run: async ({
      idempotencyKey,
      results,
    }: {
      idempotencyKey: string;
      results: Readonly<Record<string, unknown>>;
    }) => {
      runs[id] = (runs[id] ?? 0) + 1;
      keys.push(idempotencyKey);
      await Promise.resolve();
      return `${id}(${after === undefined ? '' : String(results[after])})`;
    },
  });
  const flow = workflow({ name, steps: [step('a'), step('b', 'a'), step('c', 'b'), step('d', 'c')] });
  return { flow, runs, keys };
}

function durability(label: string, journal: () => Promise<Journal>) {
  describe(`durability on the ${label} journal`, () => {
    it('resumes after a crash: recorded steps never run again, the step in flight runs again with its key', async () => {
      for (const committed of [false, true]) {
        const { flow, runs, keys } = countingPipeline('pipeline');
        // The append of `b`'s completion fails: it is lost (or committed before the failure).
        const faulty = crashingJournal(await journal(), {
          failAt: 1,
          committed,
          counts: (events) =>
            events.some((e) => e.type === 'step-completed' && (e.data as { step: string }).step === 'b'),
        });
        const engine = workflowEngine({ journal: faulty, workflows: [flow], restart: fast });
        const system = host(engine.kind);
        const id = `p-${committed}`;
        const outcome = await engine.run(system, flow, id, {});
        expect(outcome).toEqual({ ok: true, output: { d: 'd(c(b(a())))' } });
        expect(faulty.crashed).toBe(true);
        expect(runs).toEqual({ a: 1, b: committed ? 1 : 2, c: 1, d: 1 });
        expect(keys.filter((k) => k === `${id}/b`)).toHaveLength(committed ? 1 : 2);
        const completed = (await faulty.readStream(`workflow-${id}`))
          .filter((e) => e.type === 'step-completed')
          .map((e) => (e.data as { step: string }).step);
        expect(completed).toEqual(['a', 'b', 'c', 'd']);
      }
    });

    it('finishes, on a new system over the same journal, a workflow whose system closed in the middle of a step', async () => {
      const store = await journal();
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const runs: string[] = [];
      const flow = workflow({
        name: 'restartable',
        steps: [
          { name: 'one', run: () => runs.push('one') },
          {
            name: 'two',
            after: ['one'],
            run: async ({ idempotencyKey }) => {
              runs.push(idempotencyKey);
              await gate;
              return 'two done';
            },
          },
          { name: 'three', after: ['two'], run: ({ results }) => `after ${results.two}` },
        ],
      });
      const first = workflowEngine({ journal: store, workflows: [flow] });
      const before = host(first.kind);
      await first.start(before, flow, 'r-1', {});
      await vi.waitFor(() => expect(runs).toEqual(['one', 'r-1/two']));
      await before.close();
      const second = workflowEngine({ journal: store, workflows: [flow], pollMs: 20 });
      const after = host(second.kind);
      const result = second.handle(after, 'r-1').result();
      await vi.waitFor(() => expect(runs).toEqual(['one', 'r-1/two', 'r-1/two']));
      release();
      expect(await result).toEqual({ ok: true, output: { three: 'after two done' } });
      const types = (await store.readStream('workflow-r-1')).map((e) => e.type);
      expect(types).toContain('step-started');
      expect(types.filter((t) => t === 'step-completed')).toHaveLength(3);
    });
  });
}

durability('in-memory', async () => inMemoryJournal());
const postgres = postgresJournals('wf');
durability('Postgres', () => postgres.journal());

describe('a large DAG', () => {
  it('runs 10,000 steps in 100 layers, each recorded once', async () => {
    const width = 100;
    const steps: StepDefinition[] = [];
    for (let layer = 0; layer < 100; layer++) {
      for (let w = 0; w < width; w++) {
        steps.push({
          name: `s${layer}-${w}`,
          ...(layer === 0 ? {} : { after: [`s${layer - 1}-${w}`, `s${layer - 1}-${(w + 1) % width}`] }),
          run: ({ results }) => (layer === 0 ? 1 : ((results[`s${layer - 1}-${w}`] as number) + 1) % 1000),
        });
      }
    }
    const flow: Workflow = workflow({ name: 'big', steps, concurrency: 1000, output: (r) => r['s99-0'] });
    const journal = inMemoryJournal();
    const engine = workflowEngine({ journal, workflows: [flow] });
    expect(await engine.run(host(engine.kind), flow, 'big-1', {})).toEqual({ ok: true, output: 100 });
    const events = await journal.readStream('workflow-big-1', { limit: 20_000 });
    expect(events.filter((e) => e.type === 'step-completed')).toHaveLength(10_000);
  });
});
