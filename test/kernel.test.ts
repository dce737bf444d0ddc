import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ActorContext,
  type ActorRef,
  type ActorSystem,
  ask,
  behavior,
  createSystem,
  type DeadLetterEvent,
  defineProtocol,
  type SystemEvent,
  type SystemOptions,
  TroupeError,
  tell,
} from '../index.js';
import { flushMicrotasks, SimulatedClock, settle } from '../runtime/testkit/index.js';

let systems: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.map((s) => s.close()));
  systems = [];
});

function make(options: SystemOptions = {}) {
  const system = createSystem({ deadLetterLog: () => {}, ...options });
  systems.push(system);
  const events: SystemEvent[] = [];
  const dead: DeadLetterEvent[] = [];
  system.events$.subscribe((e) => {
    events.push(e);
    if (e.type === 'dead-letter') dead.push(e);
  });
  return { system, events, dead };
}

const Log = defineProtocol('k.log', {
  push: tell(z.object({ v: z.number() })),
  slow: tell(z.object({ v: z.number(), ms: z.number() })),
  read: ask(z.object({}), z.array(z.number())),
  fail: ask(z.object({}), z.number()),
  boom: tell(z.object({})),
  hang: ask(z.object({}), z.number()),
});

const logger = behavior({
  protocols: [Log],
  initialState: () => ({ seen: [] as number[] }),
  handlers: {
    push: ({ v }, ctx) => {
      ctx.state.seen.push(v);
    },
    slow: async ({ v, ms }, ctx) => {
      ctx.state.seen.push(-v);
      await new Promise((r) => setTimeout(r, ms));
      ctx.state.seen.push(v);
    },
    read: (_b, ctx) => [...ctx.state.seen],
    fail: () => {
      throw new Error('bad request');
    },
    boom: () => {
      throw new Error('boom');
    },
    hang: () => new Promise<number>(() => {}),
  },
});

