import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ask, behavior, defineProtocol, type SystemEvent, TroupeError, tell } from '../../index.js';
import { flushMicrotasks, SimulatedClock, settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, gate, makeSystem, rejection, within } from './helpers.js';

closeSystemsAfterEach();

const Life = defineProtocol('life.life', {
  add: tell(z.object({ by: z.number() })),
  get: ask(z.object({}), z.number()),
  boom: tell(z.object({ why: z.string() })),
  hang: ask(z.object({}), z.number()),
});

type Crashed = Extract<SystemEvent, { type: 'actor-crashed' }>;
const crashes = (events: SystemEvent[]) => events.filter((e): e is Crashed => e.type === 'actor-crashed');

/** A counter that logs its hooks and messages; hooks not given fall back to the kernel's defaults. */
function counter(log: string[], hooks: { restartHooks?: boolean; asyncStart?: Promise<void> } = {}) {
  return behavior<typeof Life, { count: number }>({
    protocols: [Life],
    initialState: () => ({ count: 0 }),
    preStart: async () => {
      log.push('preStart');
      if (hooks.asyncStart !== undefined) await hooks.asyncStart;
      log.push('preStart-done');
    },
    postStop: (ctx) => {
      log.push(`postStop(${ctx.state.count})`);
    },
    ...(hooks.restartHooks === true
      ? {
          preRestart: (ctx, error) => {
            log.push(`preRestart(${ctx.state.count},${error.message})`);
          },
          postRestart: (ctx, error) => {
            log.push(`postRestart(${ctx.state.count},${error.message})`);
          },
        }
      : {}),
    handlers: {
      add: ({ by }, ctx) => {
        log.push(`add${by}`);
        ctx.state.count += by;
      },
      get: (_b, ctx) => ctx.state.count,
      boom: ({ why }) => {
        log.push(`boom`);
        throw new Error(why);
      },
      hang: () => new Promise<number>(() => {}),
    },
  });
}

describe('start and stop hooks', () => {
  it('runs preStart before the first message, even when messages arrive during an async preStart', async () => {
    const log: string[] = [];
    const started = gate();
    const { system } = makeSystem();
    const ref = system.spawn(counter(log, { asyncStart: started.promise }));
    ref.tell('add', { by: 1 });
    await flushMicrotasks();
    await flushMicrotasks();
    expect(log).toEqual(['preStart']);
    started.open();
    await settle(system);
    expect(log).toEqual(['preStart', 'preStart-done', 'add1']);
  });

  it('runs postStop after the actor stopped processing; stop() resolves after it', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const ref = system.spawn(counter(log));
    ref.tell('add', { by: 2 });
    await settle(system);
    await system.stop(ref);
    expect(log).toEqual(['preStart', 'preStart-done', 'add2', 'postStop(2)']);
  });

  it('runs postStop when the actor stops itself', async () => {
    const Self = defineProtocol('life.self', { quit: tell(z.object({})) });
    const log: string[] = [];
    const quitter = behavior({
      protocols: [Self],
      handlers: {
        quit: (_b, ctx) => {
          log.push('quit');
          void ctx.stop();
        },
      },
      postStop: () => {
        log.push('postStop');
      },
    });
    const { system, events } = makeSystem();
    const ref = system.spawn(quitter);
    ref.tell('quit', {});
    await settle(system);
    expect(log).toEqual(['quit', 'postStop']);
    expect(events.filter((e) => e.type === 'actor-stopped')).toEqual([
      expect.objectContaining({ address: ref.address, reason: 'normal' }),
    ]);
  });
});

