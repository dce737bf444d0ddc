/**
 * The guards' events on a real system's stream: a bulkhead's refusals (alone and inside a guard), a
 * budget's refusals (alone and under an agent), a breaker's transitions and a listener of it that
 * throws. test/ops.test.ts checks how the console renders them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ActorSystem,
  agent,
  breaker,
  bulkhead,
  createBudgets,
  createSystem,
  guard,
  type SystemEvent,
  scriptedModel,
  TroupeError,
} from '../../index.js';

const systems: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.splice(0).map((s) => s.close()));
});

function observed(name = 'guards'): { system: ActorSystem; events: SystemEvent[] } {
  const system = createSystem({ name, deadLetterLog: () => {} });
  systems.push(system);
  const events: SystemEvent[] = [];
  system.events$.subscribe((event) => {
    if (!event.type.startsWith('actor-')) events.push(event);
  });
  return { system, events };
}

/** A call that holds its slot until `release` is called. */
function held(): { call: () => Promise<string>; release: () => void } {
  let release!: () => void;
  const done = new Promise<string>((resolve) => {
    release = () => resolve('done');
  });
  return { call: () => done, release };
}

describe('bulkhead-rejected', () => {
  it('is published with the bulkhead, its limits and what it held, for each refused call', async () => {
    const { system, events } = observed();
    const pool = bulkhead({ name: 'openai', maxConcurrent: 1, maxQueue: 1, system });
    const slot = held();
    const running = pool.run(slot.call);
    const waiting = pool.run(async () => 'second');
    await expect(pool.run(async () => 'third')).rejects.toMatchObject({ code: 'ERR_BULKHEAD_FULL' });
    expect(events).toEqual([
      {
        type: 'bulkhead-rejected',
        at: expect.any(Number),
        bulkhead: 'openai',
        active: 1,
        queued: 1,
        maxConcurrent: 1,
        maxQueue: 1,
      },
    ]);
    slot.release();
    expect(await Promise.all([running, waiting])).toEqual(['done', 'second']);
    expect(events).toHaveLength(1);
  });

  it('is published by the bulkhead a guard builds when the guard has a system', async () => {
    const { system, events } = observed();
    const tools = guard({ name: 'search', system, retry: false, bulkhead: { maxConcurrent: 1 } });
    const slot = held();
    const running = tools.call(slot.call);
    await expect(tools.call(async () => 'more')).rejects.toMatchObject({ code: 'ERR_BULKHEAD_FULL' });
    slot.release();
    await running;
    expect(events.filter((e) => e.type === 'bulkhead-rejected')).toMatchObject([
      { bulkhead: 'search', active: 1, queued: 0, maxConcurrent: 1, maxQueue: 0 },
    ]);
  });
});

describe('budget-exhausted', () => {
  it('is published with the scope, the agent and the limit that refused the reservation', () => {
    const { system, events } = observed();
    const budgets = createBudgets({ system });
    budgets.limit('troupe://app/local/team', { tokens: 100 });
    budgets.reserve('troupe://app/local/team/writer', { tokens: 60, costUsd: 0 });
    expect(() => budgets.reserve('troupe://app/local/team/editor', { tokens: 50, costUsd: 0 })).toThrowError(
      expect.objectContaining({ code: 'ERR_BUDGET_EXCEEDED' }) as unknown as Error,
    );
    expect(events).toEqual([
      {
        type: 'budget-exhausted',
        at: expect.any(Number),
        scope: 'troupe://app/local/team',
        agent: 'troupe://app/local/team/editor',
        limit: 'tokens',
        max: 100,
        used: 60,
        needed: 50,
      },
    ]);
  });

  it('is published when an agent run is refused its next model call', async () => {
    const { system, events } = observed();
    const budgets = createBudgets({ system });
    const model = scriptedModel({ steps: ['one', 'two'] });
    const writer = system.spawn(agent({ model, budgets }), { name: 'writer' });
    budgets.limit(writer.address, { calls: 1 });
    expect(await writer.ask('run', { input: 'first' })).toMatchObject({ ok: true });
    expect(await writer.ask('run', { input: 'second' })).toMatchObject({
      ok: false,
      error: { code: 'ERR_BUDGET_EXCEEDED' },
    });
    expect(events.filter((e) => e.type === 'budget-exhausted')).toMatchObject([
      { scope: writer.address, agent: writer.address, limit: 'calls', max: 1, used: 1, needed: 1 },
    ]);
  });

  it('refuses a system without publish', () => {
    expect(() => createBudgets({ system: {} as ActorSystem })).toThrow(TroupeError);
  });
});

describe('breaker events', () => {
  it('publishes transitions, and a listener that throws as breaker-listener-failed; the breaker goes on', async () => {
    const { system, events } = observed();
    const b = breaker({
      name: 'flaky',
      system,
      volumeThreshold: 1,
      errorThresholdPercentage: 0,
      onTransition: () => {
        throw new Error('listener bug');
      },
    });
    await expect(b.fire(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(b.state).toBe('open');
    b.close();
    expect(events).toEqual([
      {
        type: 'breaker-listener-failed',
        at: expect.any(Number),
        breaker: 'flaky',
        from: 'closed',
        to: 'open',
        error: expect.objectContaining({ message: 'listener bug' }),
      },
      { type: 'breaker-transition', at: expect.any(Number), breaker: 'flaky', from: 'closed', to: 'open' },
    ]);
  });
});
