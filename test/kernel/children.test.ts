import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ask, type Behavior, behavior, defineProtocol, type TreeNode, tell } from '../../index.js';
import { settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, makeSystem, rejection, thrown } from './helpers.js';

closeSystemsAfterEach();

const Node = defineProtocol('ch.node', {
  spawnChild: ask(z.object({ name: z.string() }), z.string()),
  spawnAnon: ask(z.object({}), z.string()),
  kids: ask(z.object({}), z.array(z.string())),
  parentOf: ask(z.object({}), z.string()),
  stopChild: ask(z.object({ name: z.string() }), z.boolean()),
  boom: tell(z.object({})),
  ping: ask(z.object({}), z.string()),
});

/** A node of a tree: spawns the children `shape` lists under its name in preStart, logs its postStop. */
function node(
  name: string,
  shape: Record<string, string[]>,
  log: string[],
): Behavior<typeof Node, undefined> {
  return behavior({
    protocols: [Node],
    preStart: (ctx) => {
      for (const child of shape[name] ?? []) ctx.spawn(node(child, shape, log), { name: child });
    },
    postStop: () => {
      log.push(name);
    },
    handlers: {
      spawnChild: ({ name }, ctx) => ctx.spawn(plainNode(), { name }).address,
      spawnAnon: (_b, ctx) => ctx.spawn(plainNode()).address,
      kids: (_b, ctx) => ctx.children().map((c) => c.address),
      parentOf: (_b, ctx) => ctx.parent?.address ?? 'none',
      stopChild: async ({ name }, ctx) => {
        const child = ctx.children().find((c) => c.address.endsWith(`/${name}`));
        if (child === undefined) return false;
        await ctx.stop(child);
        return true;
      },
      boom: () => {
        throw new Error('boom');
      },
      ping: (_b, ctx) => ctx.self.address,
    },
  });
}

function plainNode(): Behavior<typeof Node, undefined> {
  return node('', {}, []);
}

const addressOf = (path: string) => `troupe://troupe/local/${path}`;

describe('spawning children', () => {
  it('gives a child an address under its parent and a parent ref', async () => {
    const { system } = makeSystem();
    const root = system.spawn(plainNode(), { name: 'root' });
    expect(root.address).toBe(addressOf('root'));
    const childAddress = await root.ask('spawnChild', { name: 'kid' });
    expect(childAddress).toBe(addressOf('root/kid'));
    const child = system.ref(childAddress, Node);
    expect(await child.ask('parentOf', {})).toBe(root.address);
    expect(await root.ask('parentOf', {})).toBe('none');
  });

  it('names anonymous actors $<n> and lists the live children in start order', async () => {
    const { system } = makeSystem();
    const root = system.spawn(plainNode(), { name: 'root' });
    const a = await root.ask('spawnChild', { name: 'a' });
    const anon = await root.ask('spawnAnon', {});
    const b = await root.ask('spawnChild', { name: 'b' });
    expect(anon).toMatch(/^troupe:\/\/troupe\/local\/root\/\$[0-9a-z]+$/);
    expect(await root.ask('kids', {})).toEqual([a, anon, b]);
    expect(await root.ask('stopChild', { name: 'a' })).toBe(true);
    expect(await root.ask('kids', {})).toEqual([anon, b]);
  });

  it('refuses a name a live sibling has with ERR_NAME_TAKEN, and frees it once that one stopped', async () => {
    const { system } = makeSystem();
    const first = system.spawn(plainNode(), { name: 'dup' });
    expect(thrown(() => system.spawn(plainNode(), { name: 'dup' })).code).toBe('ERR_NAME_TAKEN');
    const root = system.spawn(plainNode(), { name: 'root' });
    await root.ask('spawnChild', { name: 'x' });
    expect((await rejection(root.ask('spawnChild', { name: 'x' }))).cause).toMatchObject({
      code: 'ERR_NAME_TAKEN',
    });
    await system.stop(first);
    const again = system.spawn(plainNode(), { name: 'dup' });
    expect(await again.ask('ping', {})).toBe(addressOf('dup'));
  });

  it.each(['', 'a/b', '$x', '@x'])('refuses the name %j with ERR_INVALID_NAME', (name) => {
    const { system } = makeSystem();
    expect(thrown(() => system.spawn(plainNode(), { name })).code).toBe('ERR_INVALID_NAME');
  });

  it('refuses an invalid child name with ERR_INVALID_NAME from ctx.spawn', async () => {
    const { system } = makeSystem();
    const root = system.spawn(plainNode(), { name: 'root' });
    const error = await rejection(root.ask('spawnChild', { name: 'a/b' }));
    expect(error.code).toBe('ERR_ACTOR_CRASHED');
    expect(error.cause).toMatchObject({ code: 'ERR_INVALID_NAME' });
  });
});

