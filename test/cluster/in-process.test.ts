import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  behavior,
  createNode,
  type DeadLetterEvent,
  defineProtocol,
  inProcessNetwork,
  realClock,
  seededRandom,
  tell,
} from '../../index.js';
import { SimulatedClock } from '../../runtime/testkit/index.js';

const Counter = defineProtocol('ip.counter', {
  add: tell(z.object({ by: z.number() })),
  get: ask(z.object({}), z.number()),
  fail: ask(z.object({}), z.number()),
  echoSender: ask(z.object({}), z.string()),
});

const counter = behavior({
  protocols: [Counter],
  initialState: () => 0,
  handlers: {
    add: ({ by }, ctx) => {
      ctx.state += by;
    },
    get: (_b, ctx) => ctx.state,
    fail: () => {
      throw new Error('nope');
    },
    echoSender: (_b, ctx) => ctx.sender?.address ?? 'none',
  },
});

const open: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function cluster(nodes: string[]) {
  const network = inProcessNetwork();
  const systems: ActorSystem[] = [];
  const dead: DeadLetterEvent[] = [];
  for (const node of nodes) {
    const system = await createNode({
      name: 'c',
      node,
      transport: network.transport(),
      deadLetterLog: () => {},
    });
    system.deadLetters$.subscribe((d) => dead.push(d));
    systems.push(system);
    open.push(system);
  }
  return { systems, dead };
}

describe('remote refs over an in-process network', () => {
  it('tells and asks an actor of another node with the local API, in order', async () => {
    const { systems } = await cluster(['a', 'b']);
    const [a, b] = systems as [ActorSystem, ActorSystem];
    b.spawn(counter, { name: 'counter' });
    const remote = a.ref('troupe://c/b/counter', Counter);
    for (let i = 1; i <= 100; i++) remote.tell('add', { by: i });
    expect(await remote.ask('get', {})).toBe(5050);
  });

  it('rejects a remote ask with the remote error code', async () => {
    const { systems } = await cluster(['a', 'b']);
    const [a, b] = systems as [ActorSystem, ActorSystem];
    b.spawn(counter, { name: 'counter' });
    const remote = a.ref('troupe://c/b/counter', Counter);
    await expect(remote.ask('fail', {})).rejects.toMatchObject({ code: 'ERR_ACTOR_CRASHED' });
    await expect(a.ref('troupe://c/b/nobody', Counter).ask('get', {})).rejects.toMatchObject({
      code: 'ERR_NO_SUCH_ACTOR',
    });
  });

  it('works through an untyped ref too (the target resolves the bare message name)', async () => {
    const { systems } = await cluster(['a', 'b']);
    const [a, b] = systems as [ActorSystem, ActorSystem];
    b.spawn(counter, { name: 'counter' });
    const remote = a.ref('troupe://c/b/counter');
    remote.tell('add', { by: 2 });
    expect(await remote.ask('get', {})).toBe(2);
  });

  it('gives the receiver a sender ref that reaches back across nodes', async () => {
    const { systems } = await cluster(['a', 'b']);
    const [a, b] = systems as [ActorSystem, ActorSystem];
    b.spawn(counter, { name: 'counter' });
    const Probe = defineProtocol('ip.probe', { go: ask(z.object({}), z.string()) });
    const probe = a.spawn(
      behavior({
        protocols: [Probe],
        handlers: { go: (_b, ctx) => ctx.system.ref('troupe://c/b/counter', Counter).ask('echoSender', {}) },
      }),
      { name: 'probe' },
    );
    expect(await probe.ask('go', {})).toBe('troupe://c/a/probe');
  });

  it('refuses an oversize message at send with ERR_MESSAGE_TOO_LARGE', async () => {
    const network = inProcessNetwork();
    const a = await createNode({
      name: 'c',
      node: 'a',
      transport: network.transport(),
      maxMessageBytes: 1000,
    });
    open.push(a);
    const remote = a.ref('troupe://c/b/counter');
    expect(() => remote.tell('add', { by: 1, pad: 'x'.repeat(2000) })).toThrow(
      expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }),
    );
  });

  it('turns a message to an unknown node into a transport-failed dead letter, and fails its ask', async () => {
    const { systems, dead } = await cluster(['a']);
    const remote = systems[0]!.ref('troupe://c/zz/counter', Counter);
    remote.tell('add', { by: 1 });
    await expect(remote.ask('get', {})).rejects.toMatchObject({ code: 'ERR_NO_ROUTE' });
    expect(dead.map((d) => [d.reason, d.error?.code])).toEqual([
      ['transport-failed', 'ERR_NO_ROUTE'],
      ['transport-failed', 'ERR_NO_ROUTE'],
    ]);
  });
});

