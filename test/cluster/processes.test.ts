/**
 * Nodes as separate processes over a private nats-server: remote tell and ask across three nodes,
 * kill -9 and failover of named actors, a NATS restart with messages held and delivered, two
 * clusters on one NATS, and a graceful leave that loses nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../index.js';
import { NatsServer } from '../harness/nats.js';
import { NodeProcess } from '../harness/node-process.js';

let server: NatsServer;
const nodes: NodeProcess[] = [];

beforeAll(async () => {
  server = await NatsServer.start();
});
afterAll(async () => {
  await server.dispose();
});
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
  if (!server.running) await server.restart();
});

async function start(cluster: string, ids: string[], heartbeatMs = 300): Promise<NodeProcess[]> {
  const started = await Promise.all(ids.map((id) => NodeProcess.start(server.url, cluster, id, heartbeatMs)));
  nodes.push(...started);
  // Every node has heard every other.
  await Promise.all(
    started.map((n) => expect.poll(() => n.call<unknown[]>({ cmd: 'members' })).toHaveLength(ids.length)),
  );
  return started;
}

interface Total {
  total: number;
  node: string;
}

describe('nodes as processes', () => {
  it('tell and ask between three nodes', async () => {
    const [a, b, c] = await start('p3', ['a', 'b', 'c']);
    const all = [a!, b!, c!];
    for (const from of all) {
      for (const to of all) {
        if (from === to) continue;
        await from.call({ cmd: 'tell', to: `troupe://p3/${to.node}/counter`, by: 1 });
      }
    }
    for (const from of all) {
      for (const to of all) {
        if (from === to) continue;
        await expect
          .poll(() => from.call<Total>({ cmd: 'ask', to: `troupe://p3/${to.node}/counter` }), {
            timeout: 5000,
          })
          .toEqual({ total: 2, node: to.node });
      }
    }
  }, 30_000);

  it("answers for a killed node's named actors from a survivor within 2 s of it being declared down", async () => {
    const [a, b, c] = await start('kill', ['a', 'b', 'c']);
    const first = await a!.call<Total>({ cmd: 'balance', key: 'k' });
    const victim = [a!, b!, c!].find((n) => n.node === first.node)!;
    const survivor = [a!, b!, c!].find((n) => n !== victim)!;
    victim.kill();
    await expect
      .poll(() => survivor.call<Total>({ cmd: 'balance', key: 'k', timeoutMs: 300 }), { timeout: 10_000 })
      .not.toMatchObject({ node: victim.node });
    const at = Date.now();
    const events = await survivor.call<{ type: string; node?: string; wall: number }[]>({ cmd: 'events' });
    const down = events.find((e) => e.type === 'member-down' && e.node === victim.node);
    expect(down, 'the survivor declared the victim down').toBeDefined();
    expect(at - down!.wall).toBeLessThan(2000);
  }, 30_000);

  it('holds messages while the NATS server restarts and delivers them after', async () => {
    const [a, b] = await start('restart', ['a', 'b']);
    await a!.call({ cmd: 'tell', to: 'troupe://restart/b/counter', by: 1 });
    await expect
      .poll(() => a!.call<Total>({ cmd: 'ask', to: 'troupe://restart/b/counter' }), { timeout: 5000 })
      .toMatchObject({ total: 1 });
    await server.stop(true);
    // Once a's transport has seen NATS go, it holds what is sent.
    await expect.poll(() => a!.call<boolean>({ cmd: 'reachable' })).toBe(false);
    for (let i = 0; i < 50; i++) await a!.call({ cmd: 'tell', to: 'troupe://restart/b/counter', by: 1 });
    await server.restart();
    await expect
      .poll(() => a!.call<Total>({ cmd: 'ask', to: 'troupe://restart/b/counter' }), { timeout: 15_000 })
      .toMatchObject({ total: 51 });
    expect(b!.alive).toBe(true);
  }, 40_000);

  it('keeps two clusters on one NATS apart, even with the same node ids', async () => {
    const [x1, x2] = await start('x', ['n1', 'n2']);
    const [y1, y2] = await start('y', ['n1', 'n2']);
    await x1!.call({ cmd: 'tell', to: 'troupe://x/n2/counter', by: 1 });
    await y1!.call({ cmd: 'tell', to: 'troupe://y/n2/counter', by: 10 });
    await x1!.call({ cmd: 'deposit', key: 'shared', by: 1 });
    await y1!.call({ cmd: 'deposit', key: 'shared', by: 10 });
    await expect
      .poll(() => x2!.call<Total>({ cmd: 'ask', to: 'troupe://x/n2/counter' }), { timeout: 5000 })
      .toMatchObject({ total: 1 });
    await expect
      .poll(() => y2!.call<Total>({ cmd: 'ask', to: 'troupe://y/n2/counter' }), { timeout: 5000 })
      .toMatchObject({ total: 10 });
    expect((await x2!.call<Total>({ cmd: 'balance', key: 'shared' })).total).toBe(1);
    expect((await y2!.call<Total>({ cmd: 'balance', key: 'shared' })).total).toBe(10);
  }, 30_000);

  it('loses nothing when a node leaves gracefully while messages keep coming', async () => {
    const [a, b, c] = await start('leave', ['a', 'b', 'c']);
    const keys = Array.from({ length: 12 }, (_, i) => `acc-${i}`);
    const hosts = await Promise.all(keys.map((key) => a!.call<Total>({ cmd: 'balance', key })));
    const leaver = [b!, c!].find((n) => hosts.some((h) => h.node === n.node)) ?? b!;
    const rounds = 10;
    let twoRoundsSent!: () => void;
    const leaveNow = new Promise<void>((r) => (twoRoundsSent = r));
    const sending = (async () => {
      for (let r = 0; r < rounds; r++) {
        for (const key of keys) await a!.call({ cmd: 'deposit', key, by: 1 });
        if (r === 1) twoRoundsSent();
        // The workload's pace: the rounds spread over the leave.
        await sleep(10);
      }
    })();
    await leaveNow;
    const leftHandled = await leaver.call<Record<string, number>>({ cmd: 'drain' });
    await sending;
    // Every deposit reached an activation: the one that left, or the one that took over.
    const stayers = [a!, b!, c!].filter((n) => n !== leaver);
    for (const key of keys) {
      await expect
        .poll(
          async () => {
            const counts = await Promise.all(
              stayers.map((n) => n.call<Record<string, number>>({ cmd: 'handled' })),
            );
            return [leftHandled, ...counts].reduce(
              (sum, h) => sum + (h[`troupe://leave/@account/${key}`] ?? 0),
              0,
            );
          },
          { timeout: 5000, message: key },
        )
        .toBe(rounds);
    }
  }, 40_000);
});