describe('stopping a tree', () => {
  const shape = { r: ['a', 'b'], a: ['a1', 'a2'], b: ['b1'] };

  it('stops leaf-first: grandchildren, then children, then the parent; siblings last-started first', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const r = system.spawn(node('r', shape, log), { name: 'r' });
    await settle(system);
    await system.stop(r);
    expect(log).toEqual(['b1', 'b', 'a2', 'a1', 'a', 'r']);
  });

  it('stops leaf-first on close() too, top-level actors last-started first', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    system.spawn(node('r', shape, log), { name: 'r' });
    system.spawn(node('s', { s: ['s1'] }, log), { name: 's' });
    await settle(system);
    await system.close();
    expect(log).toEqual(['s1', 's', 'b1', 'b', 'a2', 'a1', 'a', 'r']);
  });

  it('stops a crashed actor’s children before it restarts, and starts them again with it', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const r = system.spawn(node('r', shape, log), { name: 'r' });
    await settle(system);
    r.tell('boom', {});
    await settle(system);
    expect(log).toEqual(['b1', 'b', 'a2', 'a1', 'a', 'r']);
    expect(await r.ask('kids', {})).toEqual([addressOf('r/a'), addressOf('r/b')]);
  });

  it('refuses ctx.stop of an actor that is neither itself nor a child with ERR_ILLEGAL_STATE', async () => {
    const Stopper = defineProtocol('ch.stopper', {
      stopOther: ask(z.object({ address: z.string() }), z.string()),
    });
    const stopper = behavior({
      protocols: [Stopper],
      handlers: {
        stopOther: async ({ address }, ctx) => {
          try {
            await ctx.stop(ctx.system.ref(address));
            return 'stopped';
          } catch (error) {
            return (error as { code: string }).code;
          }
        },
      },
    });
    const { system } = makeSystem();
    const other = system.spawn(plainNode(), { name: 'other' });
    const ref = system.spawn(stopper);
    expect(await ref.ask('stopOther', { address: other.address })).toBe('ERR_ILLEGAL_STATE');
    expect(await other.ask('ping', {})).toBe(other.address);
  });

  it('refuses ctx.spawn on a stopping actor with ERR_ACTOR_STOPPED', async () => {
    const Late = defineProtocol('ch.late', { noop: tell(z.object({})) });
    let fromPostStop: unknown;
    const late = behavior({
      protocols: [Late],
      handlers: { noop: () => {} },
      postStop: (ctx) => {
        try {
          ctx.spawn(plainNode());
        } catch (error) {
          fromPostStop = error;
        }
      },
    });
    const { system } = makeSystem();
    await system.stop(system.spawn(late));
    expect(fromPostStop).toMatchObject({ code: 'ERR_ACTOR_STOPPED' });
  });

  it('refuses system.stop of an actor that has a parent with ERR_ILLEGAL_STATE', async () => {
    const { system } = makeSystem();
    const root = system.spawn(plainNode(), { name: 'root' });
    const child = system.ref(await root.ask('spawnChild', { name: 'c' }));
    expect((await rejection(system.stop(child))).code).toBe('ERR_ILLEGAL_STATE');
  });

  it("stops through a ref made from an address, and refuses another system's actor", async () => {
    const { system } = makeSystem();
    const other = makeSystem({ name: 'other' }).system;
    const root = system.spawn(plainNode(), { name: 'root' });
    const byAddress = system.ref(root.address);
    await system.stop(byAddress);
    expect(system.tree().children).toEqual([]);
    // Nothing there any more: nothing to stop.
    await system.stop(byAddress);
    const foreign = other.spawn(plainNode(), { name: 'theirs' });
    expect((await rejection(system.stop(foreign))).code).toBe('ERR_ILLEGAL_STATE');
    expect(other.tree().children.map((c) => c.status)).toEqual(['running']);
  });
});

