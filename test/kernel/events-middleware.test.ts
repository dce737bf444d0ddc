import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ask, behavior, defineProtocol, type MessageInfo, type SystemEvent, tell } from '../../index.js';
import { settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, makeSystem, rejection } from './helpers.js';

closeSystemsAfterEach();

const Ev = defineProtocol('ev.ev', {
  put: tell(z.object({ v: z.number() })),
  get: ask(z.object({}), z.array(z.number())),
  later: ask(z.object({}), z.string()),
  boom: tell(z.object({})),
  spawnKid: tell(z.object({})),
});

const actor = behavior({
  protocols: [Ev],
  initialState: () => ({ seen: [] as number[] }),
  preStart: () => {},
  handlers: {
    put: ({ v }, ctx) => {
      ctx.state.seen.push(v);
    },
    get: (_b, ctx) => [...ctx.state.seen],
    later: async () => {
      await Promise.resolve();
      return 'later';
    },
    boom: () => {
      throw new Error('boom');
    },
    spawnKid: (_b, ctx) => {
      ctx.spawn(actor, { name: 'kid' });
    },
  },
});

/** The lifecycle events as [type, address, extra]. */
function lifecycle(events: SystemEvent[]): unknown[] {
  const out: unknown[] = [];
  for (const e of events) {
    switch (e.type) {
      case 'actor-spawned':
        out.push([e.type, e.address, e.parent]);
        break;
      case 'actor-started':
        out.push([e.type, e.address]);
        break;
      case 'actor-crashed':
        out.push([e.type, e.address, e.error.message]);
        break;
      case 'actor-restarted':
        out.push([e.type, e.address, e.restarts]);
        break;
      case 'actor-stopped':
        out.push([e.type, e.address, e.reason]);
        break;
    }
  }
  return out;
}

describe('events$', () => {
  it('reports spawned, started, crashed, restarted and stopped with addresses', async () => {
    const { system, events } = makeSystem();
    const ref = system.spawn(actor, { name: 'a' });
    await settle(system);
    ref.tell('boom', {});
    await settle(system);
    ref.tell('spawnKid', {});
    await settle(system);
    await system.stop(ref);
    const a = 'troupe://troupe/local/a';
    const kid = 'troupe://troupe/local/a/kid';
    const [spawned] = events;
    expect(spawned?.type).toBe('actor-spawned');
    const guardian = spawned?.type === 'actor-spawned' ? spawned.parent : '';
    expect(lifecycle(events)).toEqual([
      ['actor-spawned', a, guardian],
      ['actor-started', a],
      ['actor-crashed', a, 'boom'],
      ['actor-restarted', a, 1],
      ['actor-spawned', kid, a],
      ['actor-started', kid],
      ['actor-stopped', kid, 'shutdown'],
      ['actor-stopped', a, 'shutdown'],
    ]);
    expect(guardian).toBe(system.tree().address);
  });

  it('stamps events with the clock’s time', async () => {
    const { system, events } = makeSystem();
    system.spawn(actor);
    await settle(system);
    for (const e of events) expect(typeof e.at).toBe('number');
  });

  it('completes after the system stopped, with a final system-stopped event', async () => {
    const { system, events } = makeSystem();
    let completed = false;
    system.events$.subscribe({ complete: () => (completed = true) });
    await system.close();
    expect(completed).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: 'system-stopped', error: undefined, drainTimedOut: false });
  });
});

