/**
 * The demo: a small agent shop under supervision, with faults injected at random.
 *
 *   shop (supervisor, one_for_one)
 *   |-- sessions (dynamic supervisor): research agents opened and closed at run time, each on a
 *   |   scripted model (no key, no network) that looks its topic up with a tool, then answers
 *   |-- payments (supervisor, rest_for_one, with backoff)
 *   |   |-- ledger
 *   |   `-- gateway (records every approved charge in the ledger)
 *   `-- inventory
 *
 * Customers ask the agents questions, reserve stock and pay. Every ~300 ms a fault is injected into a
 * random worker or agent (an agent's model throws, a defect that crashes it); every eighth tick a burst of faults trips the payments supervisor's restart intensity,
 * so it fails upward and the shop restarts it. Every random choice comes from generators seeded by
 * `--seed` (faults, traffic and simulated latency each have their own), so runs with one seed make the same choices; only
 * the timing of the real clock varies (which sessions are open when a fault lands, for instance).
 *
 * Run: `npm run demo` or `npx tsx examples/demo.ts --duration 8 --seed 7`.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import {
  type ActorRef,
  AgentProtocol,
  agent,
  ask,
  behavior,
  type Clock,
  createSystem,
  defineProtocol,
  dynamicSupervisor,
  exponential,
  type ModelRequest,
  realClock,
  type SupervisorRef,
  scriptedModel,
  seededRandom,
  sleep,
  startChild,
  supervisor,
  TroupeError,
  tell,
  terminateChild,
  tool,
} from '../index.js';
import { renderTree, shortAddress, watchSystem } from '../ops/index.js';

const USAGE = 'usage: npm run demo -- [--duration <seconds>] [--seed <integer>]';
let args: { duration: string; seed: string; help?: boolean };
try {
  ({ values: args } = parseArgs({
    options: {
      duration: { type: 'string', default: '8' },
      seed: { type: 'string', default: '7' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (error) {
  // A mistyped option is the user's, not a bug: say what is wrong and how to call it, no stack.
  console.error(`demo: ${(error as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (args.help === true) {
  console.log(USAGE);
  process.exit(0);
}
const durationMs = Number(args.duration) * 1000;
const seed = Number(args.seed);
if (!(durationMs > 0) || !Number.isInteger(seed)) {
  console.error(USAGE);
  process.exit(2);
}

// Seeded generators (mulberry32), so the faults are the same on every run with one seed.
const random = seededRandom(seed);
const chaosRandom = seededRandom(seed ^ 0x5eed);
const latencyRandom = seededRandom(seed ^ 0x1a7e);
const pickWith =
  (rng: () => number) =>
  <T>(items: readonly T[]): T | undefined =>
    items[Math.floor(rng() * items.length)];
const pick = pickWith(random);

// Protocols: the schema is the one source of truth for what each actor accepts.

const Chaos = defineProtocol('demo.chaos', {
  fault: tell(z.object({ reason: z.string() })),
});

const Inventory = defineProtocol('demo.inventory', {
  reserve: ask(
    z.object({ sku: z.string(), qty: z.number().int().positive() }),
    z.object({ ok: z.boolean(), left: z.number() }),
  ),
});

const Ledger = defineProtocol('demo.ledger', {
  record: tell(z.object({ orderId: z.string(), cents: z.number().int() })),
  balance: ask(z.object({}), z.number()),
});

const Gateway = defineProtocol('demo.gateway', {
  charge: ask(
    z.object({ orderId: z.string(), cents: z.number().int() }),
    z.object({ approved: z.boolean() }),
  ),
});

const fault = ({ reason }: { reason: string }): never => {
  throw new Error(reason);
};

const NOTES: Record<string, string> = {
  'vector search': 'embed the documents, then rank by cosine similarity',
  'rate limits': 'honour Retry-After and keep a bulkhead per provider',
  'prompt caching': 'put the stable part of the prompt first',
  'tool calling': 'check the arguments against the schema before the tool runs',
  evals: 'record runs, then replay them against each change',
  'fine-tuning': 'only after prompting and retrieval stop improving',
};

/** The agents' one tool: their notes on a topic. */
const notes = tool({
  name: 'notes',
  description: 'The notes on one topic',
  input: z.object({ topic: z.string() }),
  idempotent: true,
  run: ({ topic }) => NOTES[topic] ?? 'no notes',
});

const lastOf = (request: ModelRequest, role: string) =>
  [...request.messages].reverse().find((m) => m.role === role)?.content ?? '';

/** Faults waiting for each session: its model throws on its next call, and the agent crashes. */
const pendingFaults = new Map<string, number>();

/**
 * A research session: an agent whose scripted model (a stand-in for a real one, with its latency)
 * looks its topic up with the tool, then answers from the note.
 */
