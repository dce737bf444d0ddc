/**
 * Sagas (compensations in reverse order, a compensation that gives up, durability while
 * compensating on Postgres) and review loops (all critics or a majority, repair rounds up to a
 * maximum, agents on the scripted model as generator and critics, used as a workflow step).
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ActorSystem,
  AgentProtocol,
  agent,
  agentCritic,
  agentGenerator,
  createSystem,
  exponential,
  inMemoryJournal,
  type KindOptions,
  reviewLoop,
  reviewStep,
  type SystemEvent,
  saga,
  scriptedModel,
  TroupeError,
  workflow,
  workflowEngine,
} from '../../index.js';
import { postgresJournals } from '../memory/postgres-journals.js';
import { crashingJournal } from './workflow-check.js';

const systems: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.splice(0).map((s) => s.close()));
});

function host(
  kinds: Record<string, KindOptions | KindOptions['behavior']>,
  events?: SystemEvent[],
): ActorSystem {
  const system = createSystem({ kinds, deadLetterLog: () => {} });
  systems.push(system);
  if (events !== undefined) system.events$.subscribe((e) => events.push(e));
  return system;
}

const quickRetry = { attempts: 3, backoff: exponential({ baseMs: 1, maxMs: 2 }) };

describe('sagas', () => {
  it('refuses a step without a compensation where a later step may fail, naming it', () => {
    expect(() =>
      saga({
        name: 'trip',
        steps: [
          { name: 'flight', run: () => 1, compensate: () => undefined },
          { name: 'hotel', run: () => 2 },
          { name: 'car', run: () => 3 },
        ],
      }),
    ).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_OPTION',
        message: expect.stringMatching(/step "hotel"\.compensate/),
      }),
    );
  });

  it('compensates the completed steps in reverse order when a step fails', async () => {
    const log: string[] = [];
    const trip = saga({
      name: 'trip',
      steps: [
        {
          name: 'flight',
          run: () => log.push('book flight') && 'F1',
          compensate: ({ result }) => log.push(`cancel ${result}`),
        },
        {
          name: 'hotel',
          run: () => log.push('book hotel') && 'H1',
          compensate: ({ result }) => log.push(`cancel ${result}`),
        },
        {
          name: 'car',
          run: () => {
            throw new Error('no cars left');
          },
        },
      ],
    });
    const events: SystemEvent[] = [];
    const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [trip] });
    const outcome = await engine.run(host({ workflow: engine.kind }, events), trip, 'trip-1', {});
    expect(log).toEqual(['book flight', 'book hotel', 'cancel H1', 'cancel F1']);
    expect(outcome).toMatchObject({ ok: false, compensated: ['hotel', 'flight'] });
    expect(outcome.ok === false && outcome.error.code).toBe('ERR_STEP_FAILED');
    expect(
      events
        .filter((e) => e.type === 'workflow-step')
        .map((e) => e.type === 'workflow-step' && `${e.step}:${e.status}`),
    ).toEqual([
      'flight:completed',
      'hotel:completed',
      'car:failed',
      'hotel:compensated',
      'flight:compensated',
    ]);
  });

  it('ends ERR_COMPENSATION_FAILED listing what is left undone when a compensation keeps failing', async () => {
    let attempts = 0;
    const trip = saga({
      name: 'trip',
      compensation: quickRetry,
      steps: [
        { name: 'flight', run: () => 'F1', compensate: () => undefined },
        {
          name: 'hotel',
          run: () => 'H1',
          compensate: () => {
            attempts++;
            throw new Error('hotel desk closed');
          },
        },
        {
          name: 'car',
          run: () => {
            throw new Error('no cars left');
          },
        },
      ],
    });
    const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [trip] });
    const outcome = await engine.run(host({ workflow: engine.kind }), trip, 'trip-2', {});
    expect(attempts).toBe(3);
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.error.code).toBe('ERR_COMPENSATION_FAILED');
    expect(outcome.error.details).toMatchObject({ step: 'hotel', undone: ['hotel', 'flight'] });
    expect((outcome.error.cause as Error).message).toBe('hotel desk closed');
    expect(outcome.compensated).toEqual([]);
  });

  const postgres = postgresJournals('saga');
  it('goes on compensating after a crash, on Postgres: the compensation in flight runs again with its key', async () => {
    const keys: string[] = [];
    const trip = saga({
      name: 'trip',
      steps: ['a', 'b', 'c'].map((name) => ({
        name,
        run: () => {
          if (name === 'c') throw new Error('c refused');
          return name;
        },
        compensate: ({ idempotencyKey }: { idempotencyKey: string }) => {
          keys.push(idempotencyKey);
        },
      })),
    });
    const journal = crashingJournal(await postgres.journal(), {
      failAt: 1,
      committed: false,
      counts: (events) => events.some((e) => e.type === 'step-compensated'),
    });
    const engine = workflowEngine({
      journal,
      workflows: [trip],
      restart: { outageBackoff: exponential({ baseMs: 1, maxMs: 5 }) },
    });
    const outcome = await engine.run(host({ workflow: engine.kind }), trip, 'pg-trip', {});
    expect(journal.crashed).toBe(true);
    expect(outcome).toMatchObject({ ok: false, compensated: ['b', 'a'] });
    expect(keys).toEqual(['pg-trip/b/compensate', 'pg-trip/b/compensate', 'pg-trip/a/compensate']);
  });
});

describe('review loops', () => {
  it('repairs until every critic passes, giving the generator their feedback', async () => {
    const seen: string[][] = [];
    const gate = reviewLoop<string, string>({
      generate: ({ input, round, feedback }) => {
        seen.push([...feedback]);
        return `${input} v${round}`;
      },
      critics: [
        (draft) => ({ pass: !draft.endsWith('v1'), feedback: 'too short' }),
        (draft) => ({ pass: draft.endsWith('v3'), feedback: 'needs a title' }),
      ],
      maxRounds: 5,
    });
    const outcome = await gate.run('essay');
    expect(outcome).toMatchObject({ ok: true, output: 'essay v3', rounds: 3 });
    expect(seen).toEqual([[], ['too short', 'needs a title'], ['needs a title']]);
  });

  it('passes by a simple majority when asked, and rejects after the maximum rounds', async () => {
    const critics = [
      () => ({ pass: true }),
      () => ({ pass: true }),
      () => ({ pass: false, feedback: 'meh' }),
    ];
    const majority = reviewLoop<string, string>({ generate: () => 'draft', critics, decide: 'majority' });
    expect(await majority.run('x')).toMatchObject({ ok: true, rounds: 1 });
    const all = reviewLoop<string, string>({ generate: () => 'draft', critics, maxRounds: 2 });
    const outcome = await all.run('x');
    expect(outcome).toMatchObject({ ok: false, rounds: 2, last: 'draft' });
    expect(outcome.ok === false && outcome.error.code).toBe('ERR_REVIEW_REJECTED');
    expect(outcome.ok === false && outcome.error.details).toMatchObject({ rounds: 2, feedback: ['meh'] });
  });

  it('refuses a loop without critics or with a bad decision rule', () => {
    expect(() => reviewLoop({ generate: () => 1, critics: [] })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(/critics/) }),
    );
    expect(() =>
      reviewLoop({ generate: () => 1, critics: [() => ({ pass: true })], decide: 'some' as never }),
    ).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(/decide/) }),
    );
  });

  it('runs scripted agents as generator and critics, as a step of a workflow', async () => {
    const writer = agent({
      model: scriptedModel({
        steps: [
          (request) =>
            String(request.messages.at(-1)?.content).includes('Repair') ? 'Tides: the moon pulls.' : 'Tides.',
        ],
      }),
    });
    const critic = agent({
      model: scriptedModel({
        steps: [
          (request) =>
            String(request.messages.at(-1)?.content).includes('moon') ? 'PASS' : 'Say what pulls them.',
        ],
      }),
    });
    const strict = agent({ model: scriptedModel({ steps: ['PASS'] }) });
    const flow = workflow<{ topic: string }>({
      name: 'reviewed',
      steps: [
        {
          name: 'answer',
          run: ({ system, ...ctx }) =>
            reviewStep(
              reviewLoop<string, string>({
                generate: agentGenerator(system.actorOf('writer', 'w', AgentProtocol)),
                critics: [
                  agentCritic(system.actorOf('critic', 'c1', AgentProtocol)),
                  agentCritic(system.actorOf('strict', 's1', AgentProtocol)),
                ],
              }),
              ({ input }: { input: { topic: string } }) => `Explain ${input.topic}`,
            )({ system, ...ctx }),
        },
      ],
    });
    const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [flow] });
    const system = host({ workflow: engine.kind, writer, critic, strict });
    expect(await engine.run(system, flow, 'rv-1', { topic: 'tides' })).toEqual({
      ok: true,
      output: { answer: 'Tides: the moon pulls.' },
    });
  });

  it('fails a workflow step with ERR_REVIEW_REJECTED as the cause when no candidate passes', async () => {
    const gate = reviewLoop<string, string>({
      generate: () => 'nope',
      critics: [() => ({ pass: false, feedback: 'no' })],
      maxRounds: 2,
    });
    const flow = workflow({ name: 'gated', steps: [{ name: 'gate', run: reviewStep(gate, () => 'task') }] });
    const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [flow] });
    const outcome = await engine.run(host({ workflow: engine.kind }), flow, 'gated-1', {});
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.error.code).toBe('ERR_STEP_FAILED');
    expect(TroupeError.is(outcome.error.cause, 'ERR_REVIEW_REJECTED')).toBe(true);
  });
});
