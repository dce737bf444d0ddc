/**
 * Nodes over a real, private nats-server (test/harness): remote tell and ask, isolation of clusters,
 * the outage buffer across a server restart, and its limit.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createUser } from '@nats-io/nkeys';
import { connect, nkeyAuthenticator } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  behavior,
  createNode,
  type DeadLetterEvent,
  defineProtocol,
  type NatsTransportOptions,
  natsTransport,
  type Transport,
  tell,
} from '../../index.js';
import { NatsServer } from '../harness/nats.js';

const Counter = defineProtocol('nt.counter', {
  add: tell(z.object({ by: z.number() })),
  get: ask(z.object({}), z.number()),
});
const counter = behavior({
  protocols: [Counter],
  initialState: () => 0,
  handlers: {
    add: ({ by }, ctx) => {
      ctx.state += by;
    },
    get: (_b, ctx) => ctx.state,
  },
});

let server: NatsServer;
beforeAll(async () => {
  server = await NatsServer.start();
});
afterAll(async () => {
  await server.dispose();
});

const open: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  if (!server.running) await server.restart();
});

async function node(
  name: string,
  id: string,
  options: Partial<NatsTransportOptions> = {},
): Promise<{ system: ActorSystem; dead: DeadLetterEvent[]; transport: Transport }> {
  const transport = await natsTransport({ servers: server.url, ...options });
  const system = await createNode({ name, node: id, transport, deadLetterLog: () => {} });
  const dead: DeadLetterEvent[] = [];
  system.deadLetters$.subscribe((d) => dead.push(d));
  open.push(system);
  return { system, dead, transport };
}

/**
 * Call while NATS is up: `lost` resolves once `transport` has seen it go away. A cluster store of the
 * transport hears that from it, in the same turn as the transport starts holding frames.
 */
async function watchOutage(transport: Transport): Promise<{ lost: Promise<void> }> {
  const store = await transport.store!('outage-watch');
  return {
    lost: new Promise((resolve) =>
      store.status!((reachable) => {
        if (!reachable) resolve();
      }),
    ),
  };
}

