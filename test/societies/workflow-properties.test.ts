/**
 * Properties of durable workflows and sagas (fast-check, seed printed on failure):
 * - for random DAGs and random crash points (an append that fails before or after it commits, after
 *   which the instance's actor crashes and recovers from the journal), every step completes exactly
 *   once but the ones in flight at the crash, and the results equal an uninterrupted run's;
 * - the exactly-once checker catches an engine that forgets a completion;
 * - for random failure points, and crashes, a saga ends with every step done, or with every
 *   completed step compensated in reverse order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createSystem,
  exponential,
  inMemoryJournal,
  type Journal,
  type StepDefinition,
  type StoredEvent,
  saga,
  workflow,
  workflowEngine,
} from '../../index.js';
import { propertySeed, seeded } from '../harness/fast-check.js';
import { checkExactlyOnce, crashingJournal, forgetfulJournal } from './workflow-check.js';

const fast = { outageBackoff: exponential({ baseMs: 1, maxMs: 5 }), intensity: 100 };

interface StepShape {
  readonly after: readonly number[];
  readonly async: boolean;
  readonly conditional: boolean;
}

const dagShape = fc.integer({ min: 1, max: 12 }).chain((n) =>
  fc.tuple(
    ...Array.from({ length: n }, (_, i) =>
      fc.record({
        after:
          i === 0 ? fc.constant([]) : fc.uniqueArray(fc.integer({ min: 0, max: i - 1 }), { maxLength: 3 }),
        async: fc.boolean(),
        conditional: fc.boolean(),
      }),
    ),
  ),
);

/** A DAG of the shape whose steps compute deterministic numbers from their inputs and note each run. */
function dagOf(shape: readonly StepShape[], note: (step: string) => void) {
  const name = (i: number) => `s${i}`;
  const stepValue = (i: number, results: Readonly<Record<string, unknown>>) =>
    shape[i]!.after.reduce((t, d) => (t * 31 + Number(results[name(d)] ?? 7)) % 1_000_003, i + 1);
  const steps: StepDefinition[] = shape.map((s, i) => ({
    name: name(i),
    after: s.after.map(name),
    ...(s.conditional ? { when: ({ results }) => stepValue(i, results) % 3 !== 0 } : {}),
    run: s.async
      ? async ({ results }) => {
          note(name(i));
          await Promise.resolve();
          return stepValue(i, results);
        }
      : ({ results }) => {
          note(name(i));
          return stepValue(i, results);
        },
  }));
  return { flow: workflow({ name: 'dag', steps, concurrency: 3 }), names: shape.map((_, i) => name(i)) };
}

function resultsOf(events: readonly StoredEvent[]): Record<string, unknown> {
  const results: Record<string, unknown> = {};
  for (const e of events) {
    const data = e.data as { step: string; result?: unknown };
    if (e.type === 'step-completed') results[data.step] = data.result;
    if (e.type === 'step-skipped') results[data.step] = null;
  }
  return Object.fromEntries(Object.entries(results).sort(([a], [b]) => a.localeCompare(b)));
}

/** Runs the shape once on `journal` (crashing, maybe); what ran and what the journal holds. */
async function runDag(
  shape: readonly StepShape[],
  inner: Journal,
  journal: Journal & { readonly crashed: boolean; readonly versionAtCrash: number },
) {
  const executions: { step: string; afterCrash: boolean }[] = [];
  const { flow, names } = dagOf(shape, (step) => executions.push({ step, afterCrash: journal.crashed }));
  const engine = workflowEngine({ journal, workflows: [flow], restart: fast });
  const system = createSystem({ kinds: { workflow: engine.kind }, deadLetterLog: () => {} });
  try {
    const outcome = await engine.run(system, flow, 'w', {});
    const events = await inner.readStream('workflow-w');
    return {
      outcome,
      run: {
        steps: names,
        executions,
        events,
        versionAtCrash: journal.crashed ? journal.versionAtCrash : events.length,
        results: resultsOf(events),
        output: outcome.ok ? outcome.output : outcome.error.code,
      },
    };
  } finally {
    await system.close();
  }
}

