/**
 * The README's deployment procedure ("Deploying a cluster"): three `troupe node` processes from one
 * config on a private nats-server, then a rolling restart (SIGTERM, wait for exit 0, start again,
 * wait until it is back in the membership) of all three while a client keeps asking named actors.
 * Not one request may be lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ActorSystem, createNode, natsTransport } from '../../index.js';
import { NatsServer } from '../harness/nats.js';
import { TroupeProcess } from '../harness/troupe-cli.js';
import { Greeter, greeter } from './node-config.js';

const CLUSTER = 'deploy';
const NODES = ['node-1', 'node-2', 'node-3'];

describe('a rolling restart of three troupe node processes', () => {
  let server: NatsServer;
  const nodes = new Map<string, TroupeProcess>();
  let client: ActorSystem;

  const start = async (node: string) => {
    const p = TroupeProcess.start(['node', '--config', 'test/ops/node-config.ts'], {
      TROUPE_NATS_URL: server.url,
      TROUPE_CLUSTER: CLUSTER,
      TROUPE_NODE: node,
      TROUPE_OPS_PORT: '0',
      TROUPE_HEARTBEAT_MS: '250',
      TROUPE_DRAIN_TIMEOUT_MS: '10000',
    });
    nodes.set(node, p);
    await p.log('node started');
  };

  beforeAll(async () => {
    server = await NatsServer.start();
    await Promise.all(NODES.map(start));
    // The client is a member with the same kinds, as every node of a cluster registers them; it is
    // never restarted, so it keeps asking throughout.
    client = await createNode({
      name: CLUSTER,
      node: 'client',
      transport: await natsTransport({ servers: server.url }),
      kinds: { greeter },
      heartbeatMs: 250,
      deadLetterLog: () => {},
    });
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([...nodes.values()].map((n) => n.stop()));
    await server?.dispose();
  });

  it('loses no request', async () => {
    await expect
      .poll(() => client.members().filter((m) => m.state === 'up').length, { timeout: 30_000 })
      .toBe(4);
    let running = true;
    let answered = 0;
    const hosts = new Set<string>();
    const failures: string[] = [];
    const asker = async (lane: number) => {
      for (let i = 0; running; i++) {
        const key = `k${(lane * 7 + i) % 24}`;
        try {
          const reply = await client
            .actorOf('greeter', key, Greeter)
            .ask('greet', { n: i }, { timeoutMs: 10_000 });
          if (reply.n !== i) failures.push(`${key}: answered ${reply.n} for ${i}`);
          hosts.add(reply.node);
          answered++;
        } catch (error) {
          failures.push(`${key}: ${(error as Error).message}`);
        }
      }
    };
    const lanes = [0, 1, 2, 3].map(asker);
    await expect.poll(() => answered, { timeout: 30_000 }).toBeGreaterThan(50);
    for (const node of NODES) {
      const before = answered;
      const old = nodes.get(node)!;
      old.signal('SIGTERM');
      expect((await old.exited).code).toBe(0);
      await start(node);
      await expect
        .poll(() => client.members().find((m) => m.node === node)?.state, { timeout: 30_000 })
        .toBe('up');
      // The cluster kept answering while this node was away.
      await expect.poll(() => answered, { timeout: 30_000 }).toBeGreaterThan(before + 50);
    }
    running = false;
    await Promise.all(lanes);
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(200);
    expect([...hosts].sort()).toEqual(expect.arrayContaining(NODES));
  }, 240_000);
});