describe('middleware', () => {
  it('sees every send with to, from, type, body and the ask flag', async () => {
    const { system } = makeSystem();
    const seen: MessageInfo[] = [];
    system.use({ name: 'spy', send: (m) => void seen.push(m) });
    const ref = system.spawn(actor, { name: 'a' });
    ref.tell('put', { v: 1 });
    await ref.ask('get', {});
    expect(seen).toEqual([
      { to: ref.address, from: undefined, type: 'put', body: { v: 1 }, ask: false },
      { to: ref.address, from: undefined, type: 'get', body: {}, ask: true },
    ]);
  });

  it('drops a message whose send returns false: a middleware-dropped dead letter; an ask rejects', async () => {
    const { system, dead } = makeSystem();
    system.use({ name: 'no-odd', send: (m) => !(m.type === 'put' && (m.body as { v: number }).v % 2 === 1) });
    const ref = system.spawn(actor);
    for (let v = 0; v < 4; v++) ref.tell('put', { v });
    expect(await ref.ask('get', {})).toEqual([0, 2]);
    expect(dead.map((d) => [d.body, d.reason, d.error?.code])).toEqual([
      [{ v: 1 }, 'middleware-dropped', 'ERR_MESSAGE_DROPPED'],
      [{ v: 3 }, 'middleware-dropped', 'ERR_MESSAGE_DROPPED'],
    ]);
    system.use({ name: 'no-asks', send: (m) => !m.ask });
    const error = await rejection(ref.ask('get', {}));
    expect(error.code).toBe('ERR_MESSAGE_DROPPED');
    expect(error.details).toMatchObject({ middleware: 'no-asks' });
  });

  it('runs receive around each handler call, the first added outermost', async () => {
    const { system } = makeSystem();
    const log: string[] = [];
    for (const name of ['outer', 'inner']) {
      system.use({
        name,
        receive: (m, next) => {
          log.push(`${name}>${m.type}`);
          const result = next();
          log.push(`${name}<${m.type}`);
          return result;
        },
      });
    }
    const witness = behavior({
      protocols: [Ev],
      handlers: {
        put: () => void log.push('handler:put'),
        get: () => {
          log.push('handler:get');
          return [42];
        },
        later: () => 'x',
        boom: () => {},
        spawnKid: () => {},
      },
    });
    const ref = system.spawn(witness);
    ref.tell('put', { v: 1 });
    expect(await ref.ask('get', {})).toEqual([42]);
    expect(log).toEqual([
      'outer>put',
      'inner>put',
      'handler:put',
      'inner<put',
      'outer<put',
      'outer>get',
      'inner>get',
      'handler:get',
      'inner<get',
      'outer<get',
    ]);
  });

  it('passes the ask flag and the sender to receive, and an async handler’s promise through it', async () => {
    const { system } = makeSystem();
    const seen: [string, boolean][] = [];
    const results: unknown[] = [];
    system.use({
      name: 'spy',
      receive: (m, next) => {
        seen.push([m.type, m.ask]);
        const result = next();
        results.push(result);
        return result;
      },
    });
    const ref = system.spawn(actor);
    ref.tell('put', { v: 1 });
    expect(await ref.ask('later', {})).toBe('later');
    expect(seen).toEqual([
      ['put', false],
      ['later', true],
    ]);
    expect(results[1]).toBeInstanceOf(Promise);
  });

  it('stops applying middleware once its remover is called', async () => {
    const { system, dead } = makeSystem();
    let sends = 0;
    let receives = 0;
    const remove = system.use({
      name: 'all',
      send: () => {
        sends++;
        return false;
      },
      receive: (_m, next) => {
        receives++;
        return next();
      },
    });
    const ref = system.spawn(actor);
    ref.tell('put', { v: 1 });
    expect(dead).toHaveLength(1);
    remove();
    ref.tell('put', { v: 2 });
    expect(await ref.ask('get', {})).toEqual([2]);
    expect([sends, receives]).toEqual([1, 0]);
    remove();
  });

  it('treats a throw in receive like a throw in the handler: the actor crashes', async () => {
    const { system, events } = makeSystem();
    system.use({
      name: 'angry',
      receive: (m, next) => {
        if (m.type === 'put') throw new Error('middleware says no');
        return next();
      },
    });
    const ref = system.spawn(actor);
    ref.tell('put', { v: 1 });
    await settle(system);
    expect(events.filter((e) => e.type === 'actor-crashed')).toHaveLength(1);
    expect(await ref.ask('get', {})).toEqual([]);
  });

  it('refuses middleware without a name with ERR_INVALID_OPTION', () => {
    const { system } = makeSystem();
    expect(() => system.use({} as { name: string })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
  });
});
