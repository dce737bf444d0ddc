/**
 * Blackboard: compare-and-set writes of typed entries, knowledge sources triggered by pattern (an
 * agent among them), a controller choosing the order, sources crashing or timing out without
 * stopping the agenda, and entries and subscriptions recovered from the journal.
 */
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorRef,
  type ActorSystem,
  type BlackboardActivationEvent,
  BlackboardProtocol,
  behavior,
  blackboard,
  type Entry,
  inMemoryJournal,
  KnowledgeSourceProtocol,
  TroupeError,
} from '../../index.js';
import { scriptedAgent, testSystem } from './helpers.js';

const types = {
  problem: z.object({ text: z.string() }),
  solution: z.object({ text: z.string() }),
  verdict: z.object({ ok: z.boolean() }),
};

/** A knowledge source that records what it saw and runs `react` (which may write to the board). */
function source(
  system: ActorSystem,
  name: string,
  seen: string[],
  react: (change: Entry, board: ActorRef<typeof BlackboardProtocol>, self: string) => unknown = () => null,
) {
  return system.spawn(
    behavior({
      protocols: [KnowledgeSourceProtocol],
      handlers: {
        react: async ({ board, change }, ctx) => {
          seen.push(`${name}:${change.key}@${change.version}`);
          return (await react(change, ctx.system.ref(board, BlackboardProtocol), ctx.self.address)) ?? null;
        },
      },
    }),
    { name },
  );
}