describe('system.tree()', () => {
  const strip = (n: TreeNode): unknown => ({
    name: n.name,
    kind: n.kind,
    status: n.status,
    restarts: n.restarts,
    children: n.children.map(strip),
  });

  it('shows the live tree under the guardian with statuses and restart counts', async () => {
    const { system } = makeSystem();
    const r = system.spawn(node('r', { r: ['a', 'b'], a: ['a1'] }, []), { name: 'r' });
    await settle(system);
    const a = system.ref(addressOf('r/a'), Node);
    a.tell('boom', {});
    await settle(system);
    a.tell('boom', {});
    await settle(system);
    const tree = system.tree();
    expect(tree.kind).toBe('guardian');
    expect(tree.strategy).toBe('one_for_one');
    expect(tree.children.map(strip)).toEqual([
      {
        name: 'r',
        kind: 'worker',
        status: 'running',
        restarts: 0,
        children: [
          {
            name: 'a',
            kind: 'worker',
            status: 'running',
            restarts: 2,
            children: [{ name: 'a1', kind: 'worker', status: 'running', restarts: 0, children: [] }],
          },
          { name: 'b', kind: 'worker', status: 'running', restarts: 0, children: [] },
        ],
      },
    ]);
    expect(tree.children[0]!.address).toBe(r.address);
    expect(tree.children[0]!.children[0]!.children[0]!.address).toBe(addressOf('r/a/a1'));
  });

  it('shows the mailbox size and drops stopped actors', async () => {
    const { system } = makeSystem();
    const r = system.spawn(plainNode(), { name: 'r' });
    r.tell('boom', {});
    r.tell('boom', {});
    expect(system.tree().children[0]!.mailboxSize).toBe(2);
    await settle(system);
    await system.stop(r);
    expect(system.tree().children).toEqual([]);
  });
});

describe('system.ref() and system.find()', () => {
  it('resolves the address of a live actor to a working ref', async () => {
    const { system } = makeSystem();
    const root = system.spawn(plainNode(), { name: 'root' });
    const childAddress = await root.ask('spawnChild', { name: 'kid' });
    expect(await system.ref(root.address, Node).ask('ping', {})).toBe(root.address);
    expect(await system.ref(childAddress, Node).ask('ping', {})).toBe(childAddress);
  });

  it('turns a tell to an unknown address into a no-such-actor dead letter, and rejects an ask', async () => {
    const { system, dead } = makeSystem();
    const ghost = system.ref(addressOf('nobody/here'), Node);
    expect(ghost.address).toBe(addressOf('nobody/here'));
    ghost.tell('boom', {});
    const error = await rejection(ghost.ask('ping', {}));
    expect(error.code).toBe('ERR_NO_SUCH_ACTOR');
    expect(dead.map((d) => [d.to, d.messageType, d.reason, d.error?.code])).toEqual([
      [addressOf('nobody/here'), 'boom', 'no-such-actor', 'ERR_NO_SUCH_ACTOR'],
      [addressOf('nobody/here'), 'ping', 'no-such-actor', 'ERR_NO_SUCH_ACTOR'],
    ]);
  });

  it('delivers through a ref made before the actor existed once it does', async () => {
    const { system } = makeSystem();
    const early = system.ref(addressOf('late'), Node);
    system.spawn(plainNode(), { name: 'late' });
    expect(await early.ask('ping', {})).toBe(addressOf('late'));
  });

  it('throws ERR_INVALID_ADDRESS for a string that is not an address', () => {
    const { system } = makeSystem();
    expect(thrown(() => system.ref('http://x/y/z')).code).toBe('ERR_INVALID_ADDRESS');
  });

  it('finds the live actors speaking a protocol, children included', async () => {
    const Other = defineProtocol('ch.other', { poke: tell(z.object({})) });
    const other = behavior({ protocols: [Other], handlers: { poke: () => {} } });
    const { system } = makeSystem();
    const root = system.spawn(plainNode(), { name: 'root' });
    system.spawn(other, { name: 'o' });
    const kid = await root.ask('spawnChild', { name: 'kid' });
    expect(
      system
        .find(Node)
        .map((r) => r.address)
        .sort(),
    ).toEqual([root.address, kid].sort());
    const later = system.spawn(plainNode(), { name: 'later' });
    expect(system.find(Node).map((r) => r.address)).toContain(later.address);
    await system.stop(root);
    expect(system.find(Node).map((r) => r.address)).toEqual([later.address]);
    expect(system.find(Other)).toHaveLength(1);
  });
});