describe('stopping itself', () => {
  const Quit = defineProtocol('life.quit', {
    quitReturning: tell(z.object({})),
    quitAwaiting: tell(z.object({})),
    ping: ask(z.object({}), z.string()),
  });

  function quitter(log: string[]) {
    return behavior({
      protocols: [Quit],
      handlers: {
        // A handler may hand back the promise of its own stop...
        quitReturning: (_b, ctx) => ctx.stop(),
        // ...or await it: "Inside our own handler: stop once it returns, so awaiting the stop cannot deadlock."
        quitAwaiting: async (_b, ctx) => {
          await ctx.stop();
          log.push('after-stop');
        },
        ping: () => 'pong',
      },
      postStop: () => {
        log.push('postStop');
      },
    });
  }

  it('stops when a handler returns the promise of ctx.stop()', async () => {
    const log: string[] = [];
    const { system, events } = makeSystem();
    const ref = system.spawn(quitter(log));
    ref.tell('quitReturning', {});
    await within(settle(system), 500, 'settle() after the self-stop');
    expect(log).toEqual(['postStop']);
    expect(events.filter((e) => e.type === 'actor-stopped')).toEqual([
      expect.objectContaining({ address: ref.address, reason: 'normal' }),
    ]);
    expect((await rejection(ref.ask('ping', {}))).code).toBe('ERR_ACTOR_STOPPED');
  });

  it('stops when an async handler awaits ctx.stop()', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const ref = system.spawn(quitter(log));
    ref.tell('quitAwaiting', {});
    await within(settle(system), 500, 'settle() after the self-stop');
    expect(log).toContain('postStop');
    expect((await rejection(ref.ask('ping', {}))).code).toBe('ERR_ACTOR_STOPPED');
  });
});

describe('restart hooks', () => {
  it('calls preRestart on the failed instance and postRestart on the fresh one, with the error', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const ref = system.spawn(counter(log, { restartHooks: true }));
    ref.tell('add', { by: 3 });
    ref.tell('boom', { why: 'kaput' });
    await settle(system);
    expect(log).toEqual([
      'preStart',
      'preStart-done',
      'add3',
      'boom',
      'preRestart(3,kaput)',
      'postRestart(0,kaput)',
    ]);
  });

  it('defaults preRestart to postStop and postRestart to preStart', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const ref = system.spawn(counter(log));
    ref.tell('add', { by: 3 });
    ref.tell('boom', { why: 'kaput' });
    await settle(system);
    expect(log).toEqual([
      'preStart',
      'preStart-done',
      'add3',
      'boom',
      'postStop(3)',
      'preStart',
      'preStart-done',
    ]);
  });

  it('resets the state to the initial state and keeps handling the mailbox', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const ref = system.spawn(counter(log));
    ref.tell('add', { by: 5 });
    ref.tell('boom', { why: 'x' });
    ref.tell('add', { by: 1 });
    expect(await ref.ask('get', {})).toBe(1);
  });

  it('makes a fresh initial state object on each restart', async () => {
    const Bag = defineProtocol('life.bag', {
      put: tell(z.object({ v: z.number() })),
      all: ask(z.object({}), z.array(z.number())),
      boom: tell(z.object({})),
    });
    const bag = behavior({
      protocols: [Bag],
      initialState: () => ({ items: [] as number[] }),
      handlers: {
        put: ({ v }, ctx) => {
          ctx.state.items.push(v);
        },
        all: (_b, ctx) => ctx.state.items,
        boom: () => {
          throw new Error('boom');
        },
      },
    });
    const { system } = makeSystem();
    const ref = system.spawn(bag);
    ref.tell('put', { v: 1 });
    ref.tell('boom', {});
    ref.tell('put', { v: 2 });
    expect(await ref.ask('all', {})).toEqual([2]);
  });
});

