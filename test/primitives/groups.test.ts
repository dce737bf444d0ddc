/**
 * Process groups on one node and across nodes of an in-process network: join, leave, members, the
 * change events, members that stop, and nodes that close or fall silent (a crash as the network
 * sees it).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type ActorSystem,
  createNode,
  createSystem,
  type DeadLetterEvent,
  type GroupChange,
  inProcessNetwork,
  type SystemEvent,
  type Transport,
} from '../../index.js';
import { Listener, listener } from './helpers.js';

const open: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

/** A transport whose node can be cut off from the network: nothing in, nothing out. */
function cuttable(transport: Transport) {
  let cut = false;
  const wrapped: Transport = {
    kind: transport.kind,
    open: (...a) => transport.open(...a),
    publish: (...a) => {
      if (!cut) transport.publish(...a);
    },
    close: () => transport.close(),
    drain: () => transport.drain(),
    closed: () => transport.closed(),
    [Symbol.asyncDispose]: () => transport.drain(),
    subscribeTopic: (topic, deliver) =>
      transport.subscribeTopic!(topic, (bytes) => {
        if (!cut) deliver(bytes);
      }),
    unsubscribeTopic: (topic) => transport.unsubscribeTopic!(topic),
    publishTopic: (topic, bytes) => {
      if (!cut) transport.publishTopic!(topic, bytes);
    },
  };
  return { transport: wrapped, cut: () => (cut = true) };
}

async function nodes(count: number) {
  const network = inProcessNetwork();
  const out = [];
  for (let i = 1; i <= count; i++) {
    const wire = cuttable(network.transport());
    const system = await createNode({
      name: 'gp',
      node: `n${i}`,
      transport: wire.transport,
      heartbeatMs: 40,
      downAfterMissed: 3,
      deadLetterLog: () => {},
    });
    open.push(system);
    out.push({ system, cut: wire.cut });
  }
  return out;
}

const addresses = (refs: readonly { address: string }[]) => refs.map((r) => r.address);