function researcher(id: string, topic: string) {
  const model = scriptedModel({
    name: `scripted-${id}`,
    latencyMs: 10 + Math.floor(latencyRandom() * 40),
    steps: [
      () => {
        const faults = pendingFaults.get(id) ?? 0;
        if (faults > 0) {
          pendingFaults.set(id, faults - 1);
          throw new Error(`injected fault in the model of ${id}`);
        }
        return { toolCalls: [{ name: 'notes', arguments: { topic } }] };
      },
      (request) => `${lastOf(request, 'user')} On ${topic}: ${lastOf(request, 'tool')}.`,
    ],
  });
  return agent({ model, tools: [notes], instructions: `You research ${topic}.`, maxSteps: 3 });
}

const inventory = behavior({
  protocols: [Inventory, Chaos],
  initialState: () =>
    new Map<string, number>([
      ['gpu-hours', 500],
      ['tokens-1m', 200],
      ['embeddings', 800],
    ]),
  handlers: {
    reserve: ({ sku, qty }, ctx) => {
      const left = ctx.state.get(sku) ?? 0;
      if (left < qty) return { ok: false, left };
      ctx.state.set(sku, left - qty);
      return { ok: true, left: left - qty };
    },
    fault,
  },
});

const ledger = behavior({
  protocols: [Ledger, Chaos],
  initialState: () => ({ cents: 0, orders: 0 }),
  handlers: {
    record: ({ cents }, ctx) => {
      ctx.state.cents += cents;
      ctx.state.orders++;
    },
    balance: (_body, ctx) => ctx.state.cents,
    fault,
  },
});

const gateway = behavior({
  protocols: [Gateway, Chaos],
  handlers: {
    charge: async ({ orderId, cents }, ctx) => {
      await sleep(5 + Math.floor(latencyRandom() * 20), { signal: ctx.signal, clock: ctx.system.clock });
      const approved = cents < 40_000;
      // The ledger is a sibling; look it up by address, since a payments restart replaces it.
      if (approved && ctx.parent !== undefined) {
        ctx.system.ref(`${ctx.parent.address}/ledger`, Ledger).tell('record', { orderId, cents });
      }
      return { approved };
    },
    fault,
  },
});

// Intensities are chosen so that the shop itself never gives up. Each chaos tick (>= 300 ms apart)
// causes at most one restart at the shop's level: an inventory crash or one sub-supervisor escalation
// (a burst targets one supervisor). That is at most 34 in any 10 s window, below the shop's 40.
const shop = supervisor({
  strategy: 'one_for_one',
  intensity: 40,
  periodMs: 10_000,
  children: [
    { id: 'sessions', behavior: dynamicSupervisor({ intensity: 5, periodMs: 2000, maxChildren: 8 }) },
    {
      id: 'payments',
      behavior: supervisor({
        strategy: 'rest_for_one',
        intensity: 3,
        periodMs: 2000,
        backoff: exponential({ baseMs: 40, maxMs: 400, jitter: true }),
        children: [
          { id: 'ledger', behavior: ledger },
          { id: 'gateway', behavior: gateway },
        ],
      }),
    },
    { id: 'inventory', behavior: inventory },
  ],
});

// The system gets its own seeded generator, for backoff jitter, and a clock that starts at zero now, so
// the events' times and the time the demo reports are read on one clock.
const origin = realClock.now();
const clock: Clock = { ...realClock, now: () => realClock.now() - origin };
const system = createSystem({ name: 'demo', random: seededRandom(seed + 1), clock });
const stats = { crashes: 0, restarts: 0, escalations: new Map<string, number>(), deadLetters: 0 };
const work = { answered: 0, reserved: 0, charged: 0, failed: 0, sessionsOpened: 0 };
system.events$.subscribe((event) => {
  if (event.type === 'actor-crashed') stats.crashes++;
  else if (event.type === 'actor-restarted') stats.restarts++;
  else if (event.type === 'dead-letter') stats.deadLetters++;
  else if (event.type === 'supervisor-escalated') {
    const path = shortAddress(event.address);
    stats.escalations.set(path, (stats.escalations.get(path) ?? 0) + 1);
  }
});

const shopRef = system.spawn(shop, { name: 'shop' });
const address = (path: string) => `troupe://${system.name}/${system.node}/shop/${path}`;

const tty = process.stdout.isTTY === true;
const stopWatch = watchSystem(system, {
  intervalMs: tty ? 200 : 1000,
  redraw: tty,
  color: tty,
  // In place, the frame must fit the screen: the tree takes about 14 lines.
  events: tty && process.stdout.rows > 0 ? Math.max(3, Math.min(12, process.stdout.rows - 16)) : 12,
  ...(tty && process.stdout.columns > 0 ? { width: process.stdout.columns } : {}),
});

const TOPICS = ['vector search', 'rate limits', 'prompt caching', 'tool calling', 'evals', 'fine-tuning'];
const CUSTOMERS = ['ada', 'grace', 'alan', 'barbara', 'edsger', 'margaret'];
const SKUS = ['gpu-hours', 'tokens-1m', 'embeddings'];

