/**
 * Topics on one node and across nodes of an in-process network: fanout, typed validation,
 * unsubscribe and the end of a subscription when its subscriber stops, and the transport channel
 * followed only while a node has subscribers.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  createNode,
  createSystem,
  type DeadLetterEvent,
  inProcessNetwork,
  type Transport,
  TroupeError,
} from '../../index.js';
import { listener, News } from './helpers.js';

const open: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

function local(): ActorSystem {
  const system = createSystem({ name: 'tp', deadLetterLog: () => {} });
  open.push(system);
  return system;
}

/** A transport that counts what goes over its topic channel. */
function counting(transport: Transport) {
  const published: string[] = [];
  const subscribed = new Set<string>();
  const wrapped: Transport = {
    kind: transport.kind,
    open: (...a) => transport.open(...a),
    publish: (...a) => transport.publish(...a),
    close: () => transport.close(),
    drain: () => transport.drain(),
    closed: () => transport.closed(),
    [Symbol.asyncDispose]: () => transport.drain(),
    subscribeTopic(topic, deliver) {
      subscribed.add(topic);
      transport.subscribeTopic!(topic, deliver);
    },
    unsubscribeTopic(topic) {
      subscribed.delete(topic);
      transport.unsubscribeTopic!(topic);
    },
    publishTopic(topic, bytes) {
      published.push(topic);
      transport.publishTopic!(topic, bytes);
    },
  };
  return { transport: wrapped, published, subscribed };
}

async function nodes(count: number) {
  const network = inProcessNetwork();
  const out = [];
  for (let i = 1; i <= count; i++) {
    const wire = counting(network.transport());
    const system = await createNode({
      name: 'tp',
      node: `n${i}`,
      transport: wire.transport,
      heartbeatMs: 50,
      deadLetterLog: () => {},
    });
    open.push(system);
    out.push({ system, ...wire });
  }
  return out;
}