describe('groups on one node', () => {
  it('joins, leaves, lists members and tells of each change', async () => {
    const system = createSystem({ name: 'gp', deadLetterLog: () => {} });
    open.push(system);
    const events: SystemEvent[] = [];
    system.events$.subscribe((e) => {
      if (e.type === 'group-joined' || e.type === 'group-left') events.push(e);
    });
    const changes: GroupChange[] = [];
    system.groups.changes('g').subscribe((c) => changes.push(c));
    const a = system.spawn(listener);
    const b = system.spawn(listener);
    system.groups.join('g', a);
    system.groups.join('g', a);
    system.groups.join('g', b);
    system.groups.join('other', b);
    expect(addresses(system.groups.members('g', Listener))).toEqual([a.address, b.address]);
    expect(system.groups.names()).toEqual(['g', 'other']);
    expect(system.groups.leave('g', a)).toBe(true);
    expect(system.groups.leave('g', a)).toBe(false);
    await system.stop(b);
    expect(system.groups.members('g')).toEqual([]);
    expect(system.groups.names()).toEqual([]);
    expect(changes).toEqual([
      { kind: 'joined', group: 'g', member: a.address, node: 'local' },
      { kind: 'joined', group: 'g', member: b.address, node: 'local' },
      { kind: 'left', group: 'g', member: a.address, node: 'local', reason: 'left' },
      { kind: 'left', group: 'g', member: b.address, node: 'local', reason: 'stopped' },
    ]);
    expect(events.map((e) => e.type)).toEqual([
      'group-joined',
      'group-joined',
      'group-joined',
      'group-left',
      'group-left',
      'group-left',
    ]);
  });

  it('refuses an empty group name and members that are not live local actors', async () => {
    const system = createSystem({ name: 'gp', deadLetterLog: () => {} });
    open.push(system);
    const a = system.spawn(listener);
    expect(() => system.groups.join('', a)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_NAME' }));
    expect(() => system.groups.join('g', system.ref('troupe://gp/other/x'))).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    await system.stop(a);
    expect(() => system.groups.join('g', a)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});

describe('groups across nodes (in-process network)', () => {
  it('every node sees every member; members that leave or stop go from every view', async () => {
    const [n1, n2, n3] = await nodes(3);
    const a = n1!.system.spawn(listener);
    const b = n2!.system.spawn(listener);
    const c = n3!.system.spawn(listener);
    n1!.system.groups.join('g', a);
    n2!.system.groups.join('g', b);
    n3!.system.groups.join('g', c);
    for (const { system } of [n1!, n2!, n3!]) {
      await vi.waitFor(() =>
        expect(addresses(system.groups.members('g')).sort()).toEqual(
          [a.address, b.address, c.address].sort(),
        ),
      );
    }
    // A remote member's ref reaches it.
    const fromN1 = n1!.system.groups.members('g', Listener).find((m) => m.address === c.address)!;
    fromN1.tell('news', { n: 7 });
    await vi.waitFor(async () => expect(await c.ask('seen', {})).toEqual([7]));

    n2!.system.groups.leave('g', b);
    await n3!.system.stop(c);
    for (const { system } of [n1!, n2!, n3!]) {
      await vi.waitFor(() => expect(addresses(system.groups.members('g'))).toEqual([a.address]));
    }
  });

  it('a node that closes or goes silent leaves every group it had members in', async () => {
    const [n1, n2, n3] = await nodes(3);
    const changes: GroupChange[] = [];
    n1!.system.groups.changes('g').subscribe((c) => changes.push(c));
    const b = n2!.system.spawn(listener);
    const c = n3!.system.spawn(listener);
    n2!.system.groups.join('g', b);
    n3!.system.groups.join('g', c);
    await vi.waitFor(() => expect(n1!.system.groups.members('g')).toHaveLength(2));

    await n2!.system.close();
    await vi.waitFor(() => expect(addresses(n1!.system.groups.members('g'))).toEqual([c.address]));

    // n3 falls silent (as a killed process would): after downAfterMissed heartbeats it is gone.
    n3!.cut();
    await vi.waitFor(() => expect(n1!.system.groups.members('g')).toEqual([]), { timeout: 3000 });
    expect(changes.filter((x) => x.kind === 'left')).toEqual([
      { kind: 'left', group: 'g', member: b.address, node: 'n2', reason: expect.any(String) },
      { kind: 'left', group: 'g', member: c.address, node: 'n3', reason: 'node-down' },
    ]);
  });

  it('a node that starts later learns the existing members at once', async () => {
    const network = inProcessNetwork();
    const first = await createNode({
      name: 'gp',
      node: 'n1',
      transport: network.transport(),
      heartbeatMs: 60_000,
      deadLetterLog: () => {},
    });
    open.push(first);
    const a = first.spawn(listener);
    first.groups.join('g', a);
    const late = await createNode({
      name: 'gp',
      node: 'n2',
      transport: network.transport(),
      heartbeatMs: 60_000,
      deadLetterLog: () => {},
    });
    open.push(late);
    // With a minute between heartbeats, only the hello/answer exchange can tell it this soon.
    await vi.waitFor(() => expect(addresses(late.groups.members('g'))).toEqual([a.address]));
  });

  it("ignores a peer's claims about actors that are not its own, and malformed gossip", async () => {
    const network = inProcessNetwork();
    const system = await createNode({
      name: 'gp',
      node: 'n1',
      transport: network.transport(),
      deadLetterLog: () => {},
    });
    open.push(system);
    const refused: DeadLetterEvent[] = [];
    system.deadLetters$.subscribe((d) => refused.push(d));
    expect(system.groups.members('g')).toEqual([]);
    // A raw peer on the same network speaks on the directory topic.
    const raw = network.transport();
    await raw.open('gp', 'evil', { inbound: () => {}, replies: () => {} }, system.clock);
    const say = (message: unknown) =>
      raw.publishTopic!(
        '$directory',
        Buffer.from(typeof message === 'string' ? message : JSON.stringify(message)),
      );
    say('not json');
    say({
      op: 'sync',
      node: 'evil',
      incarnation: 'x',
      seq: 1,
      topics: [],
      groups: {
        g: ['troupe://gp/evil/ok', 'troupe://gp/n1/victim', 'troupe://other/evil/x', 'not an address', 42],
      },
    });
    await vi.waitFor(() => expect(addresses(system.groups.members('g'))).toEqual(['troupe://gp/evil/ok']));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ reason: 'malformed', messageType: '(directory)' });
    expect(refused[0]!.error?.code).toBe('ERR_VALIDATION');
    await raw.close();
  });

  it('says so, as a defect, when a node’s members do not fit in one directory message', async () => {
    const network = inProcessNetwork();
    const system = await createNode({
      name: 'gp',
      node: 'n1',
      transport: network.transport(),
      maxMessageBytes: 1024,
      deadLetterLog: () => {},
    });
    open.push(system);
    const defects: SystemEvent[] = [];
    system.events$.subscribe((e) => {
      if (e.type === 'hook-failed') defects.push(e);
    });
    for (let i = 0; i < 100; i++) system.groups.join('big', system.spawn(listener));
    await vi.waitFor(() => expect(defects.length).toBeGreaterThan(0));
    expect((defects[0] as { error: { code?: string } }).error.code).toBe('ERR_MESSAGE_TOO_LARGE');
  });

  it("follows the cluster's membership: a member it declares down leaves at once", async () => {
    const network = inProcessNetwork();
    const options = {
      name: 'gp',
      kinds: { worker: listener },
      // Gossip and heartbeats a minute apart: only the cluster's own verdict can act this soon.
      heartbeatMs: 60_000,
      deadLetterLog: () => {},
    };
    const n1 = await createNode({ ...options, node: 'n1', transport: network.transport() });
    const n2 = await createNode({ ...options, node: 'n2', transport: network.transport() });
    open.push(n1, n2);
    const member = n2.spawn(listener);
    n2.groups.join('g', member);
    await vi.waitFor(() => expect(addresses(n1.groups.members('g'))).toEqual([member.address]));
    expect(n1.members().map((m) => m.node)).toEqual(['n1', 'n2']);
    // n2's entry leaves the cluster store (as when its heartbeats expire from the KV bucket).
    const store = await network.transport().store!('gp');
    await store.withdraw('n2');
    await vi.waitFor(() => expect(n1.members().map((m) => m.node)).toEqual(['n1']));
    expect(n1.groups.members('g')).toEqual([]);
  });
});
