/**
 * The agent loop end to end on the scripted model: tool calls, invalid arguments, unknown tools,
 * deadlines, the step limit, budgets, usage accounting, replay, crash recovery from the journal and
 * capability routing.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  AgentProtocol,
  type AgentRunEvent,
  type AgentStepEvent,
  agent,
  behavior,
  type ChatMessage,
  createBudgets,
  createSystem,
  defineProtocol,
  inMemoryJournal,
  type ModelPort,
  type ModelRequest,
  recorder,
  replay,
  type ScriptStep,
  type SystemEvent,
  scriptedModel,
  supervisor,
  TroupeError,
  tell,
  tool,
  usageLedger,
} from '../../index.js';
import { settle } from '../../runtime/testkit/index.js';
import { postgresJournals } from '../memory/postgres-journals.js';

const pg = postgresJournals('agents');
const systems: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.splice(0).map((s) => s.close()));
});

function system(name = 'agents'): { system: ActorSystem; events: (AgentStepEvent | AgentRunEvent)[] } {
  const s = createSystem({ name });
  systems.push(s);
  const events: (AgentStepEvent | AgentRunEvent)[] = [];
  s.events$.subscribe((e) => {
    if (e.type === 'agent-step' || e.type === 'agent-run') events.push(e);
  });
  return { system: s, events };
}

const lastMessage = (request: ModelRequest): ChatMessage => request.messages[request.messages.length - 1]!;

/** Every tool call in the conversation has exactly one result, right after its assistant message. */
function expectPaired(
  history: readonly {
    role: string;
    toolCallId?: string;
    toolCalls?: readonly { id: string }[] | undefined;
  }[],
): void {
  for (let i = 0; i < history.length; i++) {
    const m = history[i]!;
    if (m.role !== 'assistant' || m.toolCalls === undefined) continue;
    const results = history.slice(i + 1, i + 1 + m.toolCalls.length);
    expect(results.map((r) => (r.role === 'tool' ? r.toolCallId : r.role))).toEqual(
      m.toolCalls.map((c) => c.id),
    );
  }
}

function weatherTool(runs: string[] = []) {
  return tool({
    name: 'weather',
    description: 'The weather in a city',
    input: z.object({ city: z.string().min(1) }),
    idempotent: true,
    run: ({ city }) => {
      runs.push(city);
      return { city, sky: 'clear' };
    },
  });
}

/** A step list that counts the model's calls. */
function counted(steps: ScriptStep[]): { model: ModelPort; calls: () => number } {
  let calls = 0;
  const inner = scriptedModel({ steps });
  return {
    model: {
      name: inner.name,
      complete: (r, o) => {
        calls++;
        return inner.complete(r, o);
      },
    },
    calls: () => calls,
  };
}

