import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ask,
  behavior,
  createSystem,
  defineProtocol,
  type SpawnOptions,
  type SystemOptions,
  systemDefaults,
  tell,
} from '../../index.js';
import { SimulatedClock, settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, makeSystem, rejection, thrown, watchPromise } from './helpers.js';

closeSystemsAfterEach();

const Opt = defineProtocol('opt.opt', {
  boom: tell(z.object({})),
  ping: ask(z.object({}), z.string()),
  hang: ask(z.object({}), z.number()),
});
const actor = behavior({
  protocols: [Opt],
  handlers: {
    boom: () => {
      throw new Error('boom');
    },
    ping: (_b, ctx) => ctx.self.address,
    hang: () => new Promise<number>(() => {}),
  },
});

describe('defaults', () => {
  it('are the documented ones', () => {
    expect(systemDefaults).toMatchObject({
      name: 'troupe',
      node: 'local',
      mailbox: { capacity: 10_000, overflow: 'reject' },
      askTimeoutMs: 5000,
      throughput: 64,
      timeSliceMs: 5,
      validate: 'boundary',
      supervision: { strategy: 'one_for_one', intensity: 10, periodMs: 10_000, backoff: undefined },
      shutdownMs: 5000,
      deadLetterLogLimit: 10,
    });
  });

  it('make a running system named troupe on node local', async () => {
    const { system } = makeSystem();
    expect([system.name, system.node, system.status]).toEqual(['troupe', 'local', { tag: 'running' }]);
    const ref = system.spawn(actor, { name: 'a' });
    expect(ref.address).toBe('troupe://troupe/local/a');
  });

  it('time out an ask after 5000 ms', async () => {
    const clock = new SimulatedClock();
    const { system } = makeSystem({ clock });
    const pending = watchPromise(system.spawn(actor).ask('hang', {}));
    await clock.advance(4999);
    expect(pending.settled).toBe(false);
    await clock.advance(1);
    expect((await rejection(pending.result)).code).toBe('ERR_ASK_TIMEOUT');
  });
});

describe('createSystem options', () => {
  it('put name and node in addresses', async () => {
    const { system } = makeSystem({ name: 'shop', node: 'n-1' });
    const ref = system.spawn(actor, { name: 'cart' });
    expect(ref.address).toBe('troupe://shop/n-1/cart');
    expect(await ref.ask('ping', {})).toBe('troupe://shop/n-1/cart');
  });

  const bad: [string, SystemOptions][] = [
    ['name with a space', { name: 'my shop' }],
    ['empty name', { name: '' }],
    ['node starting with @', { node: '@kind' }],
    ['clock without setTimeout', { clock: { now: () => 0 } } as unknown as SystemOptions],
    [
      'clock without wall time',
      { clock: { now: () => 0, setTimeout: () => ({ cancel() {} }) } } as unknown as SystemOptions,
    ],
    ['random not a function', { random: 0.5 as unknown as () => number }],
    ['askTimeoutMs 0', { askTimeoutMs: 0 }],
    ['askTimeoutMs NaN', { askTimeoutMs: Number.NaN }],
    ['throughput 0', { throughput: 0 }],
    ['throughput 1.5', { throughput: 1.5 }],
    ['timeSliceMs -1', { timeSliceMs: -1 }],
    ['devChecks not a boolean', { devChecks: 'yes' as unknown as boolean }],
    ['validate unknown', { validate: 'sometimes' as 'always' }],
    ['shutdownMs -1', { shutdownMs: -1 }],
    ['deadLetterLog not a function', { deadLetterLog: 'console' as unknown as () => void }],
    ['deadLetterLogLimit -1', { deadLetterLogLimit: -1 }],
    ['deadLetterLogLimit 2.5', { deadLetterLogLimit: 2.5 }],
    ['mailbox capacity 0', { mailbox: { capacity: 0 } }],
    ['mailbox overflow unknown', { mailbox: { overflow: 'spill' as 'reject' } }],
    ['supervision strategy unknown', { supervision: { strategy: 'all_for_one' as 'one_for_one' } }],
    ['supervision intensity -1', { supervision: { intensity: -1 } }],
    ['supervision periodMs 0', { supervision: { periodMs: 0 } }],
  ];

  it.each(bad)('refuse %s with ERR_INVALID_OPTION', (_what, options) => {
    expect(thrown(() => createSystem(options)).code).toBe('ERR_INVALID_OPTION');
  });

  it('name the bad option in the error details', () => {
    expect(thrown(() => createSystem({ throughput: 0 })).details).toMatchObject({ option: 'throughput' });
    expect(thrown(() => createSystem({ mailbox: { capacity: -1 } })).details).toMatchObject({
      option: 'mailbox.capacity',
    });
  });

  it('ignore options given as undefined', async () => {
    const { system } = makeSystem({ name: undefined, throughput: undefined } as unknown as SystemOptions);
    expect(system.name).toBe('troupe');
  });

  it('apply the supervision intensity to top-level actors: past it, the actor is stopped for good', async () => {
    const { system, events } = makeSystem({ supervision: { intensity: 1, periodMs: 60_000 } });
    const ref = system.spawn(actor, { name: 'a' });
    ref.tell('boom', {});
    await settle(system);
    expect(await ref.ask('ping', {})).toBe(ref.address);
    ref.tell('boom', {});
    await settle(system);
    expect((await rejection(ref.ask('ping', {}))).code).toBe('ERR_ACTOR_STOPPED');
    expect(events.filter((e) => e.type === 'actor-restarted')).toHaveLength(1);
    expect(system.tree().children).toEqual([]);
  });
});

