/**
 * Isolated actors in a worker thread: messages, addresses both ways, the host's tree, events and dead
 * letters seen from the parent, and the typed errors of a bad module, export or message.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type ActorRef,
  type ActorSystem,
  behavior,
  createSystem,
  type DeadLetterEvent,
  isolated,
  type SystemEvent,
  startIsolated,
  TroupeError,
} from '../../index.js';
import { Calc } from './fixtures/protocols.js';

const module = new URL('./fixtures/calc.ts', import.meta.url);
const spec = { protocols: [Calc], module, export: 'calculator' } as const;
/** Hosts here never restart, so no spare is kept: fewer worker starts for the suite. */
const once = { standby: false } as const;

describe('an isolated actor in a worker thread', () => {
  let system: ActorSystem;
  let calc: ActorRef<typeof Calc>;
  const events: SystemEvent[] = [];
  const dead: DeadLetterEvent[] = [];

  beforeAll(async () => {
    // Production mode: development checks would refuse a function body at `tell` already, with
    // ERR_NOT_PLAIN_DATA, before the proxy sees it.
    system = createSystem({ name: 'iso', deadLetterLog: () => {}, devChecks: false });
    system.events$.subscribe((event) => {
      events.push(event);
      if (event.type === 'dead-letter') dead.push(event);
    });
    calc = await startIsolated(system, spec, { ...once, name: 'calc' });
  }, 60_000);
  afterAll(() => system.close());

  it('answers asks and handles tells in order, through a ref of the same type as a local one', async () => {
    for (let n = 1; n <= 100; n++) calc.tell('add', { n });
    expect(await calc.ask('total', {})).toBe(5050);
    expect(await calc.ask('fib', { n: 20 })).toBe(6765);
    expect(calc.address).toBe('troupe://iso/local/calc');
  });

  it('is a node of the same system: its actors have addresses the parent can reach, and it reaches the parent', async () => {
    const hosted = system.ref('troupe://iso/local.calc/calc', Calc);
    expect(await hosted.ask('total', {})).toBe(5050);
    const local = system.spawn(
      behavior({
        protocols: [Calc],
        initialState: () => ({ total: 0 }),
        handlers: {
          add: ({ n }, ctx) => {
            ctx.state.total += n;
          },
          total: (_b, ctx) => ctx.state.total,
          fib: () => 0,
          spin: () => {},
          hog: () => {},
          child: () => '',
          forward: () => {},
          read: () => '',
          fail: () => {},
          askTotal: () => 0,
          echo: ({ value }) => value,
        },
      }),
      { name: 'local-calc' },
    );
    calc.tell('forward', { to: local.address, n: 7 });
    await expect.poll(() => local.ask('total', {})).toBe(7);
    // The hosted actor asks the parent's actor by address, and gets its reply.
    expect(await calc.ask('askTotal', { to: local.address })).toBe(7);
  });

  it('shows its actors in the parent tree and their events on the parent stream', async () => {
    const address = await calc.ask('child', { name: 'helper' });
    expect(address).toBe('troupe://iso/local.calc/calc/helper');
    await vi.waitFor(() => {
      const proxy = system.tree().children.find((c) => c.name === 'calc')!;
      const hosted = proxy.children.find((c) => c.address === 'troupe://iso/local.calc/calc')!;
      expect(hosted.children.map((c) => c.address)).toEqual([address]);
    });
    await vi.waitFor(() =>
      expect(events.some((e) => e.type === 'actor-spawned' && e.address === address)).toBe(true),
    );
  });

  it('forwards the dead letters raised inside the host to the parent', async () => {
    calc.tell('forward', { to: 'troupe://iso/local.calc/nobody', n: 1 });
    await vi.waitFor(() =>
      expect(
        dead.some((d) => d.to === 'troupe://iso/local.calc/nobody' && d.reason === 'no-such-actor'),
      ).toBe(true),
    );
  });

  it('refuses a message that cannot cross to the host: an ask rejects, a tell is a dead letter', async () => {
    const echo = calc as unknown as ActorRef;
    await expect(echo.ask('echo', { value: () => 1 })).rejects.toSatisfy((e) =>
      TroupeError.is(e, 'ERR_NOT_CLONEABLE'),
    );
    await expect(echo.ask('echo', { value: 10n })).rejects.toSatisfy((e) =>
      TroupeError.is(e, 'ERR_NOT_CLONEABLE'),
    );
    echo.tell('add', { n: new Map() });
    await vi.waitFor(() =>
      expect(dead.some((d) => d.messageType === 'add' && TroupeError.is(d.error, 'ERR_NOT_CLONEABLE'))).toBe(
        true,
      ),
    );
    // The actor goes on.
    expect(await calc.ask('echo', { value: { ok: [1, 'two'] } })).toEqual({ ok: [1, 'two'] });
  });

  it('crashes and restarts the hosted actor inside its host, as any actor', async () => {
    calc.tell('add', { n: 1 });
    calc.tell('fail', {});
    await vi.waitFor(() =>
      expect(
        events.some((e) => e.type === 'actor-restarted' && e.address === 'troupe://iso/local.calc/calc'),
      ).toBe(true),
    );
    expect(await calc.ask('total', {})).toBe(0);
  });
});

describe('bad input at spawn', () => {
  let system: ActorSystem;
  beforeAll(() => {
    system = createSystem({ name: 'bad', deadLetterLog: () => {} });
  });
  afterAll(() => system.close());

  it('names a module that does not exist, an export that does not exist, and an export that is not a behaviour', async () => {
    await expect(
      startIsolated(system, { ...spec, module: new URL('./fixtures/missing.ts', import.meta.url) }, once),
    ).rejects.toSatisfy((e) => TroupeError.is(e, 'ERR_MODULE_NOT_FOUND'));
    await expect(startIsolated(system, { ...spec, export: 'nothing' }, once)).rejects.toSatisfy(
      (e) =>
        TroupeError.is(e, 'ERR_EXPORT_NOT_FOUND') &&
        ((e.details?.exports as string[] | undefined) ?? []).includes('calculator'),
    );
    await expect(startIsolated(system, { ...spec, export: 'notABehavior' }, once)).rejects.toSatisfy((e) =>
      TroupeError.is(e, 'ERR_NOT_A_BEHAVIOR'),
    );
  }, 60_000);

  it('refuses bad options where they are written', () => {
    expect(() => isolated({ ...spec, module: 'relative/calc.ts' })).toThrow(/absolute path/);
    expect(() => isolated(spec, { cpuBudgetMs: 0 })).toThrow(/cpuBudgetMs/);
    expect(() => isolated(spec, { permissions: {} })).toThrow(/process hosts/);
  });
});
