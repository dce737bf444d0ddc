import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type ActorContext, ask, behavior, defineProtocol, type Handlers, tell } from '../../index.js';
import { settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, makeSystem, rejection, thrown } from './helpers.js';

closeSystemsAfterEach();

const Door = defineProtocol('bs.door', {
  open: tell(z.object({})),
  close: tell(z.object({})),
  push: tell(z.object({ v: z.number() })),
  get: ask(z.object({ v: z.number() }), z.string()),
  log: ask(z.object({}), z.array(z.string())),
  boom: tell(z.object({})),
});
type DoorState = { log: string[] };

/** Closed: stashes push/get; open: handles them. `open`/`close` switch with become/unbecome. */
const openHandlers: Handlers<typeof Door, DoorState> = {
  open: () => {},
  close: (_b, ctx) => {
    ctx.unbecome();
  },
  push: ({ v }, ctx) => {
    ctx.state.log.push(`open:${v}`);
  },
  get: ({ v }, ctx) => {
    ctx.state.log.push(`open:get${v}`);
    return `got${v}`;
  },
  log: (_b, ctx) => [...ctx.state.log],
  boom: () => {
    throw new Error('boom');
  },
};

const door = behavior({
  protocols: [Door],
  initialState: (): DoorState => ({ log: [] }),
  handlers: {
    open: (_b, ctx) => {
      ctx.become(openHandlers);
      ctx.unstashAll();
    },
    close: () => {},
    push: ({ v }, ctx) => {
      ctx.state.log.push(`stash:${v}`);
      ctx.stash();
    },
    get: (_b, ctx) => {
      ctx.stash();
      return 'never';
    },
    log: (_b, ctx) => [...ctx.state.log],
    boom: () => {
      throw new Error('boom');
    },
  },
});

describe('become and unbecome', () => {
  it('switches handlers for the next messages and back, keeping the state', async () => {
    const Mode = defineProtocol('bs.mode', {
      hit: ask(z.object({}), z.string()),
      swap: tell(z.object({})),
      back: tell(z.object({})),
    });
    const other: Handlers<typeof Mode, { n: number }> = {
      hit: (_b, ctx) => `other${++ctx.state.n}`,
      swap: () => {},
      back: (_b, ctx) => ctx.unbecome(),
    };
    const modal = behavior({
      protocols: [Mode],
      initialState: () => ({ n: 0 }),
      handlers: {
        hit: (_b, ctx) => `own${++ctx.state.n}`,
        swap: (_b, ctx) => ctx.become(other),
        back: () => {},
      },
    });
    const { system } = makeSystem();
    const ref = system.spawn(modal);
    expect(await ref.ask('hit', {})).toBe('own1');
    ref.tell('swap', {});
    expect(await ref.ask('hit', {})).toBe('other2');
    expect(await ref.ask('hit', {})).toBe('other3');
    ref.tell('back', {});
    expect(await ref.ask('hit', {})).toBe('own4');
  });

  it('goes back to the behaviour’s own handlers after a restart', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(door);
    ref.tell('open', {});
    ref.tell('push', { v: 1 });
    ref.tell('boom', {});
    ref.tell('push', { v: 2 });
    await settle(system);
    expect(await ref.ask('log', {})).toEqual(['stash:2']);
  });

  it('refuses handlers missing a message with ERR_MISSING_HANDLER and keeps the old ones', async () => {
    const Mode = defineProtocol('bs.partial', {
      hit: ask(z.object({}), z.string()),
      swap: ask(z.object({}), z.string()),
    });
    const modal = behavior({
      protocols: [Mode],
      handlers: {
        hit: () => 'own',
        swap: (_b, ctx) => {
          const partial = { hit: () => 'other' } as unknown as Handlers<typeof Mode, undefined>;
          try {
            ctx.become(partial);
            return 'accepted';
          } catch (error) {
            return (error as { code: string }).code;
          }
        },
      },
    });
    const { system } = makeSystem();
    const ref = system.spawn(modal);
    expect(await ref.ask('swap', {})).toBe('ERR_MISSING_HANDLER');
    expect(await ref.ask('hit', {})).toBe('own');
  });
});