describe('agent loop', () => {
  it('calls the model, runs the tool, calls the model again and answers; every step is an event', async () => {
    const { system: s, events } = system();
    const ran: string[] = [];
    const model = scriptedModel({
      steps: [
        { toolCalls: [{ name: 'weather', arguments: { city: 'Oslo' } }] },
        (req) => `It is ${JSON.parse((lastMessage(req) as { content: string }).content).sky} in Oslo.`,
      ],
    });
    const a = s.spawn(agent({ model, instructions: 'Be brief.', tools: [weatherTool(ran)] }), {
      name: 'forecaster',
    });
    const outcome = await a.ask('run', { input: 'Weather in Oslo?' });
    expect(outcome).toMatchObject({ ok: true, run: 'run-1', output: 'It is clear in Oslo.', steps: 2 });
    expect(ran).toEqual(['Oslo']);
    const history = await a.ask('history', {});
    expect(history.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
    expect(history[2]).toMatchObject({
      role: 'tool',
      name: 'weather',
      content: '{"city":"Oslo","sky":"clear"}',
    });
    expect(
      events.map((e) =>
        e.type === 'agent-run'
          ? `run:${e.phase}`
          : `${e.kind}:${e.name}#${e.step}${e.error ? `:${e.error}` : ''}`,
      ),
    ).toEqual(['run:started', 'model:scripted#1', 'tool:weather#1', 'model:scripted#2', 'run:finished']);
    const first = events[1] as AgentStepEvent;
    expect(first.toolCalls).toEqual(['weather']);
    expect(first.usage!.inputTokens).toBeGreaterThan(0);
    expect(first.agent).toBe(a.address);
  });

  it('gives invalid tool arguments back to the model as an error, without running the tool', async () => {
    const { system: s, events } = system();
    const ran: string[] = [];
    let seen: ChatMessage | undefined;
    const model = scriptedModel({
      steps: [
        { toolCalls: [{ name: 'weather', arguments: { town: 'Oslo' } }] },
        (req) => {
          seen = lastMessage(req);
          return 'I could not check the weather.';
        },
      ],
    });
    const a = s.spawn(agent({ model, tools: [weatherTool(ran)] }), { name: 'careless' });
    const outcome = await a.ask('run', { input: 'Weather?' });
    expect(outcome.ok).toBe(true);
    expect(ran).toEqual([]);
    expect(seen).toMatchObject({ role: 'tool', isError: true });
    expect((seen as { content: string }).content).toMatch(/^ERR_VALIDATION: .*city/);
    expect(
      events.some((e) => e.type === 'agent-step' && e.kind === 'tool' && e.error === 'ERR_VALIDATION'),
    ).toBe(true);
  });

  it('answers a call of an unknown tool with ERR_TOOL_FAILED naming the tools', async () => {
    const { system: s } = system();
    const model = scriptedModel({ steps: [{ toolCalls: [{ name: 'teleport', arguments: {} }] }, 'done'] });
    const a = s.spawn(agent({ model, tools: [weatherTool()] }), { name: 'dreamer' });
    await a.ask('run', { input: 'Go' });
    const history = await a.ask('history', {});
    expect(history[2]).toMatchObject({ role: 'tool', isError: true });
    expect((history[2] as { content: string }).content).toMatch(
      /ERR_TOOL_FAILED: there is no tool "teleport"; the tools are: weather/,
    );
  });

  it('aborts a tool past its deadline and tells the model ERR_CALL_TIMEOUT', async () => {
    const { system: s } = system();
    let aborted = false;
    const slow = tool({
      name: 'slow',
      description: 'Never answers',
      input: z.object({}),
      timeoutMs: 20,
      guard: { retry: false },
      run: (_args, { signal }) =>
        new Promise((_, reject) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            reject(signal.reason);
          });
        }),
    });
    const model = scriptedModel({ steps: [{ toolCalls: [{ name: 'slow', arguments: {} }] }, 'gave up'] });
    const a = s.spawn(agent({ model, tools: [slow] }), { name: 'patient' });
    expect(await a.ask('run', { input: 'Wait' })).toMatchObject({ ok: true, output: 'gave up' });
    expect(aborted).toBe(true);
    expect(((await a.ask('history', {}))[2] as { content: string }).content).toMatch(/^ERR_CALL_TIMEOUT/);
  });

  it('stops at the step limit with ERR_STEP_LIMIT, and the calls of the last step get an error result', async () => {
    const { system: s, events } = system();
    const { model, calls } = counted([{ toolCalls: [{ name: 'weather', arguments: { city: 'Bergen' } }] }]);
    const ran: string[] = [];
    const a = s.spawn(agent({ model, tools: [weatherTool(ran)], maxSteps: 3 }), { name: 'looper' });
    const outcome = await a.ask('run', { input: 'Loop' });
    expect(outcome).toMatchObject({ ok: false, steps: 3, error: { code: 'ERR_STEP_LIMIT' } });
    expect(calls()).toBe(3);
    expect(ran).toHaveLength(2);
    const history = await a.ask('history', {});
    expect(history[history.length - 1]).toMatchObject({ role: 'tool', isError: true });
    expect(events[events.length - 1]).toMatchObject({
      type: 'agent-run',
      phase: 'failed',
      error: 'ERR_STEP_LIMIT',
    });
    // The conversation stays valid for the next run: every tool call has its result.
    expect((await a.ask('run', { input: 'Again' })).ok).toBe(false);
    expectPaired(await a.ask('history', {}));
  });
});