/** Runs each session answers before it is closed. */
const quota = new Map<string, { left: number }>();

/** Keeps three research sessions open: sessions close when done, and a restarted `sessions` starts empty. */
async function topUpSessions(): Promise<void> {
  const sessions = system.ref(address('sessions')) as SupervisorRef;
  const { active } = await sessions.ask('countChildren', {});
  for (let i = active; i < 3; i++) {
    const id = `session-${++work.sessionsOpened}`;
    quota.set(id, { left: 4 + Math.floor(random() * 6) });
    await startChild(sessions, { id, behavior: researcher(id, pick(TOPICS)!), restart: 'transient' });
  }
}

/** Counts a session's answer, and closes the session once it has given its last. */
function answered(session: ActorRef<typeof AgentProtocol>): void {
  work.answered++;
  const id = session.address.slice(session.address.lastIndexOf('/') + 1);
  const left = quota.get(id);
  if (left === undefined || --left.left > 0) return;
  quota.delete(id);
  terminateChild(system.ref(address('sessions')) as SupervisorRef, id).catch(() => {});
}

let toppingUp = false;

/** One tick of customer traffic: a question, a reservation and a payment. */
function traffic(): void {
  const customer = pick(CUSTOMERS)!;
  const count = <T>(reply: Promise<T>, done: keyof typeof work) =>
    reply.then(
      () => void work[done]++,
      () => void work.failed++,
    );
  const session = pick(system.find(AgentProtocol));
  if (session !== undefined) {
    session.ask('run', { input: `${customer} asks: how do I start?` }).then(
      (outcome) => (outcome.ok ? answered(session) : void work.failed++),
      () => void work.failed++,
    );
  }
  count(system.ref(address('inventory'), Inventory).ask('reserve', { sku: pick(SKUS)!, qty: 1 }), 'reserved');
  const orderId = `order-${Math.floor(random() * 1e6)}`;
  count(
    system
      .ref(address('payments/gateway'), Gateway)
      .ask('charge', { orderId, cents: 500 + Math.floor(random() * 50_000) }),
    'charged',
  );
  if (!toppingUp) {
    toppingUp = true;
    topUpSessions()
      .catch(() => void work.failed++)
      .finally(() => {
        toppingUp = false;
      });
  }
}

let tick = 0;
/** One chaos tick: a fault in a random worker, or (every eighth tick, from the fourth) a burst at the ledger. */
function chaos(): void {
  tick++;
  if (tick % 8 === 4) {
    // Five faults in a row: more than payments allows (3 in 2 s), so it fails and the shop restarts it.
    // Faults still queued when the old ledger stops become dead letters.
    const target = system.ref(address('payments/ledger'), Chaos);
    for (let n = 1; n <= 5; n++) target.tell('fault', { reason: `burst ${tick}.${n}` });
    return;
  }
  const workers = [...system.find(Chaos), ...system.find(AgentProtocol)].sort((a, b) =>
    a.address.localeCompare(b.address),
  );
  const worker = pickWith(chaosRandom)(workers);
  if (worker === undefined) return;
  if (worker.address.includes('/sessions/')) {
    const id = worker.address.slice(worker.address.lastIndexOf('/') + 1);
    pendingFaults.set(id, (pendingFaults.get(id) ?? 0) + 1);
  } else {
    (worker as ActorRef<typeof Chaos>).tell('fault', { reason: `injected fault #${tick}` });
  }
}

// A message to a supervisor waits in its mailbox until it has started all its children.
await shopRef.ask('countChildren', {});
await topUpSessions();
const trafficTimer = setInterval(traffic, 100);
const chaosTimer = setInterval(chaos, 300);
await sleep(durationMs);
clearInterval(trafficTimer);
clearInterval(chaosTimer);
// Let answers in flight come back before the last frame.
await sleep(100);
stopWatch();

const finalTree = system.tree();
await system.drain({ timeoutMs: 2000 });
const failure = await system.closed();

const escalations = [...stats.escalations].map(([path, n]) => `${path} x${n}`).join(', ');
// After the drain: the system's last events (draining, stopped) are stamped before this.
const seconds = (clock.now() / 1000).toFixed(1);
console.log(`
Demo finished after ${seconds} s (seed ${seed}), its system stopped.
  crashes        ${stats.crashes}
  restarts       ${stats.restarts}
  escalations    ${stats.escalations.size === 0 ? 0 : escalations}
  dead letters   ${stats.deadLetters}
  customer work  ${work.answered} answers from agents, ${work.reserved} reservations, ${work.charged} charges, ${work.failed} failed asks
  sessions       ${work.sessionsOpened} research agents opened

Final tree (before shutdown):
${renderTree(finalTree, { color: tty })}
`);
if (failure !== undefined) {
  console.error(`The system failed: ${failure.message}`);
  if (TroupeError.is(failure)) console.error(`(${failure.code})`);
  process.exitCode = 1;
} else {
  console.log('System drained and stopped cleanly.');
}
