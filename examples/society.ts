// society example: a research society. A planner splits a question into sub-questions; a contract net
// among the researchers (members of a group) awards each one; critics vote on which finding leads; a
// writer writes the piece; a publishing saga (reserve a slot, publish, notify) runs, the first time
// with an injected failure so its compensations show, then again. Progress is printed live from the
// system's event stream. It runs on a scripted model by default (no key, no network);
// TROUPE_MODEL=openai:<model> or anthropic:<model> switches the agents to a real provider.
import {
  type ActorSystem,
  AgentProtocol,
  agent,
  anthropicModel,
  asAgent,
  contractNet,
  createSystem,
  formatUsage,
  inMemoryJournal,
  type ModelPort,
  type ModelRequest,
  openAIModel,
  type ScriptStep,
  type SystemEvent,
  saga,
  scriptedModel,
  usageLedger,
  vote,
  workflowEngine,
} from '../index.js';

const NOTES: Record<string, string> = {
  tides: 'the moon and the sun pull the oceans, twice a day',
  currents: 'winds, the spin of the earth and salt drive them',
  waves: 'wind blowing over the water makes them',
};

const lastUser = (request: ModelRequest) =>
  [...request.messages].reverse().find((m) => m.role === 'user')?.content ?? '';

// What each role answers on the scripted model: a researcher bids on a call for proposals (its cost
// depends on its skill at the topic) and answers a task it was awarded.
const researcher =
  (name: string, skill: Record<string, number>): ScriptStep =>
  (request) => {
    const text = lastUser(request);
    const topic = Object.keys(NOTES).find((t) => text.includes(t)) ?? 'unknown';
    if (text.startsWith('BID')) return skill[topic] === undefined ? 'REFUSE' : String(skill[topic]);
    return `${topic}: ${NOTES[topic] ?? 'no note'} (found by ${name})`;
  };
const scripts = {
  planner: ['tides\ncurrents\nwaves'] as ScriptStep[],
  ada: [researcher('ada', { tides: 3, currents: 8 })],
  bo: [researcher('bo', { currents: 2, waves: 6, tides: 9 })],
  cy: [researcher('cy', { waves: 4 })],
  critic: [
    (request: ModelRequest) => (lastUser(request).includes('tides') ? 'tides' : 'waves'),
  ] as ScriptStep[],
  writer: [(request: ModelRequest) => `The sea moves. ${lastUser(request).split('\n').slice(1).join(' ')}`],
};
type Role = keyof typeof scripts;

function modelFor(role: Role, system: ActorSystem): ModelPort {
  const [provider, name] = (process.env.TROUPE_MODEL ?? '').split(':');
  if (provider === 'openai' && name) return openAIModel({ model: name, guard: { system } });
  if (provider === 'anthropic' && name) return anthropicModel({ model: name, guard: { system } });
  return scriptedModel({ name: `scripted-${role}`, steps: scripts[role] });
}

// The publishing saga. `notify` fails on the first attempt (an injected fault), so the completed
// steps are compensated in reverse; the second attempt goes through.
let notifyFaults = 1;
const publishing = saga({
  name: 'publish',
  steps: [
    {
      name: 'reserve-slot',
      run: () => 'slot-9am',
      compensate: ({ result }) => say(`  undo: release ${result}`),
    },
    { name: 'publish', run: () => 'post-42', compensate: ({ result }) => say(`  undo: unpublish ${result}`) },
    {
      name: 'notify',
      run: () => {
        if (notifyFaults-- > 0) throw new Error('the mail server is down (injected)');
        return 'readers notified';
      },
    },
  ],
});

const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [publishing] });
const system = createSystem({ name: 'research', kinds: { workflow: engine.kind } });
const usage = usageLedger();
const started = system.clock.now();
const say = (line: string) =>
  console.log(`[${String(Math.round(system.clock.now() - started)).padStart(5)} ms] ${line}`);

// Live progress, from the one event stream.
const name = (address: string) => address.split('/').pop() ?? address;
system.events$.subscribe((event: SystemEvent) => {
  switch (event.type) {
    case 'agent-run':
      if (event.phase !== 'started')
        say(`  ${name(event.agent)} ${event.phase} a run (${event.steps} model calls)`);
      break;
    case 'contract-net-round':
      say(
        `contract net ${event.round}: ${event.bids} bids, ${event.refusals} refusals, ${event.status}${event.winner === undefined ? '' : ` to ${name(event.winner)} at ${event.price}`}`,
      );
      break;
    case 'society-vote':
      say(`vote: ${event.ballots} ballots, ${event.decided ? `winner ${event.winner}` : event.reason}`);
      break;
    case 'workflow-step':
      say(
        `saga ${event.workflow}: ${event.step} ${event.status}${event.error ? ` (${event.error.code})` : ''}`,
      );
      break;
    case 'workflow-ended':
      say(`saga ${event.workflow} ${event.ok ? 'done' : `failed: ${event.error?.code}`}`);
      break;
  }
});

const spawnAgent = (role: Role, instructions: string) =>
  system.spawn(agent({ model: modelFor(role, system), instructions, maxSteps: 2, usage }), { name: role });

const planner = spawnAgent('planner', 'Split the question into topics, one per line.');
for (const role of ['ada', 'bo', 'cy'] as const) {
  system.groups.join(
    'researchers',
    spawnAgent(role, 'Bid a cost for a topic, or REFUSE; when awarded, answer it.'),
  );
}
const critics = [1, 2, 3].map((i) =>
  asAgent(system.spawn(agent({ model: modelFor('critic', system), usage }), { name: `critic-${i}` })),
);
const writer = spawnAgent('writer', 'Write one paragraph from the findings.');

const question = 'What moves the sea?';
say(`question: ${question}`);
const plan = await planner.ask('run', { input: question }, { timeoutMs: 60_000 });
if (!plan.ok) throw new Error(`the planner failed: ${plan.error.code}`);
const topics = plan.output
  .split('\n')
  .map((t: string) => t.trim())
  .filter((t: string) => t.length > 0);
say(`planner: ${topics.join(', ')}`);

const findings: string[] = [];
for (const topic of topics) {
  const outcome = await contractNet({
    system,
    members: () => system.groups.members('researchers', AgentProtocol).map(asAgent),
    task: { topic },
    deadlineMs: 30_000,
    prompts: {
      propose: (task) => `BID ${JSON.stringify(task)}`,
      award: (task) => `DO ${JSON.stringify(task)}`,
    },
  });
  if (outcome.status === 'awarded') findings.push(String(outcome.result));
}

const ballot = await vote({
  system,
  voters: critics,
  question: `Which finding should lead?\n${findings.join('\n')}`,
  choices: topics,
  rule: { kind: 'plurality' },
  deadlineMs: 30_000,
});
const lead = ballot.winner ?? topics[0]!;
findings.sort((a, b) => Number(b.startsWith(lead)) - Number(a.startsWith(lead)));

const piece = await writer.ask(
  'run',
  { input: `Write it up:\n${findings.join('\n')}` },
  { timeoutMs: 60_000 },
);
if (!piece.ok) throw new Error(`the writer failed: ${piece.error.code}`);
say(`writer: ${piece.output}`);

for (const attempt of [1, 2]) {
  const outcome = await engine.run(system, publishing, `publish-${attempt}`, {});
  if (outcome.ok) break;
  say(
    `publishing attempt ${attempt} failed (${outcome.error.code}), compensated: ${outcome.compensated.join(', ')}`,
  );
}

say(`done: ${topics.length} topics, lead "${lead}", ${formatUsage(usage.total())}`);
await system.drain();