describe('ERR_INVALID_OPTION details', () => {
  // docs/errors.md, ERR_INVALID_OPTION: "`details.option` names the option and `details.value` the value".
  const Timed = defineProtocol('opt.timed', {
    start: ask(z.object({ ms: z.number() }), z.unknown()),
    tick: tell(z.object({})),
  });
  const timed = behavior({
    protocols: [Timed],
    handlers: {
      start: ({ ms }, ctx) => {
        try {
          ctx.timers.startPeriodic('k', ms, 'tick', {});
          return 'started';
        } catch (error) {
          return (error as { details?: unknown }).details ?? 'no details';
        }
      },
      tick: () => {},
    },
  });

  it('name the option of a bad createSystem option, spawn option and behaviour option', () => {
    const { system } = makeSystem();
    expect(thrown(() => createSystem({ askTimeoutMs: -1 })).details).toMatchObject({
      option: 'askTimeoutMs',
      value: -1,
    });
    expect(thrown(() => system.spawn(actor, { shutdownMs: -1 })).details).toMatchObject({
      option: 'shutdownMs',
      value: -1,
    });
    expect(
      thrown(() =>
        behavior({
          protocols: [Opt],
          handlers: { boom() {}, ping: () => '', hang: () => 0 },
          handlerDeadlineMs: -5,
        }),
      ).details,
    ).toMatchObject({ option: 'handlerDeadlineMs', value: -5 });
  });

  it('name the option of a bad ask timeoutMs', async () => {
    const { system } = makeSystem();
    const error = await rejection(system.spawn(actor).ask('ping', {}, { timeoutMs: -1 }));
    expect(error.code).toBe('ERR_INVALID_OPTION');
    expect(error.details).toMatchObject({ option: expect.stringContaining('timeoutMs'), value: -1 });
  });

  it('name the option of a bad drain timeoutMs', async () => {
    const { system } = makeSystem();
    const error = await rejection(system.drain({ timeoutMs: -1 }));
    expect(error.code).toBe('ERR_INVALID_OPTION');
    expect(error.details).toMatchObject({ option: expect.stringContaining('timeoutMs'), value: -1 });
  });

  it('name the option of a bad timer interval', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(timed);
    expect(await ref.ask('start', { ms: 0 })).toMatchObject({ option: 'intervalMs', value: 0 });
  });

  it('name the option of bad middleware', () => {
    const { system } = makeSystem();
    const error = thrown(() => system.use({ send: () => true } as unknown as { name: string }));
    expect(error.code).toBe('ERR_INVALID_OPTION');
    expect(error.details).toMatchObject({ option: expect.stringContaining('middleware') });
  });
});

describe('spawn options', () => {
  const bad: [string, SpawnOptions][] = [
    ['restart unknown', { restart: 'sometimes' as 'permanent' }],
    ['shutdownMs -1', { shutdownMs: -1 }],
    ['validate unknown', { validate: 'never' as 'always' }],
    ['mailbox capacity 1.5', { mailbox: { capacity: 1.5 } }],
    ['supervision strategy unknown', { supervision: { strategy: 'x' as 'one_for_one' } }],
  ];

  it.each(bad)('refuse %s with ERR_INVALID_OPTION', (_what, options) => {
    const { system } = makeSystem();
    expect(thrown(() => system.spawn(actor, options)).code).toBe('ERR_INVALID_OPTION');
    expect(system.tree().children).toEqual([]);
  });

  it('restart: temporary is never restarted', async () => {
    const { system } = makeSystem();
    const ref = system.spawn(actor, { restart: 'temporary' });
    ref.tell('boom', {});
    await settle(system);
    expect((await rejection(ref.ask('ping', {}))).code).toBe('ERR_ACTOR_STOPPED');
  });

  it('restart: transient (the default) is restarted after a crash, not after a normal exit', async () => {
    const Quit = defineProtocol('opt.quit', { quit: tell(z.object({})), boom: tell(z.object({})) });
    let starts = 0;
    const quitter = behavior({
      protocols: [Quit],
      preStart: () => {
        starts++;
      },
      handlers: {
        quit: (_b, ctx) => void ctx.stop(),
        boom: () => {
          throw new Error('boom');
        },
      },
    });
    const { system } = makeSystem();
    const ref = system.spawn(quitter, { name: 'q' });
    ref.tell('boom', {});
    await settle(system);
    expect(starts).toBe(2);
    ref.tell('quit', {});
    await settle(system);
    expect(starts).toBe(2);
    expect(system.tree().children).toEqual([]);
  });

  it('restart: permanent is restarted after a normal exit too', async () => {
    const Quit = defineProtocol('opt.quit2', { quit: tell(z.object({})) });
    let starts = 0;
    const quitter = behavior({
      protocols: [Quit],
      preStart: () => {
        starts++;
      },
      handlers: { quit: (_b, ctx) => void ctx.stop() },
    });
    const { system } = makeSystem();
    const ref = system.spawn(quitter, { restart: 'permanent' });
    ref.tell('quit', {});
    await settle(system);
    expect(starts).toBe(2);
    expect(system.tree().children).toHaveLength(1);
  });
});
