/**
 * Introspection of a live cluster: two `troupe node` processes and a node without kinds in this
 * process, on a private nats-server; the `troupe` commands (members, tree, actors, events, stop)
 * against it by NATS URL and cluster name. Every node is found through the membership bucket,
 * whatever it hosts, and a node killed with -9 is listed as not answering.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ActorSystem, createNode, natsTransport } from '../../index.js';
import { main } from '../../ops/cli/main.js';
import { startIntrospection } from '../../ops/index.js';
import { NatsServer } from '../harness/nats.js';
import { TroupeProcess } from '../harness/troupe-cli.js';
import { Front, Worker } from './node-config.js';

const CLUSTER = 'intro';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('troupe members, tree, actors, events and stop against a live cluster', () => {
  let server: NatsServer;
  let n1: TroupeProcess;
  let n2: TroupeProcess;
  let bare: ActorSystem;
  let client: ActorSystem;
  const at = () => ['--nats', server.url, '--cluster', CLUSTER, '--timeout', '1000'];

  beforeAll(async () => {
    server = await NatsServer.start();
    const env = (node: string) => ({
      TROUPE_NATS_URL: server.url,
      TROUPE_CLUSTER: CLUSTER,
      TROUPE_NODE: node,
      TROUPE_OPS_PORT: '0',
      TROUPE_HEARTBEAT_MS: '200',
    });
    n1 = TroupeProcess.start(['node', '--config', 'test/ops/node-config.ts'], env('n1'));
    n2 = TroupeProcess.start(['node', '--config', 'test/ops/node-config.ts'], env('n2'));
    // A node with no kinds at all: it joins the membership and answers all the same.
    bare = await createNode({
      name: CLUSTER,
      node: 'n3',
      transport: await natsTransport({ servers: server.url }),
      joinCluster: true,
      heartbeatMs: 200,
      deadLetterLog: () => {},
    });
    startIntrospection(bare);
    await Promise.all([n1.log('node started'), n2.log('node started')]);
    client = await createNode({
      name: CLUSTER,
      node: 'client',
      transport: await natsTransport({ servers: server.url }),
      deadLetterLog: () => {},
    });
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await bare?.close();
    await n1?.stop();
    await n2?.stop();
    await server?.dispose();
  });

  it('lists every member, each answering with its own view of the cluster', async () => {
    const { code, out } = await run(['members', ...at(), '--json']);
    expect(code).toBe(0);
    const members = JSON.parse(out) as { node: string; answered: boolean; info?: { members: unknown[] } }[];
    expect(members.map((m) => [m.node, m.answered])).toEqual([
      ['n1', true],
      ['n2', true],
      ['n3', true],
    ]);
    await expect
      .poll(
        async () =>
          (JSON.parse((await run(['members', ...at(), '--json'])).out) as typeof members)[0]!.info!.members,
      )
      .toEqual([
        { node: 'n1', state: 'up' },
        { node: 'n2', state: 'up' },
        { node: 'n3', state: 'up' },
      ]);
    const table = await run(['members', ...at()]);
    expect(table.out).toMatch(/^NODE\s+STATE\s+HEARTBEAT\s+ANSWERS\s+UPTIME\s+ACTORS\s+MAILBOXES\s+VIEW$/m);
    expect(table.out).toMatch(/^n3\s+up\s+\S+ ago\s+yes\s/m);
  });

  it('draws the tree of one node, and of every node', async () => {
    const one = await run(['tree', ...at(), '--node', 'n1']);
    expect(one.code).toBe(0);
    expect(one.out).toMatch(/^troupe:\/\/intro\/n1\s+guardian/m);
    expect(one.out).toMatch(/app\s+supervisor one_for_one\s+running/);
    expect(one.out).toMatch(/worker\s+worker\s+running\s+restarts=0/);
    const all = await run(['tree', ...at(), '--json']);
    const trees = JSON.parse(all.out) as { node: string; tree: { children: { name: string }[] } }[];
    expect(trees.map((t) => t.node)).toEqual(['n1', 'n2', 'n3']);
    expect(trees[2]!.tree.children.map((c) => c.name)).toEqual(['troupe-ops']);
  });

  it('lists the named actors where they live', async () => {
    const reply = await client.ref(`troupe://${CLUSTER}/n1/front`, Front).ask('greet', { key: 'g1', n: 1 });
    const { out } = await run(['actors', ...at()]);
    expect(out).toMatch(/^ADDRESS\s+NODE\s+STATUS\s+RESTARTS\s+MAILBOX$/m);
    expect(out).toMatch(
      new RegExp(`^troupe://intro/@greeter/g1\\s+${reply.node}\\s+running\\s+0\\s+0$`, 'm'),
    );
  });

  it('shows crashes and restarts as events, and follows them live', async () => {
    const follow = TroupeProcess.start(['events', ...at(), '--follow', '--interval', '100']);
    try {
      client.ref(`troupe://${CLUSTER}/n2/app/worker`, Worker).tell('crash', { why: 'injected by the test' });
      await expect
        .poll(() => follow.stdout, { timeout: 15_000 })
        .toMatch(/n2\s+crashed\s+app\/worker\s+injected by the test/);
      await expect.poll(() => follow.stdout, { timeout: 15_000 }).toMatch(/n2\s+restarted\s+app\/worker/);
      follow.signal('SIGINT');
      expect((await follow.exited).code).toBe(0);
    } finally {
      await follow.stop();
    }
    const once = await run(['events', ...at(), '--node', 'n2', '--json']);
    const events = once.out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; data: { error?: { message: string } } });
    expect(events.find((e) => e.type === 'actor-crashed')?.data.error?.message).toBe('injected by the test');
  });

  it('stops an actor by address, and says why when it cannot', async () => {
    const stopped = await run(['stop', ...at(), `troupe://${CLUSTER}/n1/hello`]);
    expect(stopped).toMatchObject({ code: 0, out: 'stopped troupe://intro/n1/hello on node n1\n' });
    const tree = await run(['tree', ...at(), '--node', 'n1']);
    expect(tree.out).not.toMatch(/hello/);
    const again = await run(['stop', ...at(), `troupe://${CLUSTER}/n1/hello`]);
    expect(again.code).toBe(1);
    expect(again.err).toContain('no live actor troupe://intro/n1/hello on node n1');
    // An actor with a parent (a supervisor's child) is stopped as its parent would: no restart.
    const nested = await run(['stop', ...at(), `troupe://${CLUSTER}/n1/app/worker`]);
    expect(nested).toMatchObject({ code: 0, out: 'stopped troupe://intro/n1/app/worker on node n1\n' });
    const after = await run(['tree', ...at(), '--node', 'n1']);
    expect(after.out).toMatch(/-- app\s+supervisor/);
    expect(after.out).not.toMatch(/-- worker\s/);
    const malformed = await run(['stop', ...at(), 'not an address']);
    expect(malformed.code).toBe(1);
  });

  it('lists a node that does not answer as such, without waiting on it', async () => {
    n2.signal('SIGKILL');
    await n2.exited;
    const { code, out } = await run(['members', ...at(), '--timeout', '300']);
    expect(code).toBe(0);
    // Its heartbeat stays in the bucket until it expires; it no longer answers.
    expect(out).toMatch(/^n2\s+up\s+\S+ ago\s+no \(no answer within 300 ms\)/m);
    expect(out).toMatch(/^n1\s+up\s+\S+ ago\s+yes/m);
    const tree = await run(['tree', ...at(), '--timeout', '300']);
    expect(tree.code).toBe(1);
    expect(tree.out).toContain('node n2: no answer within 300 ms');
  });

  it('needs a cluster name', async () => {
    const { code, err } = await run(['members', '--nats', server.url]);
    expect(code).toBe(2);
    expect(err).toContain('--cluster <name> (or TROUPE_CLUSTER) is required');
  });
});