describe('topics on one node', () => {
  it('delivers each publication to every subscriber, in order, and validates what is published', async () => {
    const system = local();
    const news = system.topic('news', News);
    const subs = [system.spawn(listener), system.spawn(listener), system.spawn(listener)];
    for (const s of subs) news.subscribe(s, 'news');
    // @ts-expect-error `seen` is an ask, not a tell that takes the topic's messages
    expect(() => news.subscribe(subs[0]!, 'seen')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    expect(news.publish({ n: 1 })).toBe(3);
    news.publish({ n: 2 });
    for (const s of subs) expect(await s.ask('seen', {})).toEqual([1, 2]);
    expect(() => news.publish({ n: 'three' } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_VALIDATION' }),
    );
    for (const s of subs) expect(await s.ask('seen', {})).toEqual([1, 2]);
    expect(news.nodes()).toEqual([]);
  });

  it('ends a subscription on unsubscribe and when the subscriber stops', async () => {
    const system = local();
    const news = system.topic('news', News);
    const a = system.spawn(listener);
    const b = system.spawn(listener);
    const c = system.spawn(listener);
    const unsubscribe = news.subscribe(a, 'news');
    news.subscribe(b, 'news');
    news.subscribe(c, 'news');
    news.publish({ n: 1 });
    unsubscribe();
    expect(news.unsubscribe(b)).toBe(true);
    expect(news.unsubscribe(b)).toBe(false);
    await system.stop(c);
    expect(news.subscribers()).toEqual([]);
    expect(news.publish({ n: 2 })).toBe(0);
    expect(await a.ask('seen', {})).toEqual([1]);
    expect(await b.ask('seen', {})).toEqual([1]);
  });

  it('refuses bad names, another schema for a declared name, and subscribers that are not local actors', () => {
    const system = local();
    expect(() => system.topic('bad name', News)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_NAME' }),
    );
    expect(() => system.topic('', News)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_NAME' }));
    expect(() => system.topic('$directory', News)).toThrow(TroupeError);
    const news = system.topic('news', News);
    expect(system.topic('news', News).name).toBe('news');
    expect(() => system.topic('news', z.object({ other: z.string() }))).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    expect(() => news.subscribe(system.ref('troupe://tp/local/nobody'), 'news')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
  });
});

describe('topics across nodes (in-process network)', () => {
  it('fans out to local and remote subscribers; local delivery never crosses the network', async () => {
    const [a, b, c] = await nodes(3);
    const onA = a!.system.topic('news', News);
    const onB = b!.system.topic('news', News);
    const localSub = a!.system.spawn(listener);
    onA.subscribe(localSub, 'news');
    // Only A has subscribers: publishing on A stays on A.
    onA.publish({ n: 1 });
    expect(await localSub.ask('seen', {})).toEqual([1]);
    expect(a!.published.filter((t) => t === 'news')).toEqual([]);
    expect(c!.subscribed.has('news')).toBe(false);

    const remoteSubs = [b!.system.spawn(listener), b!.system.spawn(listener)];
    for (const s of remoteSubs) onB.subscribe(s, 'news');
    expect(b!.subscribed.has('news')).toBe(true);
    await vi.waitFor(() => expect(onA.nodes()).toEqual(['n2']));
    onA.publish({ n: 2 });
    onA.publish({ n: 3 });
    expect(a!.published.filter((t) => t === 'news')).toHaveLength(2);
    for (const s of remoteSubs) await vi.waitFor(async () => expect(await s.ask('seen', {})).toEqual([2, 3]));
    // The publisher's own subscriber got each once, directly (its echo from the network is dropped).
    expect(await localSub.ask('seen', {})).toEqual([1, 2, 3]);

    // B's subscribers stop: B leaves the channel and A stops sending.
    for (const s of remoteSubs) await b!.system.stop(s);
    expect(b!.subscribed.has('news')).toBe(false);
    await vi.waitFor(() => expect(onA.nodes()).toEqual([]));
    onA.publish({ n: 4 });
    expect(a!.published.filter((t) => t === 'news')).toHaveLength(2);
  });

  it('turns a remote publication the local schema refuses into a dead letter', async () => {
    const [a, b] = await nodes(2);
    const dead: DeadLetterEvent[] = [];
    b!.system.deadLetters$.subscribe((d) => dead.push(d));
    // A declares the topic with a looser schema than B does.
    const onA = a!.system.topic('news', z.object({ n: z.union([z.number(), z.string()]) }));
    const onB = b!.system.topic('news', News);
    const sub = b!.system.spawn(listener);
    onB.subscribe(sub, 'news');
    await vi.waitFor(() => expect(onA.nodes()).toEqual(['n2']));
    onA.publish({ n: 'x' });
    onA.publish({ n: 5 });
    await vi.waitFor(async () => expect(await sub.ask('seen', {})).toEqual([5]));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ reason: 'validation-failed', messageType: '(topic news)' });
    expect(dead[0]!.error?.code).toBe('ERR_VALIDATION');
  });

  it('works on a system made with createSystem, used before its transport has opened', async () => {
    const network = inProcessNetwork();
    // createSystem does not wait for the transport: subscriptions and joins made at once still count.
    const early = createSystem({
      name: 'tp',
      node: 'n9',
      transport: network.transport(),
      deadLetterLog: () => {},
    });
    open.push(early);
    const sub = early.spawn(listener);
    early.topic('news', News).subscribe(sub, 'news');
    early.groups.join('g', sub);
    const other = await createNode({
      name: 'tp',
      node: 'n8',
      transport: network.transport(),
      deadLetterLog: () => {},
    });
    open.push(other);
    const onOther = other.topic('news', News);
    await vi.waitFor(() => expect(onOther.nodes()).toEqual(['n9']));
    expect(other.groups.members('g').map((m) => m.address)).toEqual([sub.address]);
    onOther.publish({ n: 1 });
    await vi.waitFor(async () => expect(await sub.ask('seen', {})).toEqual([1]));
  });
});
