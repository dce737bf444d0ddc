import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type ActorRef, ask, behavior, defineProtocol, sleep, TroupeError, tell } from '../../index.js';
import { flushMicrotasks, SimulatedClock, settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, makeSystem, rejection, watchPromise } from './helpers.js';

closeSystemsAfterEach();

const Log = defineProtocol('ta.log', {
  push: tell(z.object({ from: z.string(), v: z.number() })),
  read: ask(z.object({}), z.array(z.string())),
  hang: ask(z.object({}), z.number()),
  fail: ask(z.object({}), z.number()),
  failAsync: ask(z.object({}), z.number()),
  echo: ask(z.object({ v: z.number() }), z.number()),
});

const failure = new Error('bad request');
const asyncFailure = new Error('bad async request');

const logger = behavior({
  protocols: [Log],
  initialState: () => ({ seen: [] as string[] }),
  handlers: {
    push: ({ from, v }, ctx) => {
      ctx.state.seen.push(`${from}${v}`);
    },
    read: (_b, ctx) => [...ctx.state.seen],
    hang: () => new Promise<number>(() => {}),
    fail: () => {
      throw failure;
    },
    failAsync: async () => {
      await Promise.resolve();
      throw asyncFailure;
    },
    echo: ({ v }, ctx) => {
      ctx.state.seen.push(`echo${v}`);
      return v;
    },
  },
});

const Sender = defineProtocol('ta.sender', {
  send: tell(z.object({ to: z.string(), name: z.string(), count: z.number() })),
});
const sender = behavior({
  protocols: [Sender],
  handlers: {
    send: ({ to, name, count }, ctx) => {
      const target = ctx.system.ref(to, Log);
      for (let v = 0; v < count; v++) target.tell('push', { from: name, v });
    },
  },
});

describe('tell', () => {
  it('keeps the order of the messages of one sender to one receiver', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(logger);
    for (let v = 0; v < 200; v++) ref.tell('push', { from: 'x', v });
    expect(await ref.ask('read', {})).toEqual(Array.from({ length: 200 }, (_, v) => `x${v}`));
  });

  it('keeps each sender’s order when several actors send to one receiver', async () => {
    const { system } = makeSystem({ throughput: 3 });
    const target = system.spawn(logger);
    const a = system.spawn(sender);
    const b = system.spawn(sender);
    a.tell('send', { to: target.address, name: 'a', count: 50 });
    b.tell('send', { to: target.address, name: 'b', count: 50 });
    for (let v = 0; v < 50; v++) target.tell('push', { from: 'c', v });
    await settle(system);
    const seen = await target.ask('read', {});
    expect(seen).toHaveLength(150);
    for (const name of ['a', 'b', 'c']) {
      expect(seen.filter((s) => s.startsWith(name))).toEqual(
        Array.from({ length: 50 }, (_, v) => `${name}${v}`),
      );
    }
  });
});