describe('crashes', () => {
  it('reports the crashing message in the actor-crashed event, then an actor-restarted event', async () => {
    const { system, events } = makeSystem();
    const ref = system.spawn(counter([]), { name: 'c' });
    ref.tell('boom', { why: 'bad input' });
    await settle(system);
    const [crash] = crashes(events);
    expect(crash).toMatchObject({
      address: ref.address,
      message: { type: 'boom', body: { why: 'bad input' } },
    });
    expect(crash!.error.message).toBe('bad input');
    expect(events.filter((e) => e.type === 'actor-restarted')).toEqual([
      expect.objectContaining({ address: ref.address, restarts: 1, error: crash!.error }),
    ]);
  });

  it('treats a throw in preStart as a crash with ERR_START_FAILED (the thrown error as cause)', async () => {
    const Start = defineProtocol('life.start', { get: ask(z.object({}), z.number()) });
    const cause = new Error('cannot open');
    let attempts = 0;
    const flaky = behavior({
      protocols: [Start],
      preStart: () => {
        attempts++;
        if (attempts === 1) throw cause;
      },
      handlers: { get: () => attempts },
    });
    const { system, events } = makeSystem();
    const ref = system.spawn(flaky);
    await settle(system);
    const [crash] = crashes(events);
    expect(TroupeError.is(crash?.error, 'ERR_START_FAILED')).toBe(true);
    expect(crash!.error.cause).toBe(cause);
    expect(crash!.message).toBeUndefined();
    expect(await ref.ask('get', {})).toBe(2);
    expect(system.tree().children[0]).toMatchObject({ status: 'running', restarts: 1 });
  });

  it('treats a rejection of an async preStart as a crash with ERR_START_FAILED', async () => {
    const Start = defineProtocol('life.start2', { get: ask(z.object({}), z.number()) });
    let attempts = 0;
    const flaky = behavior({
      protocols: [Start],
      preStart: async () => {
        attempts++;
        await Promise.resolve();
        if (attempts === 1) throw new Error('later');
      },
      handlers: { get: () => attempts },
    });
    const { system, events } = makeSystem();
    const ref = system.spawn(flaky);
    await settle(system);
    expect(crashes(events).map((e) => (e.error as TroupeError).code)).toEqual(['ERR_START_FAILED']);
    expect(await ref.ask('get', {})).toBe(2);
  });

  it('crashes a handler past handlerDeadlineMs with ERR_HANDLER_TIMEOUT and aborts its ctx.signal', async () => {
    const clock = new SimulatedClock();
    const Slow = defineProtocol('life.slow', {
      hang: ask(z.object({}), z.number()),
      get: ask(z.object({}), z.number()),
    });
    let signal: AbortSignal | undefined;
    let starts = 0;
    const slow = behavior({
      protocols: [Slow],
      handlerDeadlineMs: 100,
      preStart: () => {
        starts++;
      },
      handlers: {
        hang: (_b, ctx) => {
          signal = ctx.signal;
          return new Promise<number>(() => {});
        },
        get: () => starts,
      },
    });
    const { system, events } = makeSystem({ clock });
    const ref = system.spawn(slow);
    const pending = ref.ask('hang', {}, { timeoutMs: 10_000 });
    pending.catch(() => {});
    await clock.advance(99);
    expect(signal?.aborted).toBe(false);
    expect(crashes(events)).toEqual([]);
    await clock.advance(1);
    const error = await rejection(pending);
    expect(error.code).toBe('ERR_ACTOR_CRASHED');
    expect(TroupeError.is(error.cause, 'ERR_HANDLER_TIMEOUT')).toBe(true);
    expect(signal?.aborted).toBe(true);
    expect(TroupeError.is(signal?.reason, 'ERR_HANDLER_TIMEOUT')).toBe(true);
    const [crash] = crashes(events);
    expect(TroupeError.is(crash?.error, 'ERR_HANDLER_TIMEOUT')).toBe(true);
    expect(crash?.message).toEqual({ type: 'hang', body: {} });
    await settle(system);
    expect(await ref.ask('get', {})).toBe(2);
  });

  it('does not crash a handler that finishes within handlerDeadlineMs', async () => {
    const clock = new SimulatedClock();
    const Quick = defineProtocol('life.quick', { work: ask(z.object({}), z.string()) });
    const quick = behavior({
      protocols: [Quick],
      handlerDeadlineMs: 100,
      handlers: {
        work: () =>
          new Promise<string>((resolve) => {
            clock.setTimeout(() => resolve('done'), 50);
          }),
      },
    });
    const { system, events } = makeSystem({ clock });
    const ref = system.spawn(quick);
    const reply = ref.ask('work', {});
    await clock.advance(200);
    await expect(reply).resolves.toBe('done');
    expect(crashes(events)).toEqual([]);
    await settle(system);
  });

  it('aborts the ctx.signal taken in preStart when the actor stops, also after it handled messages', async () => {
    // ActorContext.signal: "Aborted when the actor stops, crashes or its handler passes its deadline."
    const Bg = defineProtocol('life.bg', { ping: tell(z.object({})) });
    const signals: AbortSignal[] = [];
    const background = behavior({
      protocols: [Bg],
      preStart: (ctx) => {
        signals.push(ctx.signal);
      },
      handlers: { ping: () => {} },
    });
    const { system } = makeSystem();
    const idle = system.spawn(background);
    const busy = system.spawn(background);
    await settle(system);
    busy.tell('ping', {});
    await settle(system);
    await system.stop(idle);
    await system.stop(busy);
    expect(signals.map((s) => s.aborted)).toEqual([true, true]);
  });

  it('aborts ctx.signal of an async handler that crashes, with the error as reason', async () => {
    const Crash = defineProtocol('life.crash', { go: tell(z.object({})) });
    const error = new Error('late failure');
    let signal: AbortSignal | undefined;
    const crasher = behavior({
      protocols: [Crash],
      handlers: {
        go: async (_b, ctx) => {
          signal = ctx.signal;
          await Promise.resolve();
          throw error;
        },
      },
    });
    const { system } = makeSystem();
    system.spawn(crasher).tell('go', {});
    await settle(system);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(error);
  });

  it('aborts ctx.signal of an in-flight handler when the actor stops', async () => {
    const Sig = defineProtocol('life.sig', { wait: tell(z.object({})) });
    let signal: AbortSignal | undefined;
    const waiter = behavior({
      protocols: [Sig],
      handlers: {
        wait: (_b, ctx) => {
          signal = ctx.signal;
          return new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
        },
      },
    });
    const { system } = makeSystem();
    const ref = system.spawn(waiter);
    ref.tell('wait', {});
    await flushMicrotasks();
    expect(signal?.aborted).toBe(false);
    await system.stop(ref);
    expect(signal?.aborted).toBe(true);
    expect(TroupeError.is(signal?.reason, 'ERR_ACTOR_STOPPED')).toBe(true);
  });
});

