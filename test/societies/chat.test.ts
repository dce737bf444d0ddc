/**
 * Group chat on scripted agents: round-robin, a selector model fed back its unknown names, handoffs, a
 * function; every termination and their combinators; a participant crashing, one timing out, a human
 * answering late; bad definitions refused; every turn an event. Durable on Postgres: a chat whose
 * host stops mid-turn continues on a new host from its last recorded turn.
 */
import { describe, expect, it, vi } from 'vitest';
import {
  type ActorSystem,
  AgentProtocol,
  allOf,
  anyOf,
  behavior,
  type ChatTurn,
  costBudget,
  createSystem,
  externalStop,
  type GroupChatTurnEvent,
  groupChat,
  handoffs,
  type ModelRequest,
  maxTurns,
  scriptedModel,
  selector,
  TroupeError,
  textMention,
  tokenBudget,
  when,
} from '../../index.js';
import { postgresJournals } from '../memory/postgres-journals.js';
import { runActor, scriptedAgent, testSystem } from './helpers.js';

const speakers = (turns: readonly ChatTurn[]) => turns.map((t) => t.speaker);

function trio(system: ActorSystem, answer = (name: string, input: string) => `${name} says ${input.length}`) {
  const made = ['ann', 'bob', 'cy'].map((name) => ({
    name,
    ...scriptedAgent(system, name, (i) => answer(name, i)),
  }));
  return { participants: made.map(({ name, ref }) => ({ name, ref, description: `${name} helps` })), made };
}