describe('ask', () => {
  it('resolves with the handler’s return value', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(logger);
    await expect(ref.ask('echo', { v: 42 })).resolves.toBe(42);
  });

  it('rejects with ERR_ASK_TIMEOUT exactly at its timeoutMs', async () => {
    const clock = new SimulatedClock();
    const { system } = makeSystem({ clock });
    const ref = system.spawn(logger);
    const pending = watchPromise(ref.ask('hang', {}, { timeoutMs: 100 }));
    await clock.advance(99);
    expect(pending.settled).toBe(false);
    await clock.advance(1);
    expect(pending.settled).toBe(true);
    const error = await rejection(pending.result);
    expect(error.code).toBe('ERR_ASK_TIMEOUT');
  });

  it('uses the system’s askTimeoutMs when the ask gives none', async () => {
    const clock = new SimulatedClock();
    const { system } = makeSystem({ clock, askTimeoutMs: 250 });
    const ref = system.spawn(logger);
    const pending = watchPromise(ref.ask('hang', {}));
    await clock.advance(249);
    expect(pending.settled).toBe(false);
    await clock.advance(1);
    expect((await rejection(pending.result)).code).toBe('ERR_ASK_TIMEOUT');
  });

  it('times out asks with different timeouts each at its own deadline', async () => {
    const clock = new SimulatedClock();
    const { system } = makeSystem({ clock });
    const ref = system.spawn(logger);
    const long = watchPromise(ref.ask('hang', {}, { timeoutMs: 300 }));
    const short = watchPromise(ref.ask('hang', {}, { timeoutMs: 100 }));
    await clock.advance(100);
    expect([short.settled, long.settled]).toEqual([true, false]);
    await clock.advance(200);
    expect(long.settled).toBe(true);
    expect((await rejection(short.result)).code).toBe('ERR_ASK_TIMEOUT');
    expect((await rejection(long.result)).code).toBe('ERR_ASK_TIMEOUT');
  });

  it('rejects with ERR_ASK_ABORTED when the signal is already aborted, and does not deliver it', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(logger);
    const controller = new AbortController();
    controller.abort();
    const error = await rejection(ref.ask('echo', { v: 1 }, { signal: controller.signal }));
    expect(error.code).toBe('ERR_ASK_ABORTED');
    await settle(system);
    expect(await ref.ask('echo', { v: 2 })).toBe(2);
    expect(await ref.ask('read', {})).toEqual(['echo2']);
  });

  it('chains the reason of an already-aborted signal as the cause', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(logger);
    const controller = new AbortController();
    const reason = new Error('gave up before asking');
    controller.abort(reason);
    const error = await rejection(ref.ask('echo', { v: 1 }, { signal: controller.signal }));
    expect(error.code).toBe('ERR_ASK_ABORTED');
    // docs/errors.md, ERR_ASK_ABORTED: "also when the signal had already fired; `cause` is the signal's reason".
    expect(error.cause).toBe(reason);
  });

  it('rejects with ERR_ASK_ABORTED when the signal is aborted while waiting', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(logger);
    const controller = new AbortController();
    const pending = watchPromise(ref.ask('hang', {}, { signal: controller.signal }));
    await flushMicrotasks();
    expect(pending.settled).toBe(false);
    const reason = new Error('user cancelled');
    controller.abort(reason);
    const error = await rejection(pending.result);
    expect(error.code).toBe('ERR_ASK_ABORTED');
    expect(error.cause).toBe(reason);
  });

  it('is not affected by aborting its signal after the reply arrived', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(logger);
    const controller = new AbortController();
    await expect(ref.ask('echo', { v: 7 }, { signal: controller.signal })).resolves.toBe(7);
    controller.abort();
  });

  it('rejects with ERR_ACTOR_STOPPED when the actor has stopped', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(logger);
    await system.stop(ref);
    const error = await rejection(ref.ask('echo', { v: 1 }));
    expect(error.code).toBe('ERR_ACTOR_STOPPED');
  });

  it('rejects with ERR_ACTOR_CRASHED, the thrown error as cause, when the handler throws', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(logger);
    const error = await rejection(ref.ask('fail', {}));
    expect(error.code).toBe('ERR_ACTOR_CRASHED');
    expect(error.cause).toBe(failure);
  });

  it('rejects with ERR_ACTOR_CRASHED, the rejection as cause, when an async handler rejects', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(logger);
    const error = await rejection(ref.ask('failAsync', {}));
    expect(error.code).toBe('ERR_ACTOR_CRASHED');
    expect(error.cause).toBe(asyncFailure);
  });

  it('rejects an invalid timeoutMs with ERR_INVALID_OPTION', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(logger);
    expect((await rejection(ref.ask('echo', { v: 1 }, { timeoutMs: 0 }))).code).toBe('ERR_INVALID_OPTION');
    expect((await rejection(ref.ask('echo', { v: 1 }, { timeoutMs: -5 }))).code).toBe('ERR_INVALID_OPTION');
  });

  it('rejects a message type the actor does not handle with ERR_UNKNOWN_MESSAGE', async () => {
    const { system, dead } = makeSystem();
    const ref = system.spawn(logger) as ActorRef;
    const error = await rejection(ref.ask('nope', {}));
    expect(error.code).toBe('ERR_UNKNOWN_MESSAGE');
    ref.tell('nope2', {});
    await settle(system);
    expect(dead.map((d) => [d.messageType, d.reason])).toEqual([
      ['nope', 'unknown-message'],
      ['nope2', 'unknown-message'],
    ]);
  });
});

// ---- Senders ----

const Pong = defineProtocol('ta.pong', {
  ping: tell(z.object({})),
  whoAsks: ask(z.object({}), z.string()),
});
const Ping = defineProtocol('ta.ping', {
  go: tell(z.object({ to: z.string() })),
  goLater: tell(z.object({ to: z.string(), withFrom: z.boolean() })),
  askIt: ask(z.object({ to: z.string() }), z.string()),
  pong: tell(z.object({ seen: z.string() })),
  pongs: ask(z.object({}), z.array(z.string())),
});

/** Replies to `ping` with `pong` to whoever sent it, naming the sender it saw. */
const ponger = behavior({
  protocols: [Pong],
  initialState: () => ({ unknown: 0 }),
  handlers: {
    ping: (_b, ctx) => {
      const from = ctx.sender;
      if (from === undefined) {
        ctx.state.unknown++;
        return;
      }
      (from as ActorRef<typeof Ping>).tell('pong', { seen: from.address });
    },
    whoAsks: (_b, ctx) => ctx.sender?.address ?? 'nobody',
  },
});