describe('batching', () => {
  it('sends the envelopes of one turn to one node as one frame, and the next turn as another', async () => {
    const network = inProcessNetwork();
    const inner = network.transport();
    const frames: number[] = [];
    const counting = {
      ...inner,
      publish: (channel: 'node' | 'reply', node: string, frame: Parameters<typeof inner.publish>[2]) => {
        if (channel === 'node') {
          // A frame holds envelopes and runs of tells ({ $run, items }): count the envelopes.
          const data = JSON.parse(Buffer.from(frame.bytes).toString()) as unknown;
          const elements = (Array.isArray(data) ? data : [data]) as { $run?: number; items?: unknown[] }[];
          frames.push(elements.reduce((n, e) => n + (e.$run === 1 ? e.items!.length : 1), 0));
        }
        inner.publish(channel, node, frame);
      },
    };
    const a = await createNode({ name: 'c', node: 'a', transport: counting, deadLetterLog: () => {} });
    const b = await createNode({
      name: 'c',
      node: 'b',
      transport: network.transport(),
      deadLetterLog: () => {},
    });
    open.push(a, b);
    b.spawn(counter, { name: 'counter' });
    const remote = a.ref('troupe://c/b/counter', Counter);
    for (let i = 0; i < 100; i++) remote.tell('add', { by: 1 });
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 50; i++) remote.tell('add', { by: 1 });
    expect(await remote.ask('get', {})).toBe(150);
    // The ask goes in the same turn as the last 50 tells: one frame of 51.
    expect(frames).toEqual([100, 51]);
  });
});

describe('trace context', () => {
  it('follows a request from node to node: given to an ask, seen by a handler, carried by its sends', async () => {
    const Relay = defineProtocol('ip.relay', { relay: ask(z.object({}), z.string()) });
    const Sink = defineProtocol('ip.sink', {
      note: tell(z.object({})),
      seen: ask(z.object({}), z.array(z.string())),
    });
    const { systems } = await cluster(['a', 'b', 'c']);
    const [a, b, c] = systems as [ActorSystem, ActorSystem, ActorSystem];
    c.spawn(
      behavior({
        protocols: [Sink],
        initialState: () => [] as string[],
        handlers: {
          note: (_b, ctx) => {
            ctx.state.push(ctx.trace?.traceparent ?? 'none');
          },
          seen: (_b, ctx) => ctx.state,
        },
      }),
      { name: 'sink' },
    );
    b.spawn(
      behavior({
        protocols: [Relay],
        handlers: {
          relay: (_b, ctx) => {
            ctx.system.ref('troupe://c/c/sink', Sink).tell('note', {});
            return ctx.trace?.traceparent ?? 'none';
          },
        },
      }),
      { name: 'relay' },
    );
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const relay = a.ref('troupe://c/b/relay', Relay);
    expect(await relay.ask('relay', {}, { trace: { traceparent } })).toBe(traceparent);
    expect(await relay.ask('relay', {})).toBe('none');
    const sink = a.ref('troupe://c/c/sink', Sink);
    await expect.poll(() => sink.ask('seen', {})).toEqual([traceparent, 'none']);
  });
});