describe('durable workflows, properties', () => {
  it('for random DAGs and crash points, runs every step exactly once but those in flight, with the same results', async () => {
    const seed = propertySeed(Date.now() % 100_000);
    await fc.assert(
      fc.asyncProperty(dagShape, fc.nat(), fc.boolean(), async (shape, point, committed) => {
        const plainJournal = inMemoryJournal();
        const plain = crashingJournal(plainJournal, { failAt: Number.POSITIVE_INFINITY, committed });
        const reference = await runDag(shape, plainJournal, plain);
        expect(reference.outcome.ok).toBe(true);
        expect(checkExactlyOnce(reference.run, reference.run)).toEqual([]);
        const inner = inMemoryJournal();
        const crashing = crashingJournal(inner, { failAt: 1 + (point % plain.appends), committed });
        const crashed = await runDag(shape, inner, crashing);
        expect(crashing.crashed).toBe(true);
        expect(checkExactlyOnce(crashed.run, reference.run)).toEqual([]);
      }),
      seeded('workflow exactly-once', seed, 60),
    );
  }, 60_000);

  it('has a checker that catches an engine forgetting a completion', async () => {
    const shape: StepShape[] = [
      { after: [], async: true, conditional: false },
      { after: [0], async: true, conditional: false },
      { after: [1], async: true, conditional: false },
    ];
    const plainJournal = inMemoryJournal();
    const reference = await runDag(
      shape,
      plainJournal,
      crashingJournal(plainJournal, { failAt: Number.POSITIVE_INFINITY, committed: false }),
    );
    const inner = inMemoryJournal();
    const broken = crashingJournal(forgetfulJournal(inner), {
      failAt: 1,
      committed: false,
      counts: (events) =>
        events.some((e) => e.type === 'step-completed' && (e.data as { step: string }).step === 's2'),
    });
    const crashed = await runDag(shape, inner, broken);
    expect(broken.crashed).toBe(true);
    const violations = checkExactlyOnce(crashed.run, reference.run);
    expect(violations).toContain('step s0 ran again after the crash though its completion was recorded');
    expect(violations).toContain('step s0 is recorded done 2 times');
  });

  it('ends a saga, for random failure and crash points, all done or with every completed step compensated in reverse', async () => {
    const seed = propertySeed(Date.now() % 100_000);
    const sagaCase = fc.integer({ min: 1, max: 6 }).chain((n) =>
      fc.record({
        n: fc.constant(n),
        failing: fc.integer({ min: 0, max: n }),
        flaky: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: n, maxLength: n }),
        crashAt: fc.option(fc.integer({ min: 1, max: 2 * n + 3 }), { nil: undefined }),
        committed: fc.boolean(),
      }),
    );
    await fc.assert(
      fc.asyncProperty(sagaCase, async ({ n, failing, flaky, crashAt, committed }) => {
        const names = Array.from({ length: n }, (_, i) => `t${i}`);
        const undone: string[] = [];
        const tries = new Map<string, number>();
        const flow = saga({
          name: 'trip',
          compensation: { attempts: 5, backoff: exponential({ baseMs: 1, maxMs: 2 }) },
          steps: names.map((name, i) => ({
            name,
            run: () => {
              if (i === failing) throw new Error(`${name} refused`);
              return `${name} booked`;
            },
            compensate: ({ result }) => {
              const t = (tries.get(name) ?? 0) + 1;
              tries.set(name, t);
              if (t <= flaky[i]!) throw new Error('transient');
              expect(result).toBe(`${name} booked`);
              undone.push(name);
            },
          })),
        });
        const inner = inMemoryJournal();
        const journal = crashingJournal(inner, { failAt: crashAt ?? Number.POSITIVE_INFINITY, committed });
        const engine = workflowEngine({ journal, workflows: [flow], restart: fast });
        const system = createSystem({ kinds: { workflow: engine.kind }, deadLetterLog: () => {} });
        try {
          const outcome = await engine.run(system, flow, 'trip-1', {});
          const events = await inner.readStream('workflow-trip-1');
          const recorded = events
            .filter((e) => e.type === 'step-compensated')
            .map((e) => (e.data as { step: string }).step);
          const completed = events
            .filter((e) => e.type === 'step-completed')
            .map((e) => (e.data as { step: string }).step);
          if (failing === n) {
            expect(outcome).toEqual({ ok: true, output: { [names[n - 1]!]: `${names[n - 1]} booked` } });
            expect(completed).toEqual(names);
            expect(undone).toEqual([]);
            return;
          }
          const expected = names.slice(0, failing).reverse();
          expect(outcome.ok).toBe(false);
          if (outcome.ok) return;
          expect(outcome.error.code).toBe('ERR_STEP_FAILED');
          expect(outcome.compensated).toEqual(expected);
          expect(recorded).toEqual(expected);
          expect(completed).toEqual(names.slice(0, failing));
          // A compensation in flight at a crash may run again; their first runs are in reverse order.
          expect([...new Set(undone)]).toEqual(expected);
        } finally {
          await system.close();
        }
      }),
      seeded('saga compensation', seed, 60),
    );
  }, 60_000);
});