describe('blackboard', () => {
  it('writes by compare-and-set on the version, and refuses entries of no type or failing their schema', async () => {
    const { system, events } = testSystem();
    const board = system.spawn(blackboard({ types }), { name: 'b' });
    await expect(
      board.ask('put', { key: 'p1', type: 'problem', value: { text: 'tides' }, expectedVersion: 0 }),
    ).resolves.toEqual({ ok: true, version: 1 });
    const conflict = await board.ask('put', {
      key: 'p1',
      type: 'problem',
      value: { text: 'x' },
      expectedVersion: 0,
    });
    expect(conflict).toMatchObject({
      ok: false,
      error: { code: 'ERR_VERSION_CONFLICT' },
      current: { key: 'p1', version: 1, value: { text: 'tides' } },
    });
    await expect(
      board.ask('put', { key: 'p1', type: 'problem', value: { text: 'moon' }, expectedVersion: 1 }),
    ).resolves.toEqual({ ok: true, version: 2 });
    await expect(
      board.ask('put', { key: 'p2', type: 'rumour', value: {}, expectedVersion: 0 }),
    ).resolves.toMatchObject({
      ok: false,
      error: { code: 'ERR_VALIDATION', message: expect.stringContaining('rumour') },
    });
    await expect(
      board.ask('put', { key: 'p2', type: 'problem', value: { text: 3 }, expectedVersion: 0 }),
    ).resolves.toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION' } });
    expect(await board.ask('get', { key: 'p1' })).toMatchObject({ version: 2, value: { text: 'moon' } });
    expect(await board.ask('get', { key: 'p2' })).toBeNull();
    expect(events.filter((e) => e.type === 'blackboard-change')).toMatchObject([
      { key: 'p1', version: 1 },
      { key: 'p1', version: 2 },
    ]);
  });

  it('triggers the sources whose pattern matches, not the writer itself; a chain of sources solves a problem', async () => {
    const { system } = testSystem();
    const board = system.spawn(blackboard({ types }), { name: 'b' });
    const seen: string[] = [];
    const solverAgent = scriptedAgent(system, 'solver-agent', (input) => `answer to ${input}`).ref;
    // The solver asks an agent and writes its answer; the checker judges solutions.
    const solver = source(system, 'solver', seen, async (change, b, self) => {
      const outcome = await solverAgent.ask('run', { input: (change.value as { text: string }).text });
      const text = outcome.ok ? outcome.output : 'failed';
      await b.ask('put', {
        key: `s-${change.key}`,
        type: 'solution',
        value: { text },
        expectedVersion: 0,
        by: self,
      });
    });
    const checker = source(system, 'checker', seen, async (change, b, self) => {
      await b.ask('put', {
        key: `v-${change.key}`,
        type: 'verdict',
        value: { ok: (change.value as { text: string }).text.startsWith('answer') },
        expectedVersion: 0,
        by: self,
      });
    });
    // The solver also watches solutions: its own write must not trigger it.
    await board.ask('subscribe', { source: solver.address, pattern: { type: 'problem' } });
    await board.ask('subscribe', { source: solver.address, pattern: { type: 'solution' } });
    await board.ask('subscribe', { source: checker.address, pattern: { type: 'solution', prefix: 's-' } });
    await board.ask('put', { key: 'p1', type: 'problem', value: { text: 'tides' }, expectedVersion: 0 });
    await vi.waitFor(async () => expect(await board.ask('get', { key: 'v-s-p1' })).not.toBeNull());
    expect(await board.ask('list', { type: 'verdict' })).toMatchObject([
      { key: 'v-s-p1', value: { ok: true } },
    ]);
    expect(seen).toEqual(['solver:p1@1', 'checker:s-p1@1']);
    expect(await board.ask('list', {})).toHaveLength(3);
  });

  it('lets the controller decide who acts next, one at a time', async () => {
    const { system } = testSystem();
    const order: string[] = [];
    // Last triggered first.
    const board = system.spawn(blackboard({ types, controller: (agenda) => agenda.length - 1 }), {
      name: 'lifo',
    });
    const byPriority = system.spawn(blackboard({ types }), { name: 'prio' });
    const sources = ['x', 'y', 'z'].map((n) => source(system, n, order));
    for (const [i, s] of sources.entries()) {
      await board.ask('subscribe', { source: s.address, pattern: { type: 'problem' } });
      await byPriority.ask('subscribe', {
        source: s.address,
        pattern: { type: 'problem' },
        priority: i === 1 ? 5 : 0,
      });
    }
    await board.ask('put', { key: 'k', type: 'problem', value: { text: '' }, expectedVersion: 0 });
    await vi.waitFor(() => expect(order).toHaveLength(3));
    // Every source is on the agenda before the first runs: last triggered first.
    expect(order).toEqual(['z:k@1', 'y:k@1', 'x:k@1']);
    order.length = 0;
    await byPriority.ask('put', { key: 'k', type: 'problem', value: { text: '' }, expectedVersion: 0 });
    await vi.waitFor(() => expect(order).toHaveLength(3));
    // The highest priority first, then the order triggered.
    expect(order).toEqual(['y:k@1', 'x:k@1', 'z:k@1']);
  });

  it('reports a crashing and a silent source and goes on with the agenda', async () => {
    const { system, events } = testSystem();
    const board = system.spawn(blackboard({ types, activationTimeoutMs: 100 }), { name: 'faults' });
    const seen: string[] = [];
    const crashes = source(system, 'crashes', seen, () => {
      throw new Error('boom');
    });
    const silent = source(system, 'silent', seen, () => new Promise(() => {}));
    const fine = source(system, 'fine', seen);
    for (const s of [crashes, silent, fine]) await board.ask('subscribe', { source: s.address, pattern: {} });
    await board.ask('put', { key: 'k', type: 'problem', value: { text: '' }, expectedVersion: 0 });
    const activations = () =>
      events.filter((e): e is BlackboardActivationEvent => e.type === 'blackboard-activation');
    await vi.waitFor(() => expect(activations()).toHaveLength(3));
    expect(activations().map((e) => [e.source, e.ok, e.error])).toEqual([
      [crashes.address, false, 'ERR_ACTOR_CRASHED'],
      [silent.address, false, 'ERR_ASK_TIMEOUT'],
      [fine.address, true, undefined],
    ]);
  });

  it('recovers its entries and subscriptions from the journal', async () => {
    const journal = inMemoryJournal();
    const { system } = testSystem();
    const first = system.spawn(blackboard({ types, journal }), { name: 'kept' });
    const seen: string[] = [];
    const watcher = source(system, 'watcher', seen);
    await first.ask('subscribe', { source: watcher.address, pattern: { type: 'problem' } });
    await first.ask('put', { key: 'p', type: 'problem', value: { text: 'a' }, expectedVersion: 0 });
    await system.stop(first);
    const again = system.spawn(blackboard({ types, journal }), { name: 'kept' });
    expect(await again.ask('get', { key: 'p' })).toMatchObject({ version: 1, value: { text: 'a' } });
    await again.ask('put', { key: 'p', type: 'problem', value: { text: 'b' }, expectedVersion: 1 });
    await vi.waitFor(() => expect(seen).toEqual(['watcher:p@1', 'watcher:p@2']));
    expect((await journal.readStream('blackboard-kept')).map((e) => e.type)).toEqual([
      'subscribed',
      'written',
      'written',
    ]);
  });

  it('refuses bad definitions naming the part', () => {
    const bad: [unknown, string][] = [
      [{ types: {} }, 'types'],
      [{ types: { a: 1 } }, 'types.a'],
      [{ types, controller: 'fifo' }, 'controller'],
      [{ types, activationTimeoutMs: 0 }, 'activationTimeoutMs'],
    ];
    for (const [options, part] of bad) {
      let thrown: unknown;
      try {
        blackboard(options as Parameters<typeof blackboard>[0]);
      } catch (error) {
        thrown = error;
      }
      expect(TroupeError.is(thrown, 'ERR_INVALID_OPTION'), part).toBe(true);
      expect((thrown as TroupeError).details?.option).toBe(part);
    }
  });
});