describe('nodes over NATS', () => {
  it('tell and ask an actor on another node, in order', async () => {
    const a = await node('shop', 'a');
    const b = await node('shop', 'b');
    b.system.spawn(counter, { name: 'counter' });
    const remote = a.system.ref('troupe://shop/b/counter', Counter);
    for (let i = 1; i <= 1000; i++) remote.tell('add', { by: i });
    expect(await remote.ask('get', {})).toBe(500_500);
  });

  it('drains its transport with the system: tells sent before drain() arrive, then closed() resolves', async () => {
    const a = await node('shop', 'a');
    const b = await node('shop', 'b');
    b.system.spawn(counter, { name: 'counter' });
    const remote = a.system.ref('troupe://shop/b/counter', Counter);
    for (let i = 1; i <= 100; i++) remote.tell('add', { by: i });
    await a.system.drain();
    expect(await a.transport.closed()).toBeUndefined();
    const local = b.system.ref('troupe://shop/b/counter', Counter);
    await expect.poll(() => local.ask('get', {})).toBe(5050);
    await b.transport.close();
    await expect(b.transport.drain()).resolves.toBeUndefined();
    expect(await b.transport.closed()).toBeUndefined();
  });

  it('keeps two clusters on one NATS apart', async () => {
    const x = await node('x', 'n1');
    const y = await node('y', 'n1');
    const xb = await node('x', 'n2');
    const yb = await node('y', 'n2');
    xb.system.spawn(counter, { name: 'counter' });
    yb.system.spawn(counter, { name: 'counter' });
    x.system.ref('troupe://x/n2/counter', Counter).tell('add', { by: 1 });
    y.system.ref('troupe://y/n2/counter', Counter).tell('add', { by: 100 });
    expect(await x.system.ref('troupe://x/n2/counter', Counter).ask('get', {})).toBe(1);
    expect(await y.system.ref('troupe://y/n2/counter', Counter).ask('get', {})).toBe(100);
    // A cluster cannot even address the other: the name is part of the address.
    x.system.ref('troupe://y/n2/counter', Counter).tell('add', { by: 1000 });
    expect(await y.system.ref('troupe://y/n2/counter', Counter).ask('get', {})).toBe(100);
  });

  it('keeps clusters with the same name apart by subject prefix', async () => {
    const a = await node('same', 'a', { prefix: 'tenant1' });
    const b1 = await node('same', 'b', { prefix: 'tenant1' });
    const b2 = await node('same', 'b', { prefix: 'tenant2' });
    b1.system.spawn(counter, { name: 'counter' });
    b2.system.spawn(counter, { name: 'counter' });
    a.system.ref('troupe://same/b/counter', Counter).tell('add', { by: 5 });
    expect(await a.system.ref('troupe://same/b/counter', Counter).ask('get', {})).toBe(5);
    expect(await b2.system.ref('troupe://same/b/counter', Counter).ask('get', {})).toBe(0);
  });

  it('holds messages while the NATS server is down and delivers them after it restarts', async () => {
    const a = await node('shop', 'a');
    const b = await node('shop', 'b');
    b.system.spawn(counter, { name: 'counter' });
    const remote = a.system.ref('troupe://shop/b/counter', Counter);
    remote.tell('add', { by: 1 });
    expect(await remote.ask('get', {})).toBe(1);
    const outage = await watchOutage(a.transport);
    await server.stop(true);
    await outage.lost;
    for (let i = 0; i < 100; i++) remote.tell('add', { by: 1 });
    await server.restart();
    await expect
      .poll(() => remote.ask('get', {}, { timeoutMs: 1000 }).catch(() => -1), { timeout: 10_000 })
      .toBe(101);
    expect(a.dead).toEqual([]);
  });

  it('fails messages with ERR_OUTBOX_FULL once the outage buffer is full', async () => {
    const a = await node('shop', 'a', { outboxBytes: 2000 });
    const remote = a.system.ref('troupe://shop/b/counter', Counter);
    const outage = await watchOutage(a.transport);
    await server.stop(true);
    await outage.lost;
    for (let i = 0; i < 100; i++) {
      remote.tell('add', { by: i });
      // One frame per turn: let each go to the transport.
      await new Promise((r) => setImmediate(r));
    }
    const full = a.dead.filter((d) => d.error?.code === 'ERR_OUTBOX_FULL');
    expect(full.length).toBeGreaterThan(50);
    expect(full[0]).toMatchObject({ reason: 'transport-failed', messageType: 'nt.counter.add' });
  });
});

describe('NATS security options', () => {
  it('passes user and password through, and fails with ERR_TRANSPORT without them', async () => {
    const secured = await NatsServer.start({ args: ['--user', 'troupe', '--pass', 's3cret'] });
    try {
      await expect(
        natsTransport({ servers: secured.url, connection: { maxReconnectAttempts: 0 } }),
      ).rejects.toMatchObject({ code: 'ERR_TRANSPORT' });
      const a = await createNode({
        name: 'sec',
        node: 'a',
        transport: await natsTransport({ servers: secured.url, user: 'troupe', pass: 's3cret' }),
        deadLetterLog: () => {},
      });
      const b = await createNode({
        name: 'sec',
        node: 'b',
        transport: await natsTransport({ servers: secured.url, user: 'troupe', pass: 's3cret' }),
        deadLetterLog: () => {},
      });
      open.push(a, b);
      b.spawn(counter, { name: 'counter' });
      a.ref('troupe://sec/b/counter', Counter).tell('add', { by: 4 });
      expect(await a.ref('troupe://sec/b/counter', Counter).ask('get', {})).toBe(4);
    } finally {
      await Promise.all(open.splice(0).map((s) => s.close()));
      await secured.dispose();
    }
  });

  it('passes a token through', async () => {
    const secured = await NatsServer.start({ args: ['--auth', 'tok3n'] });
    try {
      const transport = await natsTransport({ servers: secured.url, token: 'tok3n' });
      const a = await createNode({ name: 'tok', node: 'a', transport, deadLetterLog: () => {} });
      await a.close();
      await expect(
        natsTransport({ servers: secured.url, token: 'wrong', connection: { maxReconnectAttempts: 0 } }),
      ).rejects.toMatchObject({ code: 'ERR_TRANSPORT' });
    } finally {
      await secured.dispose();
    }
  });
});