describe('tell and ask', () => {
  it('keeps the order of one sender to one receiver, and answers asks', async () => {
    const { system } = make();
    const ref = system.spawn(logger);
    for (let v = 0; v < 100; v++) ref.tell('push', { v });
    expect(await ref.ask('read', {})).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('handles async handlers one message at a time, in order', async () => {
    const { system } = make();
    const ref = system.spawn(logger);
    ref.tell('slow', { v: 1, ms: 20 });
    ref.tell('slow', { v: 2, ms: 1 });
    ref.tell('push', { v: 3 });
    expect(await ref.ask('read', {})).toEqual([-1, 1, -2, 2, 3]);
  });

  it('times out an ask exactly at its timeout', async () => {
    const clock = new SimulatedClock();
    const { system } = make({ clock });
    const ref = system.spawn(logger);
    let outcome: unknown;
    ref.ask('hang', {}, { timeoutMs: 100 }).catch((e: unknown) => {
      outcome = e;
    });
    await clock.advance(99);
    expect(outcome).toBeUndefined();
    await clock.advance(1);
    expect(TroupeError.is(outcome, 'ERR_ASK_TIMEOUT')).toBe(true);
  });

  it('rejects an ask whose signal aborts, before or after it is sent', async () => {
    const { system } = make();
    const ref = system.spawn(logger);
    await expect(ref.ask('hang', {}, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'ERR_ASK_ABORTED',
    });
    const controller = new AbortController();
    const pending = ref.ask('hang', {}, { signal: controller.signal });
    controller.abort(new Error('user left'));
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ASK_ABORTED' });
  });

  it('rejects an ask whose handler throws with ERR_ACTOR_CRASHED and the cause', async () => {
    const { system } = make();
    const ref = system.spawn(logger);
    const error = await ref.ask('fail', {}).catch((e: unknown) => e);
    expect(TroupeError.is(error, 'ERR_ACTOR_CRASHED')).toBe(true);
    expect(((error as Error).cause as Error).message).toBe('bad request');
  });

  it('rejects an ask to a stopped actor and makes its tell a dead letter', async () => {
    const { system, dead } = make();
    const ref = system.spawn(logger);
    await system.stop(ref);
    await expect(ref.ask('read', {})).rejects.toMatchObject({ code: 'ERR_ACTOR_STOPPED' });
    ref.tell('push', { v: 1 });
    expect(dead.map((d) => [d.messageType, d.reason])).toEqual([
      ['read', 'actor-stopped'],
      ['push', 'actor-stopped'],
    ]);
  });

  it('lets a handler reply to the sender, implicitly or with an explicit `from`', async () => {
    const Ping = defineProtocol('k.ping', {
      ping: tell(z.object({})),
      pong: tell(z.object({ from: z.string() })),
    });
    const got: string[] = [];
    const ponger = behavior({
      protocols: [Ping],
      handlers: {
        ping: (_b, ctx) => ctx.sender?.tell('pong', { from: ctx.self.address }),
        pong: ({ from }) => {
          got.push(from);
        },
      },
    });
    const { system } = make();
    const a = system.spawn(ponger, { name: 'a' });
    const b = system.spawn(ponger, { name: 'b' });
    a.tell('ping', {}, { from: b });
    await settle(system);
    expect(got).toEqual([a.address]);
  });
});

describe('mailboxes', () => {
  const blocker = (overflow: 'reject' | 'drop-newest' | 'drop-oldest') =>
    behavior({
      protocols: [Log],
      initialState: () => ({ seen: [] as number[] }),
      handlers: logger_handlers(),
      mailbox: { capacity: 2, overflow },
    });

  it('rejects with ERR_MAILBOX_FULL under `reject`, as a dead letter and an overflow event', async () => {
    const { system, dead, events } = make();
    const ref = system.spawn(blocker('reject'));
    ref.tell('push', { v: 1 });
    ref.tell('push', { v: 2 });
    expect(() => ref.tell('push', { v: 3 })).toThrow(expect.objectContaining({ code: 'ERR_MAILBOX_FULL' }));
    await expect(ref.ask('read', {})).rejects.toMatchObject({ code: 'ERR_MAILBOX_FULL' });
    expect(dead.map((d) => d.reason)).toEqual(['mailbox-full', 'mailbox-full']);
    expect(events.filter((e) => e.type === 'mailbox-overflow')).toHaveLength(2);
    expect(await ref.ask('read', {})).toEqual([1, 2]);
  });

  it('drops the newest under `drop-newest` and the oldest under `drop-oldest`', async () => {
    const { system, dead } = make();
    const newest = system.spawn(blocker('drop-newest'));
    const oldest = system.spawn(blocker('drop-oldest'));
    for (const ref of [newest, oldest]) for (let v = 1; v <= 4; v++) ref.tell('push', { v });
    await settle(system);
    expect(await newest.ask('read', {})).toEqual([1, 2]);
    expect(await oldest.ask('read', {})).toEqual([3, 4]);
    expect(
      dead.map((d) => [d.to === newest.address ? 'newest' : 'oldest', (d.body as { v: number }).v, d.reason]),
    ).toEqual([
      ['newest', 3, 'mailbox-overflow'],
      ['newest', 4, 'mailbox-overflow'],
      ['oldest', 1, 'mailbox-overflow'],
      ['oldest', 2, 'mailbox-overflow'],
    ]);
  });

  it('refuses bad capacities with ERR_INVALID_OPTION', () => {
    for (const capacity of [0, -1, 1.5]) {
      expect(() => createSystem({ mailbox: { capacity } })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
      );
      const { system } = make();
      expect(() => system.spawn(logger, { mailbox: { capacity } })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
      );
    }
    expect(() => createSystem({ mailbox: { overflow: 'explode' as never } })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
  });

  it('does not let a hot actor starve another', async () => {
    const order: string[] = [];
    const P = defineProtocol('k.fair', { hit: tell(z.object({ who: z.string() })) });
    const b = behavior({
      protocols: [P],
      handlers: {
        hit: ({ who }) => {
          order.push(who);
        },
      },
    });
    const { system } = make({ throughput: 4 });
    const hot = system.spawn(b);
    const cold = system.spawn(b);
    for (let i = 0; i < 100; i++) hot.tell('hit', { who: 'hot' });
    cold.tell('hit', { who: 'cold' });
    await settle(system);
    expect(order.indexOf('cold')).toBe(4);
  });
});

function logger_handlers() {
  return (logger as unknown as { definition: { handlers: never } }).definition.handlers;
}

describe('lifecycle', () => {
  it('runs hooks in order, resets state on restart and reports the crashing message', async () => {
    const calls: string[] = [];
    const hooked = behavior({
      protocols: [Log],
      initialState: () => ({ seen: [] as number[] }),
      handlers: logger_handlers(),
      preStart: () => {
        calls.push('preStart');
      },
      postStop: () => {
        calls.push('postStop');
      },
      preRestart: (_ctx, error) => {
        calls.push(`preRestart ${error.message}`);
      },
      postRestart: (_ctx, error) => {
        calls.push(`postRestart ${error.message}`);
      },
    });
    const { system, events } = make();
    const ref = system.spawn(hooked);
    ref.tell('push', { v: 1 });
    ref.tell('boom', {});
    ref.tell('push', { v: 2 });
    expect(await ref.ask('read', {})).toEqual([2]);
    await system.stop(ref);
    expect(calls).toEqual(['preStart', 'preRestart boom', 'postRestart boom', 'postStop']);
    const crashed = events.find((e) => e.type === 'actor-crashed');
    expect(crashed).toMatchObject({ address: ref.address, message: { type: 'boom', body: {} } });
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        'actor-spawned',
        'actor-started',
        'actor-crashed',
        'actor-restarted',
        'actor-stopped',
      ]),
    );
  });

  it('treats a throw in preStart as a crash with ERR_START_FAILED', async () => {
    let attempts = 0;
    const flaky = behavior({
      protocols: [Log],
      initialState: () => ({ seen: [] as number[] }),
      handlers: logger_handlers(),
      preStart: () => {
        if (++attempts === 1) throw new Error('no database');
      },
    });
    const { system, events } = make();
    const ref = system.spawn(flaky);
    expect(await ref.ask('read', {})).toEqual([]);
    const crash = events.find((e) => e.type === 'actor-crashed') as Extract<
      SystemEvent,
      { type: 'actor-crashed' }
    >;
    expect(TroupeError.is(crash.error, 'ERR_START_FAILED')).toBe(true);
    expect(attempts).toBe(2);
  });

  it('crashes a handler that outlives its deadline and aborts its signal', async () => {
    const clock = new SimulatedClock();
    let signal: AbortSignal | undefined;
    const P = defineProtocol('k.deadline', { work: tell(z.object({})) });
    const worker = behavior({
      protocols: [P],
      handlerDeadlineMs: 50,
      handlers: {
        work: (_b, ctx) => {
          signal = ctx.signal;
          return new Promise<void>(() => {});
        },
      },
    });
    const { system, events } = make({ clock });
    system.spawn(worker).tell('work', {});
    await flushMicrotasks();
    await clock.advance(50);
    const crash = events.find((e) => e.type === 'actor-crashed') as Extract<
      SystemEvent,
      { type: 'actor-crashed' }
    >;
    expect(TroupeError.is(crash.error, 'ERR_HANDLER_TIMEOUT')).toBe(true);
    expect(signal?.aborted).toBe(true);
  });

  it('stops children leaf first, siblings in reverse start order', async () => {
    const stopped: string[] = [];
    const P = defineProtocol('k.tree', { noop: tell(z.object({})) });
    const node = (name: string, kids: string[]): ReturnType<typeof behavior<typeof P>> =>
      behavior({
        protocols: [P],
        handlers: { noop: () => {} },
        preStart: (ctx) => {
          for (const kid of kids) ctx.spawn(node(kid, kid === 'b' ? ['b1', 'b2'] : []), { name: kid });
        },
        postStop: () => {
          stopped.push(name);
        },
      });
    const { system } = make();
    system.spawn(node('root', ['a', 'b']), { name: 'root' });
    await settle(system);
    expect(system.tree().children[0]?.children.map((c) => c.name)).toEqual(['a', 'b']);
    await system.close();
    expect(stopped).toEqual(['b2', 'b1', 'b', 'a', 'root']);
  });

  it('refuses taken and invalid names', () => {
    const { system } = make();
    system.spawn(logger, { name: 'x' });
    expect(() => system.spawn(logger, { name: 'x' })).toThrow(
      expect.objectContaining({ code: 'ERR_NAME_TAKEN' }),
    );
    for (const name of ['', 'a/b', '$x']) {
      expect(() => system.spawn(logger, { name })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_NAME' }),
      );
    }
  });
});

