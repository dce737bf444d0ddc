/**
 * A node's subjects are open to anyone on the NATS: this sends 10,000+ random and malformed payloads
 * to a node's inbox and reply subjects, then checks that the node reported each one as a dead letter
 * (exactly as many as the payloads hold) and still answers correctly. Replay with FC_SEED=<seed>.
 */
import { connect } from '@nats-io/transport-node';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  behavior,
  createNode,
  decodeEnvelope,
  defineProtocol,
  natsTransport,
  tell,
} from '../../index.js';
import { NatsServer } from '../harness/nats.js';

const SEED = Number(process.env.FC_SEED ?? 20261123);
const LIMIT = 64 * 1024;

const Counter = defineProtocol('fz.counter', {
  add: tell(z.object({ by: z.number() })),
  get: ask(z.object({}), z.number()),
});

let server: NatsServer;
let system: ActorSystem;
const dead: string[] = [];

beforeAll(async () => {
  server = await NatsServer.start();
  system = await createNode({
    name: 'fz',
    node: 'b',
    transport: await natsTransport({ servers: server.url }),
    maxMessageBytes: LIMIT,
    maxBatchBytes: LIMIT,
    deadLetterLog: () => {},
  });
  system.deadLetters$.subscribe((d) => dead.push(d.reason));
  system.spawn(
    behavior({
      protocols: [Counter],
      initialState: () => 0,
      handlers: {
        add: ({ by }, ctx) => {
          ctx.state += by;
        },
        get: (_b, ctx) => ctx.state,
      },
    }),
    { name: 'counter' },
  );
});

afterAll(async () => {
  await system?.close();
  await server?.dispose();
});

const target = 'troupe://fz/b/counter';
const text = fc.string({ maxLength: 20 });
/** Envelope-shaped objects that are wrong in one way or another; replies go to a node nobody runs. */
const envelopeArb = fc.record(
  {
    id: fc.oneof(text, fc.integer(), fc.constant(null)),
    to: fc.oneof(
      fc.constant(target),
      fc.constant('troupe://fz/b/nobody'),
      text,
      fc.constant('troupe://fz/b/'),
    ),
    from: fc.oneof(fc.constant('troupe://fz/fuzzer/x'), text, fc.integer()),
    type: fc.oneof(
      fc.constant('fz.counter.add'),
      fc.constant('fz.counter.get'),
      fc.constant('fz.counter.nope'),
      fc.constant('__proto__'),
      fc.constant('constructor'),
      fc.constant('add'),
      text,
    ),
    body: fc.oneof(fc.jsonValue(), fc.record({ by: fc.oneof(fc.string(), fc.constant(null), fc.object()) })),
    correlationId: fc.oneof(text, fc.integer()),
    replyTo: fc.oneof(fc.constant('troupe://fz/fuzzer/'), text),
    deadline: fc.oneof(fc.constant(1), fc.double(), fc.string()),
    fence: fc.oneof(fc.double(), fc.string()),
    trace: fc.oneof(fc.constant(null), fc.record({ traceparent: fc.integer() })),
  },
  { requiredKeys: [] },
);

/** A valid envelope would be delivered, not refused: keep only the ones the node must refuse. */
function invalid(e: Record<string, unknown>): boolean {
  try {
    decodeEnvelope(e);
  } catch {
    return true;
  }
  const deliverable =
    e.to === target &&
    (e.type === 'fz.counter.add' || e.type === 'add') &&
    typeof (e.body as { by?: unknown } | null)?.by === 'number' &&
    (e.deadline === undefined || (e.deadline as number) > Date.now());
  return !deliverable;
}

const payloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v) ?? 'null')),
  envelopeArb.filter(invalid).map((e) => new TextEncoder().encode(JSON.stringify(e))),
  fc
    .array(envelopeArb.filter(invalid), { maxLength: 5 })
    .map((es) => new TextEncoder().encode(JSON.stringify(es))),
  fc.constant(new Uint8Array(LIMIT + 4096).fill(0x20)),
);

/** How many dead letters the node reports for one payload: one per envelope, or one for the frame. */
function expectedDeadLetters(bytes: Uint8Array): number {
  if (bytes.length > LIMIT + 1024) return 1;
  let data: unknown;
  try {
    data = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return 1;
  }
  return Array.isArray(data) ? Math.max(1, data.length) : 1;
}

it('reports every random and malformed payload as a dead letter and keeps answering', async () => {
  const payloads = fc.sample(payloadArb, { seed: SEED, numRuns: 10_000 });
  const nc = await connect({ servers: server.url });
  let expected = 0;
  try {
    for (const [i, bytes] of payloads.entries()) {
      const subject = i % 4 === 3 ? 'troupe.fz.reply.b' : 'troupe.fz.node.b';
      nc.publish(subject, bytes);
      expected += expectedDeadLetters(bytes);
      if (i % 500 === 0) await nc.flush();
    }
    await nc.flush();
  } finally {
    await nc.close();
  }
  expect(payloads.length).toBeGreaterThanOrEqual(10_000);
  await vi.waitFor(
    () => expect(dead.length, `dead letters for seed ${SEED} (FC_SEED=${SEED} to replay)`).toBe(expected),
    { timeout: 30_000 },
  );
  expect(new Set(dead)).not.toContain(undefined);

  // Still serving: a real node asks and tells as usual.
  const client = await createNode({
    name: 'fz',
    node: 'a',
    transport: await natsTransport({ servers: server.url }),
    deadLetterLog: () => {},
  });
  try {
    const counter = client.ref(target, Counter);
    counter.tell('add', { by: 2 });
    counter.tell('add', { by: 3 });
    expect(await counter.ask('get', {})).toBe(5);
  } finally {
    await client.close();
  }
}, 90_000);