describe('budgets and usage', () => {
  it('refuses the call past an agent budget before sending it, and the run ends with ERR_BUDGET_EXCEEDED', async () => {
    const { system: s } = system();
    const budgets = createBudgets();
    const { model, calls } = counted([
      { toolCalls: [{ name: 'weather', arguments: { city: 'Rome' } }] },
      'done',
    ]);
    const a = s.spawn(agent({ model, tools: [weatherTool()], budgets }), { name: 'spender' });
    budgets.limit(a.address, { calls: 3 });
    expect((await a.ask('run', { input: 'one' })).ok).toBe(true);
    const second = await a.ask('run', { input: 'two' });
    expect(second).toMatchObject({ ok: false, error: { code: 'ERR_BUDGET_EXCEEDED' } });
    expect(calls()).toBe(3);
    expect(budgets.spent(a.address).calls).toBe(3);
  });

  it('accounts tokens, calls and cost per agent, per model and per subtree, and a subtree budget binds its agents', async () => {
    const { system: s } = system();
    const usage = usageLedger({
      prices: { scripted: { inputPerMillion: 1_000_000, outputPerMillion: 2_000_000 } },
    });
    const budgets = createBudgets();
    const model = scriptedModel({ steps: ['ok'] });
    const Team = defineProtocol('test.team', { ping: tell(z.object({})) });
    const team = s.spawn(
      behavior({
        protocols: [Team],
        handlers: { ping: () => {} },
        preStart: (ctx) => {
          ctx.spawn(agent({ model, usage, budgets }), { name: 'a' });
          ctx.spawn(agent({ model, usage, budgets }), { name: 'b' });
        },
      }),
      { name: 'team' },
    );
    await settle(s);
    const [a, b] = s.find(AgentProtocol);
    expect(a && b).toBeTruthy();
    budgets.limit(team.address, { calls: 3 });
    await a!.ask('run', { input: 'x' });
    await b!.ask('run', { input: 'y' });
    await a!.ask('run', { input: 'z' });
    expect(await b!.ask('run', { input: 'w' })).toMatchObject({
      ok: false,
      error: { code: 'ERR_BUDGET_EXCEEDED' },
    });
    const ua = usage.byAgent(a!.address);
    expect(ua.calls).toBe(2);
    expect(ua.costUsd).toBeCloseTo(ua.inputTokens + 2 * ua.outputTokens);
    expect(usage.bySubtree(team.address).calls).toBe(3);
    expect(usage.byModel('scripted').calls).toBe(3);
    expect(usage.total()).toEqual(usage.bySubtree(team.address));
  });
});

describe('record and replay', () => {
  it('replays a run without the model or the tools: the same outputs and the same events', async () => {
    const steps: ScriptStep[] = [
      {
        text: 'Checking.',
        toolCalls: [
          { name: 'weather', arguments: { city: 'Lima' } },
          { name: 'weather', arguments: { place: 1 } },
        ],
      },
      (req) => `Done after ${req.messages.length} messages.`,
    ];
    const toolRuns: string[] = [];
    const runOnce = async (
      name: string,
      wire: (tools: ReturnType<typeof weatherTool>[]) => {
        model: ModelPort;
        tools: ReturnType<typeof weatherTool>[];
      },
    ) => {
      const { system: s, events } = system(name);
      const { model, tools } = wire([weatherTool(toolRuns)]);
      const a = s.spawn(agent({ model, tools }), { name: 'scout' });
      const outputs = [
        await a.ask('run', { input: 'Weather in Lima?' }),
        await a.ask('run', { input: 'And now?' }),
      ];
      const strip = events.map((e) => {
        const { at: _at, agent: _agent, ...rest } = e;
        delete (rest as { ms?: number }).ms;
        return rest;
      });
      return { outputs, events: strip, history: await a.ask('history', {}) };
    };
    const rec = recorder();
    const original = await runOnce('recorded', (tools) => ({
      model: rec.model(scriptedModel({ steps })),
      tools: rec.tools(tools),
    }));
    expect(rec.entries.map((e) => e.kind)).toEqual([
      'model',
      'tool',
      'tool',
      'model',
      'model',
      'tool',
      'tool',
      'model',
    ]);
    expect(toolRuns).toEqual(['Lima', 'Lima']);
    const record = JSON.parse(JSON.stringify(rec.entries));
    const rp = replay(record);
    // The replay's tools are the real ones, wrapped: none of them may run.
    const replayed = await runOnce('replayed', (tools) => ({ model: rp.model, tools: rp.tools(tools) }));
    expect(replayed).toEqual(original);
    expect(rp.remaining).toBe(0);
    expect(toolRuns).toEqual(['Lima', 'Lima']);
  });

  it('refuses a run that drifts from its record with ERR_REPLAY_MISMATCH', async () => {
    const { system: s } = system();
    const rec = recorder();
    const first = s.spawn(agent({ model: rec.model(scriptedModel({ steps: ['hi'] })) }), { name: 'one' });
    await first.ask('run', { input: 'Hello' });
    const rp = replay(rec.entries);
    const second = s.spawn(agent({ model: rp.model }), { name: 'two' });
    const outcome = await second.ask('run', { input: 'Something else' });
    expect(outcome).toMatchObject({ ok: false, error: { code: 'ERR_REPLAY_MISMATCH' } });
  });
});