describe('an ask in flight when its actor is stopped', () => {
  const Slow = defineProtocol('life.slow', { work: ask(z.object({}), z.string()) });
  const slow = (g: Promise<void>) =>
    behavior({
      protocols: [Slow],
      handlers: {
        work: async () => {
          await g;
          return 'done';
        },
      },
    });

  it('gets the reply when the handler finishes within the shutdown time', async () => {
    const { system } = makeSystem();
    const g = gate();
    const ref = system.spawn(slow(g.promise), { shutdownMs: 1000 });
    const reply = ref.ask('work', {});
    await flushMicrotasks();
    const stopped = system.stop(ref);
    g.open();
    await stopped;
    expect(await within(reply, 500, 'the reply')).toBe('done');
  });

  it('gets ERR_ACTOR_STOPPED when the handler outlives the shutdown time', async () => {
    const clock = new SimulatedClock();
    const { system } = makeSystem({ clock });
    const ref = system.spawn(slow(new Promise(() => {})), { shutdownMs: 50 });
    const reply = ref.ask('work', {}, { timeoutMs: 60_000 });
    reply.catch(() => {});
    await flushMicrotasks();
    const stopped = system.stop(ref);
    await clock.advance(50);
    await stopped;
    expect((await within(rejection(reply), 500, 'the rejection')).code).toBe('ERR_ACTOR_STOPPED');
  });

  it('gets the reply of a handler that asked to stop and then finished', async () => {
    const Quit = defineProtocol('life.quit-ask', { bye: ask(z.object({}), z.string()) });
    const log: string[] = [];
    const { system } = makeSystem();
    const ref = system.spawn(
      behavior({
        protocols: [Quit],
        handlers: {
          bye: async (_b, ctx) => {
            await ctx.stop();
            log.push(`aborted=${ctx.signal.aborted}`);
            return 'bye';
          },
        },
        postStop: () => {
          log.push('postStop');
        },
      }),
    );
    expect(await within(ref.ask('bye', {}), 500, 'the reply')).toBe('bye');
    expect(log).toEqual(['postStop', 'aborted=true']);
  });
});
