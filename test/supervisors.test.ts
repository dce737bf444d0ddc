import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  behavior,
  createSystem,
  defineProtocol,
  deleteChild,
  dynamicSupervisor,
  exponential,
  restartChild,
  type SupervisorRef,
  type SystemEvent,
  sleep,
  startChild,
  supervisor,
  TroupeError,
  tell,
  terminateChild,
} from '../index.js';
import { flushMicrotasks, SimulatedClock, settle } from '../runtime/testkit/index.js';

const Probe = defineProtocol('sup-test.probe', {
  crash: tell(z.object({ why: z.string() })),
  ping: ask(z.object({}), z.string()),
});

let systems: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.map((s) => s.close()));
  systems = [];
});

function makeSystem(
  clock = new SimulatedClock(),
  random?: () => number,
): { system: ActorSystem; events: SystemEvent[] } {
  const system = createSystem(
    random === undefined ? { clock, deadLetterLog: () => {} } : { clock, random, deadLetterLog: () => {} },
  );
  systems.push(system);
  const events: SystemEvent[] = [];
  system.events$.subscribe((e) => events.push(e));
  return { system, events };
}

function probe(
  log: string[],
  name: string,
  hooks: { startMs?: number; stopHangs?: boolean; failStart?: boolean; stopUntil?: Promise<void> } = {},
) {
  return behavior({
    protocols: [Probe],
    handlers: {
      crash: ({ why }) => {
        throw new Error(why);
      },
      ping: () => `pong from ${name}`,
    },
    preStart: async (ctx) => {
      log.push(`start ${name}`);
      // A start that takes time, on the system's (simulated) clock.
      if (hooks.startMs !== undefined) await sleep(hooks.startMs, { clock: ctx.system.clock });
      if (hooks.failStart === true) throw new Error(`${name} cannot start`);
      log.push(`started ${name}`);
    },
    postStop: () => {
      log.push(`stop ${name}`);
      if (hooks.stopHangs === true) return new Promise<void>(() => {});
      return hooks.stopUntil;
    },
  });
}