describe('NATS nkeys and TLS', () => {
  it('passes an nkey authenticator through', async () => {
    const user = createUser();
    const dir = await mkdtemp(join(tmpdir(), 'troupe-nkey-'));
    const conf = join(dir, 'server.conf');
    await writeFile(conf, `authorization { users = [ { nkey: "${user.getPublicKey()}" } ] }\n`);
    const secured = await NatsServer.start({ args: ['-c', conf] });
    try {
      const transport = await natsTransport({
        servers: secured.url,
        authenticator: nkeyAuthenticator(user.getSeed()),
      });
      const a = await createNode({ name: 'nk', node: 'a', transport, deadLetterLog: () => {} });
      a.spawn(counter, { name: 'counter' });
      await a.close();
      await expect(
        natsTransport({ servers: secured.url, connection: { maxReconnectAttempts: 0 } }),
      ).rejects.toMatchObject({ code: 'ERR_TRANSPORT' });
    } finally {
      await secured.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('passes TLS options through', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'troupe-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      key,
      '-out',
      cert,
    ]);
    const secured = await NatsServer.start({ args: ['--tls', '--tlscert', cert, '--tlskey', key] });
    try {
      const transport = await natsTransport({ servers: secured.url, tls: { caFile: cert } });
      const a = await createNode({ name: 'tls', node: 'a', transport, deadLetterLog: () => {} });
      const b = await createNode({
        name: 'tls',
        node: 'b',
        transport: await natsTransport({ servers: secured.url, tls: { caFile: cert } }),
        deadLetterLog: () => {},
      });
      b.spawn(counter, { name: 'counter' });
      a.ref('troupe://tls/b/counter', Counter).tell('add', { by: 2 });
      expect(await a.ref('troupe://tls/b/counter', Counter).ask('get', {})).toBe(2);
      await a.close();
      await b.close();
    } finally {
      await secured.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('forged requests', () => {
  it('keep the node sending and receiving: a reply address NATS refuses, a huge correlation id', async () => {
    const a = await node('forge', 'a');
    const b = await node('forge', 'b');
    b.system.spawn(counter, { name: 'counter' });
    // The forged asks reach the counter; b then tries to answer where NATS will not take it.
    let handled = 0;
    b.system.use({
      name: 'count',
      receive: (_message, next) => {
        const result = next();
        handled++;
        return result;
      },
    });
    const nc = await connect({ servers: server.url });
    try {
      const forged = (extra: Record<string, unknown>) =>
        new TextEncoder().encode(
          JSON.stringify({
            id: 'x',
            to: 'troupe://forge/b/counter',
            type: 'nt.counter.get',
            body: {},
            ...extra,
          }),
        );
      nc.publish('troupe.forge.node.b', forged({ correlationId: 'c1', replyTo: 'troupe://forge/x y/' }));
      nc.publish(
        'troupe.forge.node.b',
        forged({ correlationId: '\u00ff'.repeat(400_000), replyTo: 'troupe://forge/a/' }),
      );
      await nc.flush();
    } finally {
      await nc.close();
    }
    await vi.waitFor(() => expect(handled).toBe(2));
    const remote = a.system.ref('troupe://forge/b/counter', Counter);
    remote.tell('add', { by: 7 });
    expect(await remote.ask('get', {}, { timeoutMs: 2000 })).toBe(7);
    expect(
      await b.system
        .ref('troupe://forge/a/nobody', Counter)
        .ask('get', {})
        .catch((e) => e.code),
    ).toBe('ERR_NO_SUCH_ACTOR');
  });
});