describe('stash and unstashAll', () => {
  it('sets messages aside and puts them back, in order, in front of later messages', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(door);
    ref.tell('push', { v: 1 });
    ref.tell('push', { v: 2 });
    ref.tell('open', {});
    ref.tell('push', { v: 3 });
    await settle(system);
    expect(await ref.ask('log', {})).toEqual(['stash:1', 'stash:2', 'open:1', 'open:2', 'open:3']);
  });

  it('answers a stashed ask once it is handled after unstashAll', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(door);
    let settled = false;
    const first = ref.ask('get', { v: 1 });
    const second = ref.ask('get', { v: 2 });
    void first.finally(() => {
      settled = true;
    });
    await settle(system);
    expect(settled).toBe(false);
    ref.tell('open', {});
    await expect(first).resolves.toBe('got1');
    await expect(second).resolves.toBe('got2');
    expect(await ref.ask('log', {})).toEqual(['open:get1', 'open:get2']);
  });

  it('stashes again a message stashed, unstashed and not yet handleable', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(door);
    ref.tell('push', { v: 1 });
    ref.tell('open', {});
    ref.tell('close', {});
    ref.tell('push', { v: 2 });
    ref.tell('open', {});
    await settle(system);
    expect(await ref.ask('log', {})).toEqual(['stash:1', 'open:1', 'stash:2', 'open:2']);
  });

  it('turns stashed messages into dead letters, and rejects stashed asks, when the actor stops', async () => {
    const { system, dead } = makeSystem();
    const ref = system.spawn(door);
    ref.tell('push', { v: 1 });
    const pending = ref.ask('get', { v: 2 });
    await settle(system);
    await system.stop(ref);
    expect((await rejection(pending)).code).toBe('ERR_ACTOR_STOPPED');
    expect(dead.map((d) => [d.messageType, d.reason])).toEqual([
      ['push', 'actor-stopped'],
      ['get', 'actor-stopped'],
    ]);
  });

  it('turns every stashed tell into a dead letter when the actor stops, senderless ones included', async () => {
    const { system, dead } = makeSystem();
    const ref = system.spawn(door);
    ref.tell('push', { v: 1 });
    ref.tell('push', { v: 2 });
    ref.tell('push', { v: 3 });
    await settle(system);
    await system.stop(ref);
    expect(dead.map((d) => [d.messageType, d.body, d.reason])).toEqual([
      ['push', { v: 1 }, 'actor-stopped'],
      ['push', { v: 2 }, 'actor-stopped'],
      ['push', { v: 3 }, 'actor-stopped'],
    ]);
  });

  it('leaves the sender of the next message unknown after stashing a message without sender', async () => {
    const Who = defineProtocol('bs.who', {
      hold: tell(z.object({})),
      who: tell(z.object({})),
      seen: ask(z.object({}), z.array(z.string())),
    });
    const who = behavior({
      protocols: [Who],
      initialState: () => ({ seen: [] as string[] }),
      handlers: {
        hold: (_b, ctx) => ctx.stash(),
        who: (_b, ctx) => {
          const sender: unknown = ctx.sender;
          ctx.state.seen.push(sender === undefined ? 'unknown' : typeof sender);
        },
        seen: (_b, ctx) => [...ctx.state.seen],
      },
    });
    const { system } = makeSystem();
    const ref = system.spawn(who);
    ref.tell('hold', {});
    ref.tell('who', {});
    expect(await ref.ask('seen', {})).toEqual(['unknown']);
  });

  it('throws ERR_ILLEGAL_STATE when stash() is called outside a handler', async () => {
    const Hook = defineProtocol('bs.hook', { keep: tell(z.object({})), noop: tell(z.object({})) });
    let fromPreStart: unknown;
    let kept: ActorContext<undefined, typeof Hook> | undefined;
    const hooked = behavior({
      protocols: [Hook],
      preStart: (ctx) => {
        try {
          ctx.stash();
        } catch (error) {
          fromPreStart = error;
        }
      },
      handlers: {
        keep: (_b, ctx) => {
          kept = ctx;
        },
        noop: () => {},
      },
    });
    const { system } = makeSystem();
    const ref = system.spawn(hooked);
    ref.tell('keep', {});
    await settle(system);
    expect(fromPreStart).toMatchObject({ code: 'ERR_ILLEGAL_STATE' });
    expect(thrown(() => kept!.stash()).code).toBe('ERR_ILLEGAL_STATE');
  });

  it('gives handlers a context that is not the ref, so a ref cannot be used as a context', async () => {
    const Keep = defineProtocol('bs.keep', { keep: tell(z.object({})), read: ask(z.object({}), z.number()) });
    let seen: { self: unknown; ctx: unknown } | undefined;
    const keeper = behavior({
      protocols: [Keep],
      initialState: () => ({ secret: 42 }),
      handlers: {
        keep: (_b, ctx) => {
          seen = { self: ctx.self, ctx };
        },
        read: (_b, ctx) => ctx.state.secret,
      },
    });
    const { system } = makeSystem();
    const ref = system.spawn(keeper);
    ref.tell('keep', {});
    await expect(ref.ask('read', {})).resolves.toBe(42);
    expect(seen!.self).toBe(ref);
    expect(seen!.ctx).not.toBe(ref);
    const asContext = ref as unknown as Partial<ActorContext<{ secret: number }, typeof Keep>>;
    for (const member of ['state', 'stash', 'become', 'spawn', 'timers', 'watch'] as const) {
      expect(asContext[member], member).toBeUndefined();
    }
  });
});