describe('group chat: speaker selection', () => {
  it('takes turns round-robin until maxTurns, each turn an event, the end an event', async () => {
    const { system, events } = testSystem();
    const { participants, made } = trio(system);
    const chat = system.spawn(groupChat({ participants, termination: maxTurns(7) }), { name: 'rr' });
    await expect(chat.ask('start', { task: 'plan a trip' })).resolves.toMatchObject({ phase: 'running' });
    const outcome = await chat.ask('outcome', {});
    expect(outcome).toMatchObject({ reason: 'max-turns', turns: 7 });
    const turns = await chat.ask('transcript', {});
    expect(speakers(turns)).toEqual(['ann', 'bob', 'cy', 'ann', 'bob', 'cy', 'ann']);
    expect(turns.map((t) => t.turn)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // ann's first input holds the task; her second, only what the others said since.
    expect(made[0]!.inputs[0]).toContain('Task: plan a trip');
    expect(made[0]!.inputs[1]).toMatch(/^bob: bob says \d+\ncy: cy says \d+/);
    const turnEvents = events.filter((e): e is GroupChatTurnEvent => e.type === 'group-chat-turn');
    expect(turnEvents.map((e) => [e.turn, e.speaker, e.ok])).toEqual(
      turns.map((t) => [t.turn, t.speaker, true]),
    );
    expect(events.filter((e) => e.type === 'group-chat-ended')).toMatchObject([
      { reason: 'max-turns', turns: 7 },
    ]);
    // Starting again changes nothing.
    await expect(chat.ask('start', { task: 'again' })).resolves.toMatchObject({ phase: 'ended', turns: 7 });
  });

  it('feeds a selector its unknown names as ERR_UNKNOWN_SPEAKER until it names a participant', async () => {
    const { system } = testSystem();
    const { participants } = trio(system);
    const asked: ModelRequest[] = [];
    // Names someone who is not there first, then the right one; every time.
    const model = scriptedModel({
      steps: [
        (request) => {
          asked.push(request);
          const corrected = request.messages.some((m) => m.content.startsWith('ERR_UNKNOWN_SPEAKER'));
          return corrected ? ' cy ' : 'dave';
        },
      ],
    });
    const chat = system.spawn(
      groupChat({ participants, selection: selector({ model }), termination: maxTurns(2) }),
    );
    await chat.ask('start', { task: 'debate' });
    await chat.ask('outcome', {});
    const turns = await chat.ask('transcript', {});
    expect(speakers(turns)).toEqual(['cy', 'cy']);
    expect(turns[0]!.selectionErrors).toEqual([
      { code: 'ERR_UNKNOWN_SPEAKER', message: expect.stringContaining('"dave" is not a participant') },
    ]);
    expect(asked[0]!.system).toContain('- bob: bob helps');
    expect(asked[1]!.messages.at(-1)!.content).toContain('choose one of: ann, bob, cy');
  });

  it('falls back to round-robin when a selection keeps naming nobody, and survives a selection that throws', async () => {
    const { system } = testSystem();
    const { participants } = trio(system);
    let calls = 0;
    const chat = system.spawn(
      groupChat({
        participants,
        selection: () => {
          calls++;
          if (calls % 2 === 0) throw new Error('selector down');
          return 'nobody';
        },
        maxSelectionAttempts: 2,
        termination: maxTurns(2),
      }),
    );
    await chat.ask('start', { task: 't' });
    await chat.ask('outcome', {});
    const turns = await chat.ask('transcript', {});
    expect(speakers(turns)).toEqual(['ann', 'bob']);
    expect(turns[0]!.selectionErrors!.map((e) => e.code)).toEqual([
      'ERR_UNKNOWN_SPEAKER',
      'ERR_UNKNOWN_SPEAKER',
    ]);
    expect(turns[0]!.selectionErrors![1]!.message).toContain('selector down');
  });

  it('hands off to the participant an answer names, else to the fallback', async () => {
    const { system } = testSystem();
    const next: Record<string, string> = { ann: 'HANDOFF: cy', cy: 'HANDOFF: zed', bob: 'no handoff' };
    const { participants } = trio(system, (name) => next[name]!);
    const chat = system.spawn(groupChat({ participants, selection: handoffs(), termination: maxTurns(5) }));
    await chat.ask('start', { task: 't' });
    await chat.ask('outcome', {});
    const turns = await chat.ask('transcript', {});
    // ann → cy (handoff); cy names zed, unknown → round-robin after cy: ann; ann → cy; ...
    expect(speakers(turns)).toEqual(['ann', 'cy', 'ann', 'cy', 'ann']);
    expect(turns[2]!.selectionErrors).toMatchObject([{ code: 'ERR_UNKNOWN_SPEAKER' }]);
  });

  it('asks a selection function and ends on a text mention', async () => {
    const { system } = testSystem();
    const { participants } = trio(system, (name, input) =>
      name === 'bob' && input.includes('cy') ? 'DONE' : 'hm',
    );
    const chat = system.spawn(
      groupChat({
        participants,
        selection: (view) => (view.turns.length % 2 === 0 ? 'cy' : 'bob'),
        termination: anyOf(textMention('DONE', { from: 'bob' }), maxTurns(10)),
      }),
    );
    await chat.ask('start', { task: 't' });
    expect(await chat.ask('outcome', {})).toMatchObject({ reason: 'mention', turns: 2, last: 'DONE' });
  });
});

describe('group chat: termination', () => {
  it('ends on a token budget, a cost budget, a function, all of several, and an external stop', async () => {
    const { system } = testSystem();
    const { participants } = trio(system, () => 'x'.repeat(40));
    const run = async (termination: Parameters<typeof groupChat>[0]['termination'], name: string) => {
      const chat = system.spawn(groupChat({ participants, termination }), { name });
      await chat.ask('start', { task: 'go' });
      return chat.ask('outcome', {});
    };
    const tokens = await run(anyOf(tokenBudget(50), maxTurns(20)), 'tokens');
    expect(tokens.reason).toBe('tokens');
    expect(tokens.usage.inputTokens + tokens.usage.outputTokens).toBeGreaterThanOrEqual(50);
    const cost = await run(
      anyOf(costBudget(0.0005, { inputPerMillion: 1, outputPerMillion: 10 }), maxTurns(50)),
      'cost',
    );
    expect(cost.reason).toBe('cost');
    expect((cost.usage.inputTokens * 1 + cost.usage.outputTokens * 10) / 1e6).toBeGreaterThanOrEqual(0.0005);
    await expect(
      run(
        when((v) => v.turns.some((t) => t.speaker === 'cy'), 'cy spoke'),
        'fn',
      ),
    ).resolves.toMatchObject({
      reason: 'function',
      detail: 'cy spoke',
      turns: 3,
    });
    const both = await run(
      allOf(
        maxTurns(2),
        when((v) => v.turns.at(-1)?.speaker === 'ann'),
      ),
      'all',
    );
    expect(both).toMatchObject({ reason: 'all', turns: 4 });
    const outside = externalStop();
    const gate = { open: false };
    const slow = [{ name: 'slow', ref: runActor(system, 'slow', async () => 'ok') }];
    const chat = system.spawn(
      groupChat({
        participants: slow,
        termination: anyOf(
          outside,
          when(() => gate.open),
        ),
      }),
      { name: 'outside' },
    );
    await chat.ask('start', { task: 'go' });
    await vi.waitFor(async () => expect((await chat.ask('status', {})).turns).toBeGreaterThan(2));
    outside.stop('the user left');
    expect(await chat.ask('outcome', {})).toMatchObject({ reason: 'external', detail: 'the user left' });
  });

  it('ends at a stop message, in the middle of a turn that never comes back', async () => {
    const { system } = testSystem();
    const never = runActor(system, 'never', () => new Promise<string>(() => {}));
    const chat = system.spawn(
      groupChat({ participants: [{ name: 'never', ref: never }], termination: maxTurns(3) }),
    );
    await chat.ask('start', { task: 'wait' });
    chat.tell('stop', { reason: 'enough' });
    expect(await chat.ask('outcome', {})).toMatchObject({ reason: 'stopped', detail: 'enough', turns: 0 });
  });
});

describe('group chat: faults', () => {
  it('records a crashed participant and a timed-out one as failed turns and goes on', async () => {
    const { system, events } = testSystem();
    const { participants } = trio(system);
    let crashes = 0;
    const crasher = runActor(system, 'crasher', () => {
      crashes++;
      throw new Error('boom');
    });
    const sleeper = runActor(system, 'sleeper', () => new Promise<string>(() => {}));
    const chat = system.spawn(
      groupChat({
        participants: [
          participants[0]!,
          { name: 'crasher', ref: crasher },
          { name: 'sleeper', ref: sleeper, turnTimeoutMs: 100 },
          participants[1]!,
        ],
        termination: maxTurns(8),
      }),
    );
    await chat.ask('start', { task: 't' });
    expect(await chat.ask('outcome', {})).toMatchObject({ reason: 'max-turns', turns: 8 });
    const turns = await chat.ask('transcript', {});
    expect(turns.map((t) => [t.speaker, t.error?.code])).toEqual([
      ['ann', undefined],
      ['crasher', 'ERR_ACTOR_CRASHED'],
      ['sleeper', 'ERR_ASK_TIMEOUT'],
      ['bob', undefined],
      ['ann', undefined],
      ['crasher', 'ERR_ACTOR_CRASHED'],
      ['sleeper', 'ERR_ASK_TIMEOUT'],
      ['bob', undefined],
    ]);
    expect(crashes).toBe(2);
    const failed = events.filter((e): e is GroupChatTurnEvent => e.type === 'group-chat-turn' && !e.ok);
    expect(failed.map((e) => e.error)).toEqual([
      'ERR_ACTOR_CRASHED',
      'ERR_ASK_TIMEOUT',
      'ERR_ACTOR_CRASHED',
      'ERR_ASK_TIMEOUT',
    ]);
  });

  it('records a turn whose input could not be made (a render that throws) as failed, and goes on', async () => {
    const { system } = testSystem();
    const { participants } = trio(system);
    const chat = system.spawn(
      groupChat({
        participants,
        render: (view, speaker) => {
          if (speaker === 'bob') throw new TypeError('no input for bob');
          return `${view.task} ${speaker}`;
        },
        termination: maxTurns(3),
      }),
    );
    await chat.ask('start', { task: 't' });
    await chat.ask('outcome', {});
    const turns = await chat.ask('transcript', {});
    expect(turns.map((t) => [t.speaker, t.error?.code])).toEqual([
      ['ann', undefined],
      ['bob', 'TypeError'],
      ['cy', undefined],
    ]);
  });

  it('ends failed after maxFailedTurns failed turns in a row', async () => {
    const { system } = testSystem();
    const down = runActor(system, 'down', () => {
      throw new Error('down');
    });
    const chat = system.spawn(
      groupChat({
        participants: [{ name: 'down', ref: down }],
        termination: maxTurns(10),
        maxFailedTurns: 2,
      }),
    );
    await chat.ask('start', { task: 't' });
    expect(await chat.ask('outcome', {})).toMatchObject({ reason: 'failed', turns: 2 });
  });

  it('waits for a human participant (an external ref) until their answer, within the deadline', async () => {
    const { system } = testSystem();
    const { participants } = trio(system);
    let answer: ((text: string) => void) | undefined;
    const human = runActor(system, 'human', () => new Promise<string>((resolve) => (answer = resolve)));
    const chat = system.spawn(
      groupChat({
        participants: [participants[0]!, { name: 'human', ref: human, turnTimeoutMs: 30_000 }],
        termination: maxTurns(3),
      }),
    );
    await chat.ask('start', { task: 'review my plan' });
    await vi.waitFor(() => expect(answer).toBeDefined());
    expect(await chat.ask('status', {})).toMatchObject({ phase: 'running', turns: 1 });
    answer!('looks good');
    expect(await chat.ask('outcome', {})).toMatchObject({
      turns: 3,
      last: expect.stringContaining('ann says'),
    });
    expect((await chat.ask('transcript', { from: 2 }))[0]).toMatchObject({
      speaker: 'human',
      text: 'looks good',
    });
  });

  it('refuses bad definitions with ERR_INVALID_OPTION naming the part', () => {
    const { system } = testSystem();
    const ref = runActor(system, 'p', () => 'x');
    const cases: [unknown, string][] = [
      [{ participants: [], termination: maxTurns(1) }, 'participants'],
      [
        {
          participants: [
            { name: 'a', ref },
            { name: 'a', ref },
          ],
          termination: maxTurns(1),
        },
        'participants[1].name',
      ],
      [{ participants: [{ name: 'a', ref: 'nope' }], termination: maxTurns(1) }, 'participants[0].ref'],
      [{ participants: [{ name: 'a', ref }] }, 'termination'],
      [{ participants: [{ name: 'a', ref }], termination: maxTurns(1), selection: 7 }, 'selection'],
      [{ participants: [{ name: 'a', ref }], termination: maxTurns(1), turnTimeoutMs: 0 }, 'turnTimeoutMs'],
    ];
    for (const [options, part] of cases) {
      let thrown: unknown;
      try {
        groupChat(options as Parameters<typeof groupChat>[0]);
      } catch (error) {
        thrown = error;
      }
      expect(TroupeError.is(thrown, 'ERR_INVALID_OPTION'), part).toBe(true);
      expect((thrown as TroupeError).details?.option, part).toBe(part);
    }
    expect(() => maxTurns(0)).toThrow(/maxTurns/);
    expect(() => anyOf()).toThrow(/anyOf/);
  });
});

describe('group chat: durable', () => {
  const pg = postgresJournals('chat');

  it('continues on a new host from its last recorded turn, never taking a recorded turn again', async () => {
    const journal = await pg.journal();
    const runs: string[] = [];
    let hold = true;
    let held: (() => void) | undefined;
    /** One host: three participants that record each run's id; "bob" holds turn 5 while `hold`. */
    const host = () => {
      const system = createSystem({ name: 'chat-host', deadLetterLog: () => {} });
      const participants = ['ann', 'bob', 'cy'].map((name) => ({
        name,
        ref: system.spawn(
          behavior({
            protocols: [AgentProtocol],
            handlers: {
              run: async ({ runId }) => {
                runs.push(runId!);
                if (hold && runId!.endsWith('-5')) await new Promise<void>((resolve) => (held = resolve));
                return {
                  ok: true as const,
                  run: runId!,
                  output: `${name}@${runId}`,
                  steps: 1,
                  usage: { inputTokens: 2, outputTokens: 3 },
                };
              },
              history: () => [],
            },
          }),
          { name },
        ),
      }));
      const chat = system.spawn(groupChat({ participants, journal, termination: maxTurns(9) }), {
        name: 'durable',
      });
      return { system, chat };
    };
    const first = host();
    await first.chat.ask('start', { task: 'long task' });
    await vi.waitFor(() => expect(held).toBeDefined());
    expect(await first.chat.ask('status', {})).toMatchObject({ turns: 4 });
    await first.system.close();
    held!();
    hold = false;
    const second = host();
    try {
      // Spawned again with the same journal, it recovers and goes on by itself.
      const outcome = await second.chat.ask('outcome', {}, { timeoutMs: 10_000 });
      expect(outcome).toMatchObject({
        reason: 'max-turns',
        turns: 9,
        usage: { inputTokens: 18, outputTokens: 27 },
      });
      const turns = await second.chat.ask('transcript', {});
      expect(turns.map((t) => t.turn)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(speakers(turns)).toEqual(['ann', 'bob', 'cy', 'ann', 'bob', 'cy', 'ann', 'bob', 'cy']);
      // Turns 1 to 4 were recorded: asked once. Turn 5 was in flight: asked again. None twice otherwise.
      const ids = runs.map((r) => Number(r.slice(r.lastIndexOf('-') + 1)));
      expect(ids).toEqual([1, 2, 3, 4, 5, 5, 6, 7, 8, 9]);
      expect(turns[4]!.text).toBe('bob@chat-durable-5');
      // The journal holds the transcript: started, nine turns, ended.
      const stored = await journal.readStream('chat-durable');
      expect(stored.map((e) => e.type)).toEqual(['started', ...Array(9).fill('turn'), 'ended']);
    } finally {
      await second.system.close();
    }
  }, 60_000);
});