describe('watch, become, stash, timers', () => {
  const Watch = defineProtocol('k.watch', {
    watch: tell(z.object({ address: z.string() })),
    unwatch: tell(z.object({ address: z.string() })),
  });

  it('delivers terminated to watchers, at once for a dead actor, never after unwatch', async () => {
    const seen: string[] = [];
    const watcher = behavior({
      protocols: [Watch],
      handlers: {
        watch: ({ address }, ctx) => ctx.watch(ctx.system.ref(address)),
        unwatch: ({ address }, ctx) => ctx.unwatch(ctx.system.ref(address)),
      },
      terminated: (ref, reason) => {
        seen.push(`${ref.address.split('/').pop()} ${reason.kind}`);
      },
    });
    const { system } = make();
    const w = system.spawn(watcher);
    const a = system.spawn(logger, { name: 'a' });
    const b = system.spawn(logger, { name: 'b' });
    w.tell('watch', { address: a.address });
    w.tell('watch', { address: b.address });
    w.tell('unwatch', { address: b.address });
    await settle(system);
    await system.stop(a);
    await system.stop(b);
    await settle(system);
    expect(seen).toEqual(['a shutdown']);
    w.tell('watch', { address: a.address });
    await settle(system);
    expect(seen).toEqual(['a shutdown', 'a unknown']);
  });

  it('switches handlers with become and back with unbecome; stashed asks are answered later', async () => {
    const Door = defineProtocol('k.door', {
      open: tell(z.object({})),
      close: tell(z.object({})),
      enter: ask(z.object({ who: z.string() }), z.string()),
    });
    const door = behavior({
      protocols: [Door],
      handlers: {
        open: () => {},
        close: (_b, ctx) =>
          ctx.become({
            open: (_b2, c) => {
              c.unbecome();
              c.unstashAll();
            },
            close: () => {},
            enter: (_b2, c) => {
              c.stash();
              return 'stashed';
            },
          }),
        enter: ({ who }) => `welcome ${who}`,
      },
    });
    const { system } = make();
    const ref = system.spawn(door);
    ref.tell('close', {});
    const entering = ref.ask('enter', { who: 'ann' });
    await settle(system);
    let answered = false;
    void entering.then(() => {
      answered = true;
    });
    await flushMicrotasks();
    expect(answered).toBe(false);
    ref.tell('open', {});
    expect(await entering).toBe('welcome ann');
  });

  const Keep = defineProtocol('k.keep', { keep: tell(z.object({})), read: ask(z.object({}), z.number()) });

  it('refuses stash outside a handler', async () => {
    const { system } = make();
    let kept: ActorContext<unknown, typeof Keep> | undefined;
    const keeper = behavior({
      protocols: [Keep],
      handlers: {
        keep: (_b, ctx) => {
          kept = ctx;
        },
        read: () => 0,
      },
    });
    const ref = system.spawn(keeper);
    ref.tell('keep', {});
    await ref.ask('read', {});
    expect(() => kept!.stash()).toThrow(expect.objectContaining({ code: 'ERR_ILLEGAL_STATE' }));
  });

  it('gives handlers a context that is not the ref, so a ref cannot be used as a context', async () => {
    const { system } = make();
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

  it('fires single and periodic timers exactly, replaces by key, cancels, and clears on restart', async () => {
    const Tick = defineProtocol('k.tick', {
      tick: tell(z.object({ n: z.number() })),
      arm: tell(z.object({})),
      stop: tell(z.object({})),
      boom: tell(z.object({})),
    });
    const ticks: number[] = [];
    const ticker = behavior({
      protocols: [Tick],
      handlers: {
        tick: ({ n }) => {
          ticks.push(n);
        },
        arm: (_b, ctx) => {
          ctx.timers.startSingle('once', 100, 'tick', { n: 1 });
          ctx.timers.startSingle('once', 150, 'tick', { n: 2 });
          ctx.timers.startPeriodic('every', 40, 'tick', { n: 0 });
        },
        stop: (_b, ctx) => ctx.timers.cancel('every'),
        boom: () => {
          throw new Error('boom');
        },
      },
    });
    const clock = new SimulatedClock();
    const { system } = make({ clock });
    const ref = system.spawn(ticker);
    ref.tell('arm', {});
    await settle(system);
    await clock.advance(150);
    await settle(system);
    expect(ticks).toEqual([0, 0, 0, 2]);
    ref.tell('stop', {});
    await settle(system);
    await clock.advance(200);
    expect(ticks).toEqual([0, 0, 0, 2]);
    ref.tell('arm', {});
    ref.tell('boom', {});
    await settle(system);
    await clock.advance(500);
    await settle(system);
    expect(ticks).toEqual([0, 0, 0, 2]);
  });
});

describe('dead letters, events and middleware', () => {
  it('logs dead letters up to the limit while nobody subscribes', async () => {
    const lines: string[] = [];
    const system = createSystem({ deadLetterLog: (l) => lines.push(l), deadLetterLogLimit: 2 });
    systems.push(system);
    const ref = system.spawn(logger);
    await system.stop(ref);
    for (let v = 0; v < 5; v++) ref.tell('push', { v });
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain('dead letter "push"');
    expect(lines[2]).toContain('further ones go only to subscribers');
  });

  it('turns leftovers in a stopping actor into dead letters', async () => {
    const { system, dead } = make();
    const ref = system.spawn(logger);
    ref.tell('slow', { v: 1, ms: 10 });
    ref.tell('push', { v: 2 });
    ref.tell('push', { v: 3 });
    await flushMicrotasks();
    await system.stop(ref);
    expect(dead.map((d) => [d.messageType, d.reason])).toEqual([
      ['push', 'actor-stopped'],
      ['push', 'actor-stopped'],
    ]);
  });

  it('lets send middleware drop messages and receive middleware wrap handlers', async () => {
    const { system, dead } = make();
    const ref = system.spawn(logger);
    const trace: string[] = [];
    const remove = system.use({
      name: 'odd-filter',
      send: (m) => m.type !== 'push' || (m.body as { v: number }).v % 2 === 0,
      receive: (m, next) => {
        trace.push(`in ${m.type}`);
        const result = next();
        trace.push(`out ${m.type}`);
        return result;
      },
    });
    for (let v = 0; v < 4; v++) ref.tell('push', { v });
    expect(await ref.ask('read', {})).toEqual([0, 2]);
    expect(dead.map((d) => [d.reason, d.error?.code])).toEqual([
      ['middleware-dropped', 'ERR_MESSAGE_DROPPED'],
      ['middleware-dropped', 'ERR_MESSAGE_DROPPED'],
    ]);
    expect(trace.slice(0, 2)).toEqual(['in push', 'out push']);
    remove();
    ref.tell('push', { v: 5 });
    expect(await ref.ask('read', {})).toEqual([0, 2, 5]);
  });
});

describe('validation and development checks', () => {
  it('with validate: always, keeps bad bodies from handlers and checks replies', async () => {
    const Strict = defineProtocol('k.strict', {
      put: tell(z.object({ n: z.number().int() })),
      get: ask(z.object({}), z.number()),
      odd: ask(z.object({ name: z.string().refine(async (s) => s.length > 2, 'too short') }), z.string()),
      liar: ask(z.object({}), z.number()),
    });
    const strict = behavior({
      protocols: [Strict],
      initialState: () => ({ n: 0 }),
      handlers: {
        put: ({ n }, ctx) => {
          ctx.state.n = n;
        },
        get: (_b, ctx) => ctx.state.n,
        odd: ({ name }) => name,
        liar: () => 'not a number' as unknown as number,
      },
    });
    const { system, dead } = make({ validate: 'always' });
    const ref = system.spawn(strict);
    ref.tell('put', { n: 1.5 });
    expect(await ref.ask('get', {})).toBe(0);
    expect(dead.map((d) => d.reason)).toEqual(['validation-failed']);
    await expect(ref.ask('odd', { name: 'al' })).rejects.toMatchObject({ code: 'ERR_VALIDATION' });
    expect(await ref.ask('odd', { name: 'alice' })).toBe('alice');
    await expect(ref.ask('liar', {})).rejects.toMatchObject({ code: 'ERR_VALIDATION' });

    const { system: loose } = make();
    const trusting = loose.spawn(strict);
    trusting.tell('put', { n: 1.5 });
    expect(await trusting.ask('get', {})).toBe(1.5);
  });

  it('in development mode refuses bodies that are not plain data', async () => {
    const Any = defineProtocol('k.any', { put: tell(z.any()), get: ask(z.any(), z.any()) });
    const sink = behavior({ protocols: [Any], handlers: { put: () => {}, get: () => 1 } });
    const { system } = make({ devChecks: true });
    const ref = system.spawn(sink);
    expect(() => ref.tell('put', { when: new Date() })).toThrow(
      expect.objectContaining({ code: 'ERR_NOT_PLAIN_DATA' }),
    );
    expect(() => ref.tell('put', { f: () => 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_NOT_PLAIN_DATA' }),
    );
    await expect(ref.ask('get', new Map())).rejects.toMatchObject({ code: 'ERR_NOT_PLAIN_DATA' });
    const { system: prod } = make({ devChecks: false });
    expect(() => prod.spawn(sink).tell('put', { when: new Date() })).not.toThrow();
  });

  it('refuses behaviours with a missing handler or a message name twice', () => {
    const A = defineProtocol('k.a', { x: tell(z.object({})), y: tell(z.object({})) });
    const B = defineProtocol('k.b', { x: tell(z.object({})) });
    expect(() =>
      behavior({
        protocols: [A],
        // @ts-expect-error: a missing handler is a compile error
        handlers: { x: () => {} },
      }),
    ).toThrow(expect.objectContaining({ code: 'ERR_MISSING_HANDLER' }));
    expect(() => behavior({ protocols: [A, B], handlers: { x: () => {}, y: () => {} } })).toThrow(
      expect.objectContaining({ code: 'ERR_PROTOCOL_CONFLICT' }),
    );
  });
});

describe('drain and close', () => {
  it('drains: refuses outside messages, finishes work, stops leaf first, resolves closed()', async () => {
    const { system, dead, events } = make();
    const ref = system.spawn(logger);
    ref.tell('slow', { v: 1, ms: 10 });
    ref.tell('push', { v: 2 });
    const draining = system.drain({ timeoutMs: 1000 });
    ref.tell('push', { v: 3 });
    await expect(ref.ask('read', {})).rejects.toMatchObject({ code: 'ERR_SYSTEM_DRAINING' });
    await draining;
    expect(dead.map((d) => d.reason)).toEqual(['system-draining', 'system-draining']);
    expect(await system.closed()).toBeUndefined();
    expect(system.status.tag).toBe('stopped');
    const stopped = events.find((e) => e.type === 'system-stopped');
    expect(stopped).toMatchObject({ drainTimedOut: false });
    expect(() => system.spawn(logger)).toThrow(expect.objectContaining({ code: 'ERR_SYSTEM_STOPPED' }));
  });

  it('reports a drain that timed out and stops anyway', async () => {
    const { system, events } = make({ shutdownMs: 10 });
    const ref: ActorRef<typeof Log> = system.spawn(logger);
    void ref.ask('hang', {}, { timeoutMs: 60_000 }).catch(() => {});
    await system.drain({ timeoutMs: 20 });
    expect(events.find((e) => e.type === 'system-stopped')).toMatchObject({ drainTimedOut: true });
  });

  it('disposes with await using', async () => {
    let stopped = false;
    {
      await using system = createSystem({ deadLetterLog: () => {} });
      system.spawn(
        behavior({
          protocols: [Log],
          initialState: () => ({ seen: [] as number[] }),
          handlers: logger_handlers(),
          postStop: () => {
            stopped = true;
          },
        }),
      );
    }
    expect(stopped).toBe(true);
  });

  it('refuses an unknown strategy at construction', () => {
    expect(() => createSystem({ supervision: { strategy: 'all_for_none' as never } })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
  });
});