/** A promise that resolves once `open` is called: a postStop that waits for the test. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe('supervisor', () => {
  it('starts children in order, each after the previous one started, and stops them in reverse', async () => {
    const log: string[] = [];
    const clock = new SimulatedClock();
    const { system } = makeSystem(clock);
    system.spawn(
      supervisor({
        children: [
          { id: 'a', behavior: probe(log, 'a', { startMs: 15 }) },
          { id: 'b', behavior: probe(log, 'b', { startMs: 5 }) },
          { id: 'c', behavior: probe(log, 'c') },
        ],
      }),
      { name: 'sup' },
    );
    await clock.advance(15);
    expect(log).toEqual(['start a', 'started a', 'start b']);
    await clock.advance(5);
    await settle(system);
    expect(log).toEqual(['start a', 'started a', 'start b', 'started b', 'start c', 'started c']);
    log.length = 0;
    await system.close();
    expect(log).toEqual(['stop c', 'stop b', 'stop a']);
  });

  it('abandons a child that does not stop within its shutdown time and goes on', async () => {
    const log: string[] = [];
    const clock = new SimulatedClock();
    const { system } = makeSystem(clock);
    system.spawn(
      supervisor({
        children: [
          { id: 'a', behavior: probe(log, 'a') },
          { id: 'stuck', behavior: probe(log, 'stuck', { stopHangs: true }), shutdownMs: 250 },
        ],
      }),
      { name: 'sup' },
    );
    await settle(system);
    log.length = 0;
    let closed = false;
    const closing = system.close().then(() => {
      closed = true;
    });
    await clock.advance(249);
    expect(log).toEqual(['stop stuck']);
    expect(closed).toBe(false);
    await clock.advance(1);
    await closing;
    expect(log).toEqual(['stop stuck', 'stop a']);
  });

  it("bounds a child's whole stop (handler in flight, then postStop) by one shutdown time", async () => {
    const log: string[] = [];
    const clock = new SimulatedClock();
    const { system } = makeSystem(clock);
    const Hang = defineProtocol('sup.hang', { hang: tell(z.object({})) });
    const stuck = behavior({
      protocols: [Hang],
      handlers: { hang: () => new Promise<void>(() => {}) },
      postStop: () => {
        log.push('stop stuck');
        return new Promise<void>(() => {});
      },
    });
    const sup = system.spawn(
      supervisor({
        children: [
          { id: 'a', behavior: probe(log, 'a') },
          { id: 'stuck', behavior: stuck, shutdownMs: 100 },
        ],
      }),
      { name: 'sup' },
    );
    await settle(system);
    system.ref(`${sup.address}/stuck`, Hang).tell('hang', {});
    await flushMicrotasks();
    log.length = 0;
    // A graceful stop (close() would not wait for the handler at all).
    let stopped = false;
    const stopping = system.stop(sup).then(() => {
      stopped = true;
    });
    await clock.advance(99);
    expect(stopped).toBe(false);
    await clock.advance(1);
    await stopping;
    // Not 100 ms for the handler and another 100 for postStop: one shutdown time in all.
    expect(log).toEqual(['stop stuck', 'stop a']);
  });

  it.each([
    [
      'one_for_all',
      ['stop b', 'stop c', 'stop a', 'start a', 'started a', 'start b', 'started b', 'start c', 'started c'],
    ],
    ['rest_for_one', ['stop b', 'stop c', 'start b', 'started b', 'start c', 'started c']],
    ['one_for_one', ['stop b', 'start b', 'started b']],
  ] as const)(
    'restarts under %s: the failed child stops first, the rest last-first, then all start in order',
    async (strategy, expected) => {
      const log: string[] = [];
      const { system } = makeSystem();
      const sup = system.spawn(
        supervisor({
          strategy,
          children: [
            { id: 'a', behavior: probe(log, 'a') },
            { id: 'b', behavior: probe(log, 'b') },
            { id: 'c', behavior: probe(log, 'c') },
          ],
        }),
        { name: 'sup' },
      );
      await settle(system);
      log.length = 0;
      system.ref(`${sup.address}/b`, Probe).tell('crash', { why: 'injected' });
      await settle(system);
      expect(log).toEqual(expected);
    },
  );

  it('reports the crashing message and restarts with fresh state, counting restarts in the tree', async () => {
    const log: string[] = [];
    const { system, events } = makeSystem();
    const sup = system.spawn(supervisor({ children: [{ id: 'w', behavior: probe(log, 'w') }] }), {
      name: 'sup',
    });
    await settle(system);
    const w = system.ref(`${sup.address}/w`, Probe);
    w.tell('crash', { why: 'bad input' });
    await settle(system);
    const crashed = events.find((e) => e.type === 'actor-crashed');
    expect(crashed).toMatchObject({
      address: w.address,
      message: { type: 'crash', body: { why: 'bad input' } },
    });
    expect(await w.ask('ping', {})).toBe('pong from w');
    expect(system.tree().children[0]?.children[0]).toMatchObject({
      name: 'w',
      status: 'running',
      restarts: 1,
    });
  });

  it('waits exactly the exponential backoff before each restart', async () => {
    const log: string[] = [];
    const clock = new SimulatedClock();
    const { system, events } = makeSystem(clock);
    system.spawn(
      supervisor({
        intensity: 10,
        periodMs: 60_000,
        backoff: exponential({ baseMs: 100, maxMs: 300, jitter: false }),
        children: [{ id: 'w', behavior: probe(log, 'w') }],
      }),
      { name: 'sup' },
    );
    await settle(system);
    const w = system.ref('troupe://troupe/local/sup/w', Probe);
    const expected = [100, 200, 300, 300];
    for (const delay of expected) {
      log.length = 0;
      w.tell('crash', { why: 'again' });
      await settle(system);
      expect(log).toEqual(['stop w']);
      await clock.advance(delay - 1);
      await settle(system);
      expect(log).toEqual(['stop w']);
      await clock.advance(1);
      await settle(system);
      expect(log).toEqual(['stop w', 'start w', 'started w']);
    }
    const scheduled = events.filter((e) => e.type === 'restart-scheduled').map((e) => e.delayMs);
    expect(scheduled).toEqual(expected);
  });

  it('spreads backoff by the jitter fraction using the injected random source', async () => {
    const log: string[] = [];
    const clock = new SimulatedClock();
    const { system, events } = makeSystem(clock, () => 1);
    system.spawn(
      supervisor({
        backoff: exponential({ baseMs: 100, maxMs: 1000, jitter: 0.5 }),
        children: [{ id: 'w', behavior: probe(log, 'w') }],
      }),
      { name: 'sup' },
    );
    await settle(system);
    system.ref('troupe://troupe/local/sup/w', Probe).tell('crash', { why: 'x' });
    await settle(system);
    expect(events.filter((e) => e.type === 'restart-scheduled').map((e) => e.delayMs)).toEqual([150]);
  });

  it('fails to start when a child fails to start, and a root supervisor failure stops the system', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    system.spawn(
      supervisor({
        children: [
          { id: 'ok', behavior: probe(log, 'ok') },
          { id: 'bad', behavior: probe(log, 'bad', { failStart: true }) },
          { id: 'never', behavior: probe(log, 'never') },
        ],
      }),
      { name: 'sup' },
    );
    const error = await system.closed();
    expect(TroupeError.is(error, 'ERR_ESCALATION')).toBe(true);
    expect(log).not.toContain('start never');
    expect(log).toContain('stop ok');
    expect(system.status.tag).toBe('failed');
  });

  it("gives up in OTP's order: failing first, the crashed child stopped first, the rest last started first, then upward", async () => {
    const log: string[] = [];
    const { system, events } = makeSystem();
    system.spawn(
      supervisor({
        intensity: 5,
        children: [
          {
            id: 'mid',
            behavior: supervisor({
              intensity: 0,
              children: ['a', 'b', 'c'].map((id) => ({ id, behavior: probe(log, id) })),
            }),
          },
        ],
      }),
      { name: 'top' },
    );
    await settle(system);
    log.length = 0;
    const seen: string[] = [];
    system.events$.subscribe((e) => {
      const at = 'address' in e ? e.address.replace('troupe://troupe/local/', '') : '';
      if (e.type === 'supervisor-escalated' || e.type === 'actor-crashed' || e.type === 'actor-stopped')
        seen.push(`${e.type} ${at}`);
    });
    system.ref('troupe://troupe/local/top/mid/b', Probe).tell('crash', { why: 'one too many' });
    await settle(system);
    expect(seen).toEqual([
      'actor-crashed top/mid/b',
      'supervisor-escalated top/mid',
      'actor-stopped top/mid/b',
      'actor-stopped top/mid/c',
      'actor-stopped top/mid/a',
      'actor-crashed top/mid',
    ]);
    expect(log.slice(0, 3)).toEqual(['stop b', 'stop c', 'stop a']);
    expect(events.find((e) => e.type === 'actor-crashed' && e.address.endsWith('/mid'))).toMatchObject({
      error: { code: 'ERR_RESTART_INTENSITY' },
    });
    // Its parent, with room for the restart, started it again.
    expect(system.tree().children[0]?.children[0]?.restarts).toBe(1);
  });

  it('lets a parent that takes a giving-up supervisor down wait for it, and hears of its failure only once', async () => {
    const log: string[] = [];
    const stop = gate();
    const { system, events } = makeSystem();
    system.spawn(
      supervisor({
        strategy: 'one_for_all',
        intensity: 1,
        children: [
          {
            id: 'mid',
            behavior: supervisor({
              intensity: 0,
              children: [
                { id: 'a', behavior: probe(log, 'a', { stopUntil: stop.promise }) },
                { id: 'c', behavior: probe(log, 'c') },
              ],
            }),
          },
          { id: 'b', behavior: probe(log, 'b') },
        ],
      }),
      { name: 'top' },
    );
    await settle(system);
    log.length = 0;
    try {
      system.ref('troupe://troupe/local/top/mid/a', Probe).tell('crash', { why: 'give up' });
      await vi.waitFor(() => expect(log).toEqual(['stop a']));
      // While mid gives up, b crashes: top restarts the group and takes mid down, but only once mid
      // has given up in its own order (c still waits for a).
      system.ref('troupe://troupe/local/top/b', Probe).tell('crash', { why: 'meanwhile' });
      await vi.waitFor(() => expect(log).toEqual(['stop a', 'stop b']));
    } finally {
      stop.open();
    }
    await settle(system);
    expect(system.status.tag).toBe('running');
    expect(log).toEqual([
      'stop a',
      'stop b',
      'stop c',
      'start a',
      'started a',
      'start c',
      'started c',
      'start b',
      'started b',
    ]);
    const top = system.tree().children[0]!;
    expect(top.children.map((c) => [c.name, c.status, c.restarts])).toEqual([
      ['mid', 'running', 1],
      ['b', 'running', 1],
    ]);
    expect(events.filter((e) => e.type === 'actor-crashed' && e.address.endsWith('/mid'))).toEqual([]);
  });

  it('restarts a permanent supervisor that gave up, and keeps a transient one stopped (OTP: it exits with shutdown)', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const giver = (id: string, restart: 'permanent' | 'transient') => ({
      id,
      restart,
      behavior: supervisor({ intensity: 0, children: [{ id: `${id}-w`, behavior: probe(log, `${id}-w`) }] }),
    });
    const top = system.spawn(
      supervisor({ intensity: 1, children: [giver('p', 'permanent'), giver('t', 'transient')] }),
      { name: 'top' },
    ) as SupervisorRef;
    await settle(system);
    system.ref('troupe://troupe/local/top/t/t-w', Probe).tell('crash', { why: 'x' });
    await settle(system);
    system.ref('troupe://troupe/local/top/p/p-w', Probe).tell('crash', { why: 'y' });
    await settle(system);
    // top allows one restart: the transient give-up did not use it, so the permanent one is restarted.
    expect(system.status.tag).toBe('running');
    expect(await top.ask('whichChildren', {})).toEqual([
      { id: 'p', address: 'troupe://troupe/local/top/p', status: 'running', restarts: 1 },
      { id: 't', address: 'troupe://troupe/local/top/t', status: 'stopped', restarts: 0 },
    ]);
  });

  it('answers whichChildren and countChildren, and terminates, restarts and deletes children', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const sup = system.spawn(
      supervisor({
        children: [
          { id: 'a', behavior: probe(log, 'a') },
          { id: 'b', behavior: probe(log, 'b') },
        ],
      }),
      { name: 'sup' },
    ) as SupervisorRef;
    await settle(system);
    expect(await sup.ask('countChildren', {})).toEqual({ specs: 2, active: 2 });
    await terminateChild(sup, 'a');
    expect(await sup.ask('whichChildren', {})).toEqual([
      { id: 'a', address: 'troupe://troupe/local/sup/a', status: 'stopped', restarts: 0 },
      { id: 'b', address: 'troupe://troupe/local/sup/b', status: 'running', restarts: 0 },
    ]);
    await restartChild(sup, 'a');
    expect(await sup.ask('countChildren', {})).toEqual({ specs: 2, active: 2 });
    await expect(deleteChild(sup, 'a')).rejects.toMatchObject({ code: 'ERR_ILLEGAL_STATE' });
    await terminateChild(sup, 'a');
    await deleteChild(sup, 'a');
    expect(await sup.ask('countChildren', {})).toEqual({ specs: 1, active: 1 });
    await expect(terminateChild(sup, 'zzz')).rejects.toMatchObject({ code: 'ERR_ILLEGAL_STATE' });
  });

  it('rejects bad specs with ERR_INVALID_OPTION', () => {
    const b = probe([], 'x');
    expect(() => supervisor({ strategy: 'one_for_some' as never, children: [] })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    expect(() => supervisor({ intensity: -1, children: [] })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    expect(() =>
      supervisor({
        children: [
          { id: 'a', behavior: b },
          { id: 'a', behavior: b },
        ],
      }),
    ).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => supervisor({ children: [{ id: 'a', behavior: b, restart: 'sometimes' as never }] })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    const { system } = makeSystem();
    expect(() =>
      system.spawn(supervisor({ children: [] }), { name: 'x', restart: 'sometimes' as never }),
    ).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });

  it("checks each child spec's spawn options when the supervisor is defined, not when it starts", () => {
    const b = probe([], 'x');
    for (const [option, value, spec] of [
      ['mailbox.capacity', -1, { mailbox: { capacity: -1 } }],
      ['shutdownMs', -5, { shutdownMs: -5 }],
      ['supervision.intensity', -1, { supervision: { intensity: -1 } }],
    ] as const) {
      let error: unknown;
      try {
        supervisor({ children: [{ id: 'a', behavior: b, ...spec }] });
      } catch (e) {
        error = e;
      }
      expect(error, option).toMatchObject({ code: 'ERR_INVALID_OPTION', details: { option, value } });
    }
  });
});

describe('dynamic supervisor', () => {
  it('starts children at run time up to maxChildren, and restarts them one for one', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const sessions = system.spawn(dynamicSupervisor({ maxChildren: 2 }), {
      name: 'sessions',
    }) as SupervisorRef;
    const one = await startChild(sessions, { id: 's1', behavior: probe(log, 's1') });
    await startChild(sessions, { id: 's2', behavior: probe(log, 's2'), restart: 'temporary' });
    expect(log).toEqual(['start s1', 'started s1', 'start s2', 'started s2']);
    await expect(startChild(sessions, { id: 's3', behavior: probe(log, 's3') })).rejects.toMatchObject({
      code: 'ERR_MAX_CHILDREN',
    });
    one.tell('crash', { why: 'x' });
    await settle(system);
    expect(await one.ask('ping', {})).toBe('pong from s1');
    system.ref('troupe://troupe/local/sessions/s2', Probe).tell('crash', { why: 'y' });
    await settle(system);
    expect(await sessions.ask('whichChildren', {})).toEqual([
      { id: 's1', address: 'troupe://troupe/local/sessions/s1', status: 'running', restarts: 1 },
    ]);
    await expect(startChild(sessions, { id: 's1', behavior: probe(log, 's1') })).rejects.toMatchObject({
      code: 'ERR_NAME_TAKEN',
    });
  });

  it('refuses a start asked of a supervisor that is giving up, as during any stop, and takes starts once restarted', async () => {
    const log: string[] = [];
    const stop = gate();
    const { system, events } = makeSystem();
    system.spawn(
      supervisor({ intensity: 5, children: [{ id: 'dyn', behavior: dynamicSupervisor({ intensity: 0 }) }] }),
      { name: 'top' },
    );
    await settle(system);
    const dyn = system.ref('troupe://troupe/local/top/dyn') as SupervisorRef;
    const first = await startChild(dyn, { id: 'a', behavior: probe(log, 'a', { stopUntil: stop.promise }) });
    log.length = 0;
    first.tell('crash', { why: 'give up' });
    // The crashed child's postStop holds the give-up: dyn is failing, its parent has not heard yet.
    await vi.waitFor(() => expect(system.tree().children[0]?.children[0]?.status).toBe('stopping'));
    await expect(startChild(dyn, { id: 'x', behavior: probe(log, 'x') })).rejects.toMatchObject({
      code: 'ERR_ACTOR_STOPPED',
    });
    await expect(dyn.ask('countChildren', {})).rejects.toMatchObject({ code: 'ERR_ACTOR_STOPPED' });
    expect(events.some((e) => e.type === 'actor-restarted' && e.address === dyn.address)).toBe(false);
    stop.open();
    await settle(system);
    expect(events.some((e) => e.type === 'actor-restarted' && e.address === dyn.address)).toBe(true);
    await startChild(dyn, { id: 'x', behavior: probe(log, 'x') });
    expect(log).toEqual(['stop a', 'start x', 'started x']);
    expect(await dyn.ask('whichChildren', {})).toEqual([
      { id: 'x', address: 'troupe://troupe/local/top/dyn/x', status: 'running', restarts: 0 },
    ]);
  });

  it('rejects a start whose preStart throws, leaving no child behind', async () => {
    const log: string[] = [];
    const { system } = makeSystem();
    const sessions = system.spawn(dynamicSupervisor(), { name: 'sessions' }) as SupervisorRef;
    await expect(
      startChild(sessions, { id: 'bad', behavior: probe(log, 'bad', { failStart: true }) }),
    ).rejects.toMatchObject({
      code: 'ERR_START_FAILED',
    });
    expect(await sessions.ask('countChildren', {})).toEqual({ specs: 0, active: 0 });
  });
});
