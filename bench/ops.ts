/**
 * The operator's side (issue 15):
 * - `ops.introspect.tree`: ms for what `troupe tree` does on a 3-node cluster holding 30,000 actors
 *   (every node's tree asked for in pages over NATS through `connectCluster`), shown next to the
 *   three nodes' own `system.tree()` calls in process, the floor. Goal: reported.
 * - `ops.dashboard.overhead`: kernel tell msg/s on a node that serves the dashboard, with a dashboard
 *   client (an SSE stream) connected, against the same node with none. Goal: ratio >= 0.95.
 */
import { z } from 'zod';
import { type ActorSystem, behavior, createNode, defineProtocol, natsTransport, tell } from '../index.js';
import { ClusterView, connectCluster, startDashboardServer, startIntrospection } from '../ops/index.js';
import { NatsServer } from '../test/harness/nats.js';
import type { BenchCase, BenchTools } from './remote.js';

const Leaf = defineProtocol('bench.ops.leaf', { n: tell(z.object({})) });
const meter = { seen: 0, target: 0, done: () => {} };
const leaf = behavior({
  protocols: [Leaf],
  handlers: {
    n: () => {
      if (++meter.seen === meter.target) meter.done();
    },
  },
});

async function node(server: NatsServer, cluster: string, id: string): Promise<ActorSystem> {
  const system = await createNode({
    name: cluster,
    node: id,
    transport: await natsTransport({ servers: server.url }),
    joinCluster: true,
    devChecks: false,
    mailbox: { capacity: 1_000_000 },
    deadLetterLog: () => {},
  });
  startIntrospection(system);
  return system;
}

export function opsCases(tools: BenchTools): BenchCase[] {
  const { quick, sideBySide, result } = tools;
  return [
    {
      name: 'ops.introspect.tree',
      unit: 'ms (3 nodes, 30k actors)',
      goal: 'reported',
      async run() {
        const server = await NatsServer.start();
        const perNode = quick ? 1000 : 10_000;
        const systems = await Promise.all(['a', 'b', 'c'].map((id) => node(server, 'bench-tree', id)));
        for (const system of systems) for (let i = 0; i < perNode; i++) system.spawn(leaf, { name: `w${i}` });
        const client = await connectCluster({
          servers: server.url,
          cluster: 'bench-tree',
          timeoutMs: 30_000,
        });
        try {
          const nodes = (await client.members()).map((m) => m.node);
          if (nodes.length !== 3) throw new Error(`expected 3 members, got ${nodes.join(', ')}`);
          const [troupe, local, pairs] = await sideBySide(
            async () => {
              const start = performance.now();
              const trees = await Promise.all(nodes.map((n) => client.tree(n)));
              if (!trees.every((t) => t.ok && t.value.children.length >= perNode))
                throw new Error('a tree is missing');
              return performance.now() - start;
            },
            async () => {
              const start = performance.now();
              for (const system of systems) system.tree();
              return performance.now() - start;
            },
            quick ? 2 : 6,
          );
          return result(
            'ops.introspect.tree',
            'ms (3 nodes, 30k actors)',
            troupe,
            'system.tree() in process',
            local,
            false,
            pairs,
            'reported',
            () => true,
          );
        } finally {
          await client.close();
          await Promise.all(systems.map((s) => s.close()));
          await server.dispose();
        }
      },
    },
    {
      name: 'ops.dashboard.overhead',
      unit: 'msg/s',
      goal: 'ratio >= 0.95',
      async run() {
        const server = await NatsServer.start();
        const system = await node(server, 'bench-dash', 'a');
        const client = await connectCluster({ servers: server.url, cluster: 'bench-dash' });
        const dashboard = await startDashboardServer(new ClusterView(client), { port: 0, host: '127.0.0.1' });
        const target = system.spawn(leaf, { name: 'target' });
        // Rounds of about a second at this rate: each sees the first poll and the next ones.
        const total = quick ? 200_000 : 10_000_000;
        const chunk = 10_000;
        const tells = async () => {
          const start = performance.now();
          for (let sent = 0; sent < total; sent += chunk) {
            meter.seen = 0;
            meter.target = chunk;
            const done = new Promise<void>((resolve) => {
              meter.done = resolve;
            });
            for (let i = 0; i < chunk; i++) target.tell('n', {});
            await done;
          }
          return total / ((performance.now() - start) / 1000);
        };
        try {
          const [watched, alone, pairs] = await sideBySide(async () => {
            // A dashboard page's stream: snapshots and events arrive while the tells run.
            const abort = new AbortController();
            const response = await fetch(`${dashboard.url}events`, { signal: abort.signal });
            const reader = response.body!.getReader();
            const first = await reader.read();
            if (first.done) throw new Error('the dashboard stream ended');
            const reading = (async () => {
              try {
                for (;;) if ((await reader.read()).done) return;
              } catch {
                // Aborted at the end of the round.
              }
            })();
            try {
              return await tells();
            } finally {
              abort.abort();
              await reading;
            }
          }, tells);
          return result(
            'ops.dashboard.overhead',
            'msg/s',
            watched,
            'no dashboard client',
            alone,
            true,
            pairs,
            'ratio >= 0.95',
            (r) => r.ratio >= 0.95,
          );
        } finally {
          await dashboard.close();
          await client.close();
          await system.close();
          await server.dispose();
        }
      },
    },
  ];
}
