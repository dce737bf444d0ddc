/**
 * The demo: a small agent shop under supervision, with faults injected at random.
 *
 *   shop (supervisor, one_for_one)
 *   |-- sessions (dynamic supervisor): research sessions opened and closed at run time
 *   |-- payments (supervisor, rest_for_one, with backoff)
 *   |   |-- ledger
 *   |   `-- gateway (records every approved charge in the ledger)
 *   `-- inventory
 *
 * Customers ask the sessions questions, reserve stock and pay. Every ~300 ms a fault is injected into a
 * random worker; every eighth tick a burst of faults trips the payments supervisor's restart intensity,
 * so it fails upward and the shop restarts it. Every random choice comes from generators seeded by
 * `--seed` (faults, traffic and simulated latency each have their own), so runs with one seed make the same choices; only
 * the timing of the real clock varies (which sessions are open when a fault lands, for instance).
 *
 * Run: `npm run demo` or `npx tsx examples/demo.ts --duration 8 --seed 7`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import {
  type ActorRef,
  ask,
  behavior,
  createSystem,
  defineProtocol,
  dynamicSupervisor,
  exponential,
  type SupervisorRef,
  startChild,
  supervisor,
  TroupeError,
  tell,
} from '../index.js';
import { renderTree, shortAddress, watchSystem } from '../ops/index.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    seed: { type: 'string', default: '7' },
  },
});
const durationMs = Number(args.duration) * 1000;
const seed = Number(args.seed);
if (!(durationMs > 0) || !Number.isInteger(seed)) {
  console.error('usage: demo [--duration <seconds>] [--seed <integer>]');
  process.exit(2);
}

/** mulberry32: a tiny seeded generator, so the faults are the same on every run with one seed. */
function seeded(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = seeded(seed);
const chaosRandom = seeded(seed ^ 0x5eed);
const latencyRandom = seeded(seed ^ 0x1a7e);
const pickWith =
  (rng: () => number) =>
  <T>(items: readonly T[]): T | undefined =>
    items[Math.floor(rng() * items.length)];
const pick = pickWith(random);

// Protocols: the schema is the one source of truth for what each actor accepts.

const Chaos = defineProtocol('demo.chaos', {
  fault: tell(z.object({ reason: z.string() })),
});

const Research = defineProtocol('demo.research', {
  question: ask(
    z.object({ customer: z.string(), text: z.string() }),
    z.object({ answer: z.string(), notes: z.number() }),
  ),
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

/** A research session: answers questions on its topic after some "thinking", then closes when done. */
function researcher(topic: string, questionsBeforeClosing: number) {
  return behavior({
    protocols: [Research, Chaos],
    initialState: () => ({ notes: [] as string[] }),
    handlers: {
      question: async ({ customer, text }, ctx) => {
        // A stand-in for a model call; the signal aborts it if the session stops or restarts meanwhile.
        await sleep(10 + Math.floor(latencyRandom() * 40), undefined, { signal: ctx.signal });
        ctx.state.notes.push(text);
        if (ctx.state.notes.length >= questionsBeforeClosing) void ctx.stop();
        return {
          answer: `${customer}: on ${topic}, "${text}" is covered by note ${ctx.state.notes.length}`,
          notes: ctx.state.notes.length,
        };
      },
      fault,
    },
  });
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
      await sleep(5 + Math.floor(latencyRandom() * 20), undefined, { signal: ctx.signal });
      const approved = cents < 40_000;
      // The ledger is a sibling; look it up by address, since a payments restart replaces it.
      if (approved && ctx.parent !== undefined) {
        ctx.system.ref<typeof Ledger>(`${ctx.parent.address}/ledger`).tell('record', { orderId, cents });
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

// The system gets its own seeded generator, for backoff jitter.

const system = createSystem({ name: 'demo', random: seeded(seed + 1) });
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

/** Keeps three research sessions open: sessions close when done, and a restarted `sessions` starts empty. */
async function topUpSessions(): Promise<void> {
  const sessions = system.ref(address('sessions')) as SupervisorRef;
  const { active } = await sessions.ask('countChildren', {});
  for (let i = active; i < 3; i++) {
    const id = `session-${++work.sessionsOpened}`;
    const topic = pick(TOPICS)!;
    await startChild(sessions, {
      id,
      behavior: researcher(topic, 4 + Math.floor(random() * 6)),
      restart: 'transient',
    });
  }
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
  const session = pick(system.find(Research));
  if (session !== undefined) {
    count(session.ask('question', { customer, text: `how do I start with ${pick(TOPICS)}?` }), 'answered');
  }
  count(
    system.ref<typeof Inventory>(address('inventory')).ask('reserve', { sku: pick(SKUS)!, qty: 1 }),
    'reserved',
  );
  const orderId = `order-${Math.floor(random() * 1e6)}`;
  count(
    system
      .ref<typeof Gateway>(address('payments/gateway'))
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
    const target = system.ref<typeof Chaos>(address('payments/ledger'));
    for (let n = 1; n <= 5; n++) target.tell('fault', { reason: `burst ${tick}.${n}` });
    return;
  }
  const workers = system.find(Chaos).sort((a, b) => a.address.localeCompare(b.address));
  const worker = pickWith(chaosRandom)(workers as ActorRef<typeof Chaos>[]);
  worker?.tell('fault', { reason: `injected fault #${tick}` });
}

// A message to a supervisor waits in its mailbox until it has started all its children.
await shopRef.ask('countChildren', {});
await topUpSessions();
const trafficTimer = setInterval(traffic, 100);
const chaosTimer = setInterval(chaos, 300);
const startedAt = performance.now();
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
const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
console.log(`
Demo finished after ${seconds} s (seed ${seed}).
  crashes        ${stats.crashes}
  restarts       ${stats.restarts}
  escalations    ${stats.escalations.size === 0 ? 0 : escalations}
  dead letters   ${stats.deadLetters}
  customer work  ${work.answered} answers, ${work.reserved} reservations, ${work.charged} charges, ${work.failed} failed asks
  sessions       ${work.sessionsOpened} opened

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
