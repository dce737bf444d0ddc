// agents example: a planner, two researchers and a writer under one supervisor. They run on a
// scripted model by default (no key, no network); TROUPE_MODEL=openai:<model> or
// anthropic:<model> switches them to a real provider (keys from OPENAI_API_KEY or ANTHROPIC_API_KEY,
// OPENAI_BASE_URL for Ollama, vLLM, llama.cpp or LM Studio).
import { z } from 'zod';
import {
  type ActorSystem,
  AgentProtocol,
  agent,
  anthropicModel,
  createBudgets,
  createSystem,
  type ModelPort,
  type ModelRequest,
  openAIModel,
  type ScriptStep,
  scriptedModel,
  supervisor,
  tool,
  usageLedger,
} from '../index.js';

const NOTES: Record<string, string> = {
  tides: 'the moon and the sun pull the oceans, twice a day',
  currents: 'winds, the spin of the earth and salt drive them',
};

// A tool: its arguments are checked against the schema before it runs.
const lookup = tool({
  name: 'lookup',
  description: 'Looks up the note on one topic',
  input: z.object({ topic: z.string() }),
  idempotent: true,
  run: ({ topic }) => NOTES[topic] ?? `no note on ${topic}`,
});

const lastOf = (request: ModelRequest, role: string) =>
  [...request.messages].reverse().find((m) => m.role === role)?.content ?? '';

// What each role answers on the scripted model.
const scripts: Record<'planner' | 'researcher' | 'writer', ScriptStep[]> = {
  planner: ['tides\ncurrents'],
  researcher: [
    (request) => ({ toolCalls: [{ name: 'lookup', arguments: { topic: lastOf(request, 'user') } }] }),
    (request) => `${lastOf(request, 'user')}: ${lastOf(request, 'tool')}`,
  ],
  writer: [(request) => `The sea moves. ${lastOf(request, 'user').replaceAll('\n', '; ')}.`],
};

function modelFor(role: keyof typeof scripts, system: ActorSystem): ModelPort {
  const [provider, name] = (process.env.TROUPE_MODEL ?? '').split(':');
  // A real provider is guarded (a breaker, retries honouring Retry-After, a deadline); with `system`
  // its breaker's transitions are events on the system's stream.
  if (provider === 'openai' && name) return openAIModel({ model: name, guard: { system } });
  if (provider === 'anthropic' && name) return anthropicModel({ model: name, guard: { system } });
  return scriptedModel({ name: `scripted-${role}`, steps: scripts[role] });
}

const system = createSystem({ name: 'newsroom' });
const usage = usageLedger();
const budgets = createBudgets();
const member = (role: keyof typeof scripts, instructions: string, research = 0) =>
  agent({
    model: modelFor(role, system),
    instructions,
    tools: role === 'researcher' ? [lookup] : [],
    maxSteps: 4,
    usage,
    budgets,
    capabilities: { [role]: 1, research },
  });

const team = system.spawn(
  supervisor({
    children: [
      {
        id: 'planner',
        behavior: member('planner', 'Answer with topics only, one per line: tides, currents.'),
      },
      { id: 'researcher-1', behavior: member('researcher', 'Look the topic up, then sum it up.', 1) },
      { id: 'researcher-2', behavior: member('researcher', 'Look the topic up, then sum it up.', 1) },
      { id: 'writer', behavior: member('writer', 'Write one short paragraph from the findings.') },
    ],
  }),
  { name: 'team' },
);
await team.ask('whichChildren', {});
budgets.limit(team.address, { calls: 20 }); // the whole team: at most 20 model calls

const route = (capability: string) => system.route({ capability }, AgentProtocol)!;
// Real models take longer than the default ask timeout (5 s).
const runFor = { timeoutMs: 120_000 };
const plan = await route('planner').ask('run', { input: 'Plan a short piece on the sea.' }, runFor);
if (!plan.ok) {
  // A provider that cannot be reached, past its retries, is a typed answer, not a crash.
  console.error(`The planner failed: ${plan.error.code}: ${plan.error.message}`);
  await system.drain();
  process.exit(1);
}
const topics = plan.output
  .split('\n')
  .map((t) => t.trim())
  .filter(Boolean);
// Each task goes to the least busy researcher.
const findings = await Promise.all(
  topics.map((topic) => route('research').ask('run', { input: topic }, runFor)),
);
const text = findings.map((f) => (f.ok ? f.output : f.error.code)).join('\n');
const piece = await route('writer').ask('run', { input: text }, runFor);
console.log(piece.ok ? piece.output : piece.error.message);
const total = usage.bySubtree(team.address);
console.log(`${total.calls} model calls, ${total.inputTokens + total.outputTokens} tokens`);
await system.drain();