describe('conversation memory', () => {
  it.each([
    ['in memory', async () => inMemoryJournal()],
    ['on Postgres', () => pg.journal()],
  ] as const)(
    'continues the conversation from the journal (%s) after a crash mid-run',
    async (_where, open) => {
      const { system: s } = system();
      const journal = await open();
      let crash = true;
      const model = scriptedModel({
        steps: [
          (req) => {
            const users = req.messages.filter((m) => m.role === 'user').map((m) => m.content);
            return users.at(-1) === 'Look it up'
              ? { toolCalls: [{ name: 'weather', arguments: { city: 'Nuuk' } }] }
              : `I remember: ${users.join(' | ')}`;
          },
          () => {
            if (crash) {
              crash = false;
              throw new Error('defect in the model adapter');
            }
            return 'late answer';
          },
        ],
      });
      const a = s.spawn(agent({ model, tools: [weatherTool()], journal }), { name: 'memo' });
      expect(await a.ask('run', { input: 'My name is Ada' })).toMatchObject({ ok: true });
      const crashed = await a.ask('run', { input: 'Look it up' }).catch((e: unknown) => e);
      expect(TroupeError.is(crashed, 'ERR_ACTOR_CRASHED')).toBe(true);
      // Restarted from the journal: run 1, run 2's question, its tool call and the tool's result.
      const history = await a.ask('history', {});
      expect(history.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'tool']);
      const outcome = await a.ask('run', { input: 'Who am I?' });
      expect(outcome).toMatchObject({
        ok: true,
        run: 'run-3',
        output: 'I remember: My name is Ada | Look it up | Who am I?',
      });
      // A new activation (another process, say) reads the same conversation.
      const again = s.spawn(agent({ model, journal, persistenceId: () => 'agent-memo' }), { name: 'memo-2' });
      expect((await again.ask('history', {})).length).toBe(history.length + 2);
    },
  );

  it('gives the calls a crash left unanswered an error result before the next question', async () => {
    const { system: s } = system();
    const journal = inMemoryJournal();
    await journal.append('agent-ghost', [
      { type: 'message', data: { run: 'run-1', message: { role: 'user', content: 'Go' } } },
      {
        type: 'message',
        data: {
          run: 'run-1',
          message: {
            role: 'assistant',
            content: '',
            toolCalls: [{ id: 'c1', name: 'weather', arguments: { city: 'Oslo' } }],
          },
        },
      },
    ]);
    let seen: readonly ChatMessage[] = [];
    const model = scriptedModel({
      steps: [
        (req) => {
          seen = req.messages;
          return 'ok';
        },
      ],
    });
    const a = s.spawn(agent({ model, journal }), { name: 'ghost' });
    await a.ask('run', { input: 'Next' });
    expect(seen.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'user']);
    expect(seen[2]).toMatchObject({ toolCallId: 'c1', isError: true });
  });

  it('fails recovery loudly on a damaged event, naming the stream and version; other agents go on', async () => {
    const s = createSystem({ name: 'damaged' });
    systems.push(s);
    const crashes: SystemEvent[] = [];
    s.events$.subscribe((e) => {
      if (e.type === 'actor-crashed') crashes.push(e);
    });
    const journal = inMemoryJournal();
    await journal.append('agent-broken', [
      { type: 'message', data: { run: 'r', message: { role: 'robot' } } },
    ]);
    const model = scriptedModel({ steps: ['fine'] });
    s.spawn(agent({ model, journal }), { name: 'broken', restart: 'temporary' });
    const healthy = s.spawn(agent({ model, journal }), { name: 'healthy' });
    expect(await healthy.ask('run', { input: 'hi' })).toMatchObject({ ok: true, output: 'fine' });
    const crash = crashes.find((e) => e.type === 'actor-crashed' && e.address.endsWith('/broken'));
    expect((crash as Extract<SystemEvent, { type: 'actor-crashed' }>).error).toMatchObject({
      code: 'ERR_START_FAILED',
      cause: { code: 'ERR_JOURNAL_CORRUPT', details: { stream: 'agent-broken', version: 1 } },
    });
  });
});

