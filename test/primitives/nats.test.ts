/**
 * Topics and groups over a real, private nats-server (test/harness): fanout to local and remote
 * subscribers, no NATS traffic while every subscriber is local (a spy connection on the topic's
 * subject shows it), subscriptions ending with their subscribers, groups across three nodes, and a
 * node killed with SIGKILL leaving the groups.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ActorSystem, createNode, type GroupChange, natsTransport } from '../../index.js';
import { NatsServer } from '../harness/nats.js';
import { NodeProcess } from '../harness/node-process.js';
import { Listener, listener, News } from './helpers.js';

let server: NatsServer;
let spy: NatsConnection;
beforeAll(async () => {
  server = await NatsServer.start();
  spy = await connect({ servers: server.url });
});
afterAll(async () => {
  await spy.close();
  await server.dispose();
});

const open: ActorSystem[] = [];
const processes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await Promise.all(processes.splice(0).map((p) => p.stop()));
});

async function nodes(cluster: string, ids: string[]): Promise<ActorSystem[]> {
  const out: ActorSystem[] = [];
  for (const node of ids) {
    const system = await createNode({
      name: cluster,
      node,
      transport: await natsTransport({ servers: server.url }),
      heartbeatMs: 100,
      downAfterMissed: 3,
      deadLetterLog: () => {},
    });
    open.push(system);
    out.push(system);
  }
  return out;
}

/** Counts what crosses NATS on a subject. */
async function watchSubject(subject: string): Promise<{ count: () => number }> {
  let count = 0;
  spy.subscribe(subject, {
    callback: () => {
      count++;
    },
  });
  await spy.flush();
  return { count: () => count };
}

const addresses = (refs: readonly { address: string }[]) => refs.map((r) => r.address).sort();

describe('topics over NATS', () => {
  it('fan out to local and remote subscribers; local-only delivery sends nothing to NATS', async () => {
    const [n1, n2, n3] = await nodes('tn', ['n1', 'n2', 'n3']);
    const wire = await watchSubject('troupe.tn.topic.news');
    const onN1 = n1!.topic('news', News);
    const mine = n1!.spawn(listener);
    onN1.subscribe(mine, 'news');
    for (let n = 1; n <= 5; n++) onN1.publish({ n });
    expect(await mine.ask('seen', {})).toEqual([1, 2, 3, 4, 5]);

    const theirs = [n2!.spawn(listener), n3!.spawn(listener), n3!.spawn(listener)];
    n2!.topic('news', News).subscribe(theirs[0]!, 'news');
    for (const s of theirs.slice(1)) n3!.topic('news', News).subscribe(s, 'news');
    await vi.waitFor(() => expect(onN1.nodes()).toEqual(['n2', 'n3']));
    onN1.publish({ n: 6 });
    onN1.publish({ n: 7 });
    for (const s of theirs) await vi.waitFor(async () => expect(await s.ask('seen', {})).toEqual([6, 7]));
    // NATS keeps one publisher's order: had the five local-only publications gone out, they would
    // have been seen before these two.
    await vi.waitFor(() => expect(wire.count()).toBe(2));
    expect(await mine.ask('seen', {})).toEqual([1, 2, 3, 4, 5, 6, 7]);

    // n3's subscribers stop: n3 leaves the subject; n2 still gets every publication.
    for (const s of theirs.slice(1)) await n3!.stop(s);
    await vi.waitFor(() => expect(onN1.nodes()).toEqual(['n2']));
    onN1.publish({ n: 8 });
    await vi.waitFor(async () => expect(await theirs[0]!.ask('seen', {})).toEqual([6, 7, 8]));
    await n2!.stop(theirs[0]!);
    await vi.waitFor(() => expect(onN1.nodes()).toEqual([]));
    const before = wire.count();
    onN1.publish({ n: 9 });
    expect(await mine.ask('seen', {})).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // A marker from n2 on the same subject: once it is seen, n1's publication would have been too.
    const marker = n2!.spawn(listener);
    n2!.topic('news', News).subscribe(marker, 'news');
    await vi.waitFor(() => expect(onN1.nodes()).toEqual(['n2']));
    onN1.publish({ n: 10 });
    await vi.waitFor(async () => expect(await marker.ask('seen', {})).toEqual([10]));
    expect(wire.count()).toBe(before + 1);
  });
});

describe('groups over NATS', () => {
  it('join, leave and members across three nodes; a member that stops leaves', async () => {
    const [n1, n2, n3] = await nodes('gn', ['n1', 'n2', 'n3']);
    const a = n1!.spawn(listener);
    const b = n2!.spawn(listener);
    const c = n3!.spawn(listener);
    n1!.groups.join('workers', a);
    n2!.groups.join('workers', b);
    n3!.groups.join('workers', c);
    for (const system of [n1!, n2!, n3!]) {
      await vi.waitFor(() =>
        expect(addresses(system.groups.members('workers'))).toEqual(addresses([a, b, c])),
      );
    }
    for (const member of n1!.groups.members('workers', Listener)) member.tell('news', { n: 1 });
    for (const member of [a, b, c])
      await vi.waitFor(async () => expect(await member.ask('seen', {})).toEqual([1]));
    n2!.groups.leave('workers', b);
    await n3!.stop(c);
    for (const system of [n1!, n2!, n3!]) {
      await vi.waitFor(() => expect(addresses(system.groups.members('workers'))).toEqual([a.address]));
    }
  });

  it('a node killed with SIGKILL leaves every group, in the view of the others', async () => {
    const [n1] = await nodes('gk', ['n1']);
    const changes: GroupChange[] = [];
    n1!.groups.changes('workers').subscribe((c) => changes.push(c));
    const local = n1!.spawn(listener);
    n1!.groups.join('workers', local);
    const victim = await NodeProcess.start(server.url, 'gk', 'n9', 100);
    processes.push(victim);
    const remote = await victim.call<string>({ cmd: 'join', group: 'workers' });
    await vi.waitFor(() =>
      expect(addresses(n1!.groups.members('workers'))).toEqual([local.address, remote].sort()),
    );
    victim.kill();
    await vi.waitFor(() => expect(addresses(n1!.groups.members('workers'))).toEqual([local.address]), {
      timeout: 5000,
    });
    expect(changes.at(-1)).toEqual({
      kind: 'left',
      group: 'workers',
      member: remote,
      node: 'n9',
      reason: 'node-down',
    });
  });
});