describe('an actor replaced at the same address', () => {
  it('gets the messages sent to the address after the old one stopped', async () => {
    const { systems } = await cluster(['a', 'b']);
    const [a, b] = systems as [ActorSystem, ActorSystem];
    const first = b.spawn(counter, { name: 'counter' });
    const remote = a.ref('troupe://c/b/counter', Counter);
    remote.tell('add', { by: 1 });
    expect(await remote.ask('get', {})).toBe(1);
    await b.stop(first);
    b.spawn(counter, { name: 'counter' });
    remote.tell('add', { by: 5 });
    expect(await remote.ask('get', {})).toBe(5);
  });
});

describe('runs of tells on the wire', () => {
  it('delivers a well-formed run and refuses each malformed part as a dead letter', async () => {
    const network = inProcessNetwork();
    const b = await createNode({
      name: 'c',
      node: 'b',
      transport: network.transport(),
      deadLetterLog: () => {},
    });
    open.push(b);
    const dead: string[] = [];
    b.deadLetters$.subscribe((d) => dead.push(d.reason));
    b.spawn(counter, { name: 'counter' });
    const raw = network.transport();
    await raw.open('c', 'x', { inbound: () => {}, replies: () => {} }, realClock);
    const send = (value: unknown) =>
      raw.publish('node', 'b', {
        bytes: new TextEncoder().encode(JSON.stringify(value)),
        deadline: undefined,
        fail: () => {},
      });
    const to = 'troupe://c/b/counter';
    send([
      {
        $run: 1,
        to,
        type: 'ip.counter.add',
        items: [
          ['i1', { by: 1 }],
          ['i2', { by: 2 }],
        ],
      },
      { $run: 1, to, type: 'ip.counter.add', items: [] },
      { $run: 1, to: 42, type: 'ip.counter.add', items: [['i3', { by: 3 }]] },
      { $run: 1, to, type: 'ip.counter.add', items: [[7, { by: 4 }], { by: 5 }, ['i6', { by: 'six' }]] },
    ]);
    // The empty run, the run with a bad `to`, a numeric id, an item that is no pair, a bad body.
    await vi.waitFor(() =>
      expect(dead).toEqual(['malformed', 'malformed', 'malformed', 'malformed', 'validation-failed']),
    );
    expect(await b.ref(to, Counter).ask('get', {})).toBe(3);
  });
});

describe('time and chance across nodes', () => {
  /** One ask from node a to node b, on a simulated clock and a seeded random source: the envelope sent. */
  async function oneAsk(seed: number): Promise<{ id: string; deadline: number }> {
    const clock = new SimulatedClock({ epochMs: Date.UTC(2030, 0, 1) });
    const network = inProcessNetwork();
    const inner = network.transport();
    const sent: { type: string; id: string; deadline: number }[] = [];
    const spying = {
      ...inner,
      publish: (channel: 'node' | 'reply', node: string, frame: Parameters<typeof inner.publish>[2]) => {
        sent.push(JSON.parse(Buffer.from(frame.bytes).toString()));
        inner.publish(channel, node, frame);
      },
    };
    const common = { name: 'tc', clock, random: seededRandom(seed), deadLetterLog: () => {} };
    const a = await createNode({ ...common, node: 'a', transport: spying });
    const b = await createNode({ ...common, node: 'b', transport: network.transport() });
    open.push(a, b);
    b.spawn(counter, { name: 'counter' });
    await clock.advance(1000);
    expect(await a.ref('troupe://tc/b/counter', Counter).ask('get', {}, { timeoutMs: 700 })).toBe(0);
    return sent.find((e) => e.type === 'ip.counter.get')!;
  }

  it("stamps an ask's deadline on the system clock's wall time and draws its id from the system's random source", async () => {
    const first = await oneAsk(7);
    expect(first.deadline).toBe(Date.UTC(2030, 0, 1) + 1000 + 700);
    expect(first.id).toMatch(/^a\.[0-9a-z]+\./);
    // The same seed and clock give the same ids; another seed, others.
    expect((await oneAsk(7)).id).toBe(first.id);
    expect((await oneAsk(8)).id).not.toBe(first.id);
  });
});