describe('runs across restarts and failures', () => {
  it("stops a run whose incarnation ended: it never writes into the restarted agent's conversation", async () => {
    const { system: s } = system();
    const journal = inMemoryJournal();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    // A model that ignores its signal, so only the agent can stop the old run.
    const deaf: ModelPort = {
      name: 'deaf',
      complete: async () => {
        calls++;
        if (calls === 1) await gate;
        return {
          text: `answer ${calls}`,
          toolCalls: [],
          stopReason: 'end',
          usage: { inputTokens: 1, outputTokens: 1 },
          model: 'deaf',
        };
      },
    };
    const Crash = defineProtocol('test.crash', { crash: tell(z.object({})) });
    const team = s.spawn(
      supervisor({
        strategy: 'one_for_all',
        children: [
          { id: 'writer', behavior: agent({ model: deaf, journal }) },
          {
            id: 'crasher',
            behavior: behavior({
              protocols: [Crash],
              handlers: {
                crash: () => {
                  throw new Error('boom');
                },
              },
            }),
          },
        ],
      }),
      { name: 'team' },
    );
    await team.ask('whichChildren', {});
    const writer = s.ref(`${team.address}/writer`, AgentProtocol);
    const restarted: string[] = [];
    s.events$.subscribe((e) => {
      if (e.type === 'actor-restarted') restarted.push(e.address);
    });
    const first = writer.ask('run', { input: 'q1' }).catch((e: unknown) => e);
    await vi.waitFor(() => expect(calls).toBe(1));
    s.ref(`${team.address}/crasher`, Crash).tell('crash', {});
    await vi.waitFor(() => expect(restarted).toContain(writer.address));
    const second = await writer.ask('run', { input: 'q2' });
    release();
    await first;
    // Whatever the old run would still do has happened once the system is quiet.
    await settle(s);
    expect(second).toMatchObject({ ok: true, output: 'answer 2' });
    const history = await writer.ask('history', {});
    expect(history.map((m) => m.content)).toEqual(['q1', 'q2', 'answer 2']);
    const stored = await journal.readStream('agent-writer');
    expect(
      stored.map((e) => (e.data as { message?: { content: string } }).message?.content ?? e.type),
    ).toEqual(['q1', 'q2', 'answer 2', 'run-ended']);
  });

  it('crashes on a journal failure mid-run, and its conversation stays as the journal has it', async () => {
    const { system: s } = system();
    const journal = inMemoryJournal();
    const crashes: string[] = [];
    s.events$.subscribe((e) => {
      if (e.type === 'actor-crashed') crashes.push((e.error as TroupeError).code ?? e.error.message);
    });
    let appends = 0;
    // The same journal, but the agent's third append (its first tool results) fails.
    const flaky = new Proxy(journal, {
      get: (target, key) => {
        if (key === 'append') {
          return (...args: Parameters<typeof journal.append>) =>
            ++appends === 3
              ? Promise.reject(new TroupeError('ERR_JOURNAL_UNAVAILABLE', 'the store went away'))
              : target.append(...args);
        }
        const value = Reflect.get(target, key);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const model = scriptedModel({
      steps: [{ toolCalls: [{ name: 'weather', arguments: { city: 'Oslo' } }] }, 'done'],
    });
    const a = s.spawn(agent({ model, tools: [weatherTool()], journal: flaky }), { name: 'flaky' });
    const error = await a.ask('run', { input: 'go' }).catch((e: unknown) => e);
    expect(TroupeError.is(error, 'ERR_ACTOR_CRASHED')).toBe(true);
    const history = await a.ask('history', {});
    expect(history.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(await a.ask('run', { input: 'again' })).toMatchObject({ ok: true });
    expectPaired(await a.ask('history', {}));
  });

  it('stores text the journal refuses (NUL, lone surrogates) with U+FFFD instead of crashing', async () => {
    const { system: s } = system();
    const journal = inMemoryJournal();
    const echo = tool({
      name: 'echo',
      description: 'Echoes',
      input: z.object({ text: z.string() }),
      run: ({ text }) => `bin\u0000ary ${text}`,
    });
    const model = scriptedModel({
      steps: [{ toolCalls: [{ name: 'echo', arguments: { text: 'a\ud800b' } }] }, 'done'],
    });
    const a = s.spawn(agent({ model, tools: [echo], journal }), { name: 'binary' });
    expect(await a.ask('run', { input: 'x\u0000y', runId: 'r\u0000' })).toMatchObject({
      ok: true,
      run: 'r\ufffd',
    });
    const history = await a.ask('history', {});
    expect(history[0]).toMatchObject({ content: 'x\ufffdy' });
    expect(history[2]).toMatchObject({ content: 'bin\ufffdary a\ufffdb' });
    expect((await journal.readStream('agent-binary')).length).toBe(5);
  });

  it('records a failed model call and replays it as the same typed failure', async () => {
    const { system: s } = system();
    const down: ModelPort = {
      name: 'down',
      complete: () =>
        Promise.reject(new TroupeError('ERR_MODEL_HTTP', 'down answered 503', { details: { status: 503 } })),
    };
    const rec = recorder();
    const first = await s.spawn(agent({ model: rec.model(down) }), { name: 'a' }).ask('run', { input: 'hi' });
    expect(first).toMatchObject({ ok: false, error: { code: 'ERR_MODEL_HTTP' } });
    const rp = replay(JSON.parse(JSON.stringify(rec.entries)));
    const again = await s.spawn(agent({ model: rp.model }), { name: 'b' }).ask('run', { input: 'hi' });
    expect(again).toEqual(first);
  });

  it('prices a model by its name, its bare name or the longest priced prefix', () => {
    const usage = usageLedger({
      prices: {
        'gpt-4o': { inputPerMillion: 5, outputPerMillion: 15 },
        'gpt-4o-mini': { inputPerMillion: 1, outputPerMillion: 2 },
      },
    });
    const million = { inputTokens: 1_000_000, outputTokens: 0 };
    expect(usage.costOf('openai:gpt-4o-mini', million)).toBe(1);
    expect(usage.costOf('gpt-4o-mini-2024-07-18', million)).toBe(1);
    expect(usage.costOf('gpt-4o-2024-08-06', million)).toBe(5);
    expect(usage.costOf('claude-3-5-haiku', million)).toBe(0);
  });
});

describe('capability routing', () => {
  it('routes a task to the live agent with the best score, the least busy among equals', async () => {
    const { system: s } = system();
    const model = scriptedModel({ steps: ['ok'] });
    const r1 = s.spawn(agent({ model, capabilities: { research: 0.6, writing: 0.2 } }), { name: 'r1' });
    const r2 = s.spawn(agent({ model, capabilities: { research: 0.9 } }), { name: 'r2' });
    const w = s.spawn(
      agent({
        model,
        capabilities: (task) => (task.capability === 'writing' && task.words !== undefined ? 0.8 : 0),
      }),
      { name: 'w' },
    );
    expect(s.route({ capability: 'research' }, AgentProtocol)?.address).toBe(r2.address);
    expect(s.route({ capability: 'writing', words: 300 })?.address).toBe(w.address);
    expect(s.route({ capability: 'writing' })?.address).toBe(r1.address);
    expect(s.route({ capability: 'cooking' })).toBeUndefined();
    await s.stop(r2);
    expect(s.route({ capability: 'research' })?.address).toBe(r1.address);
    expect(() => s.route({ capability: '' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    expect(() => agent({ model, capabilities: { research: 'high' } as never })).toThrow(/capabilities/);
    // A scoring function that throws counts as "cannot" for that actor only.
    const flaky = s.spawn(
      agent({
        model,
        capabilities: () => {
          throw new Error('bad score');
        },
      }),
      { name: 'flaky' },
    );
    expect(s.route({ capability: 'research' })?.address).toBe(r1.address);
    await s.stop(flaky);
  });

  it('prefers the agent with the shorter mailbox among equal scores', async () => {
    const { system: s } = system();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let called = 0;
    const slow: ModelPort = {
      name: 'slow',
      complete: async () => {
        called++;
        await gate;
        return {
          text: 'ok',
          toolCalls: [],
          stopReason: 'end',
          usage: { inputTokens: 1, outputTokens: 1 },
          model: 'slow',
        };
      },
    };
    const busy = s.spawn(agent({ model: slow, capabilities: { triage: 1 } }), { name: 'busy' });
    const idle = s.spawn(agent({ model: slow, capabilities: { triage: 1 } }), { name: 'idle' });
    // One run in flight and nothing queued: busy all the same.
    const pending = [busy.ask('run', { input: '1' })];
    await vi.waitFor(() => expect(called).toBe(1));
    expect(s.route({ capability: 'triage' })?.address).toBe(idle.address);
    release();
    await Promise.all(pending);
  });
});