const pinger = behavior({
  protocols: [Ping],
  initialState: () => ({ pongs: [] as string[] }),
  handlers: {
    go: ({ to }, ctx) => ctx.system.ref(to, Pong).tell('ping', {}),
    goLater: async ({ to, withFrom }, ctx) => {
      await Promise.resolve();
      const target = ctx.system.ref(to, Pong);
      if (withFrom) target.tell('ping', {}, { from: ctx.self });
      else target.tell('ping', {});
    },
    askIt: ({ to }, ctx) => ctx.system.ref(to, Pong).ask('whoAsks', {}),
    pong: ({ seen }, ctx) => {
      ctx.state.pongs.push(seen);
    },
    pongs: (_b, ctx) => [...ctx.state.pongs],
  },
});

describe('the sender', () => {
  it('is the sending actor inside a synchronous handler, and ctx.sender.tell replies to it', async () => {
    const { system } = makeSystem();
    const pong = system.spawn(ponger);
    const ping = system.spawn(pinger);
    ping.tell('go', { to: pong.address });
    await settle(system);
    expect(await ping.ask('pongs', {})).toEqual([ping.address]);
  });

  it('is the asking actor for an ask made by an actor', async () => {
    const { system } = makeSystem();
    const pong = system.spawn(ponger);
    const ping = system.spawn(pinger);
    await expect(ping.ask('askIt', { to: pong.address })).resolves.toBe(ping.address);
  });

  it('is unknown for a tell or ask from outside any actor', async () => {
    const { system } = makeSystem();
    const pong = system.spawn(ponger);
    await expect(pong.ask('whoAsks', {})).resolves.toBe('nobody');
  });

  it('is the actor given as `from` for a tell from outside', async () => {
    const { system } = makeSystem();
    const pong = system.spawn(ponger);
    const ping = system.spawn(pinger);
    pong.tell('ping', {}, { from: ping });
    await settle(system);
    expect(await ping.ask('pongs', {})).toEqual([ping.address]);
  });

  it('is unknown after an await unless `from` is given', async () => {
    const { system, dead } = makeSystem();
    const pong = system.spawn(ponger);
    const ping = system.spawn(pinger);
    ping.tell('goLater', { to: pong.address, withFrom: false });
    await settle(system);
    expect(await ping.ask('pongs', {})).toEqual([]);
    ping.tell('goLater', { to: pong.address, withFrom: true });
    await settle(system);
    expect(await ping.ask('pongs', {})).toEqual([ping.address]);
    expect(dead).toEqual([]);
  });
});

describe('async handlers (their work takes time on a simulated clock)', () => {
  const Work = defineProtocol('ta.work', {
    job: tell(z.object({ id: z.number(), ms: z.number() })),
    log: ask(z.object({}), z.array(z.string())),
  });
  const worker = behavior({
    protocols: [Work],
    initialState: () => ({ log: [] as string[] }),
    handlers: {
      job: async ({ id, ms }, ctx) => {
        ctx.state.log.push(`start${id}`);
        await sleep(ms, { clock: ctx.system.clock });
        ctx.state.log.push(`end${id}`);
      },
      log: (_b, ctx) => [...ctx.state.log],
    },
  });

  it('handles one message at a time, in order, even when the first is slow', async () => {
    const clock = new SimulatedClock();
    const { system } = makeSystem({ clock });
    const ref = system.spawn(worker);
    ref.tell('job', { id: 1, ms: 30 });
    ref.tell('job', { id: 2, ms: 0 });
    ref.tell('job', { id: 3, ms: 5 });
    await clock.advance(35);
    await settle(system);
    expect(await ref.ask('log', {})).toEqual(['start1', 'end1', 'start2', 'end2', 'start3', 'end3']);
  });

  it('answers an ask sent while an async handler runs only after that handler is done', async () => {
    const clock = new SimulatedClock();
    const { system } = makeSystem({ clock });
    const ref = system.spawn(worker);
    ref.tell('job', { id: 1, ms: 20 });
    const answer = watchPromise(ref.ask('log', {}));
    await clock.advance(19);
    expect(answer.settled).toBe(false);
    await clock.advance(1);
    expect(await answer.result).toEqual(['start1', 'end1']);
  });

  it('rejects an ask that waited behind a slow handler with ERR_ASK_TIMEOUT, then still serves', async () => {
    const clock = new SimulatedClock();
    const { system } = makeSystem({ clock });
    const ref = system.spawn(worker);
    ref.tell('job', { id: 1, ms: 40 });
    const waiting = rejection(ref.ask('log', {}, { timeoutMs: 5 }));
    await clock.advance(5);
    expect(TroupeError.is(await waiting, 'ERR_ASK_TIMEOUT')).toBe(true);
    await clock.advance(35);
    await settle(system);
    expect(await ref.ask('log', {})).toEqual(['start1', 'end1']);
  });
});
