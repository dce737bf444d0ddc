/**
 * Isolated actors in a worker thread: messages, addresses both ways, the host's tree, events and dead
 * letters seen from the parent, and the typed errors of a bad module, export or message.
 */
import fc from 'fast-check';
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
/** Replay a failing property with FC_SEED=<seed>. */
const SEED = Number(process.env.FC_SEED ?? 42);

async function assertProperty(property: fc.IAsyncProperty<any>): Promise<void> {
  try {
    await fc.assert(property, { seed: SEED, numRuns: 100 });
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(`property failed with seed ${SEED} (replay: FC_SEED=${SEED})\n${detail}`, {
      cause: error,
    });
  }
}

function cyclic(): unknown {
  const node: Record<string, unknown> = { name: 'a' };
  node.self = node;
  return node;
}

/** `value` with `leaf` in place of one of its parts (counting parts depth first), or `leaf` itself. */
function plant(value: unknown, leaf: unknown, at: number): unknown {
  const parts: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const walk = (node: unknown) => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => {
        parts.push({ parent: node, key: i });
        walk(child);
      });
    } else if (typeof node === 'object' && node !== null) {
      for (const [key, child] of Object.entries(node)) {
        parts.push({ parent: node as Record<string, unknown>, key });
        walk(child);
      }
    }
  };
  const copy = structuredClone(value);
  walk(copy);
  if (parts.length === 0) return leaf;
  const { parent, key } = parts[at % parts.length]!;
  // Defined, not assigned: a key named `__proto__` stays an own key.
  Object.defineProperty(parent, key, { value: leaf, enumerable: true, writable: true, configurable: true });
  return copy;
}

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

  it('refuses a message that cannot cross to the host at the send: a tell throws, an ask rejects', async () => {
    const loose = calc as unknown as ActorRef;
    class Point {
      constructor(readonly x: number) {}
      norm(): number {
        return Math.abs(this.x);
      }
    }
    const uncloneable: [string, unknown][] = [
      ['a function', () => 1],
      ['a symbol', Symbol('s')],
      ['a class instance with a method', new Point(3)],
      ['a SharedArrayBuffer', new SharedArrayBuffer(8)],
      ['a bigint', 10n],
      ['a Map', new Map([[1, 2]])],
      ['NaN', Number.NaN],
      ['a cycle', cyclic()],
    ];
    const before = await calc.ask('total', {});
    const deadBefore = dead.length;
    for (const [what, value] of uncloneable) {
      let thrown: unknown;
      try {
        loose.tell('add', { n: value });
      } catch (error) {
        thrown = error;
      }
      expect(
        TroupeError.is(thrown, 'ERR_NOT_CLONEABLE') && thrown.details?.type === 'add',
        `tell of ${what}: ${String(thrown)}`,
      ).toBe(true);
      // Deep inside the body too, and the ask is a rejection, not a throw.
      const asked = loose.ask('echo', { value: { list: [1, { value }] } });
      await expect(asked, `ask of ${what}`).rejects.toSatisfy(
        (e) => TroupeError.is(e, 'ERR_NOT_CLONEABLE') && /value\.list\[1\]\.value/.test(e.message),
      );
    }
    // Nothing reached the host, and nothing was left for later: no dead letter, the total unchanged.
    expect(await calc.ask('total', {})).toBe(before);
    expect(dead.slice(deadBefore).filter((d) => d.to === calc.address)).toEqual([]);
    expect(await calc.ask('echo', { value: { ok: [1, 'two', null] } })).toEqual({ ok: [1, 'two', null] });
  });

  it('carries every JSON value there and back, and refuses every body with a value JSON cannot hold (property)', async () => {
    const loose = calc as unknown as ActorRef;
    const bad = fc.constantFrom<unknown>(
      () => 1,
      Symbol('s'),
      new Date(0),
      new Set([1]),
      new Uint8Array(2),
      Number.POSITIVE_INFINITY,
      5n,
    );
    /** A JSON value with `leaf` put somewhere inside it (or as the value itself). */
    const withLeaf = fc
      .tuple(fc.jsonValue({ maxDepth: 3 }), bad, fc.nat())
      .map(([value, leaf, at]) => plant(value, leaf, at));
    await assertProperty(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 3 }), withLeaf, async (good, refused) => {
        expect(await loose.ask('echo', { value: good })).toEqual(JSON.parse(JSON.stringify(good)));
        expect(() => loose.tell('echo', { value: refused })).toThrow(
          expect.objectContaining({ code: 'ERR_NOT_CLONEABLE' }),
        );
      }),
    );
  });

  it('refuses it with the same code when development checks are on', async () => {
    const dev = createSystem({ name: 'iso-dev', deadLetterLog: () => {} });
    try {
      const hosted = (await startIsolated(dev, spec, { ...once, name: 'calc' })) as unknown as ActorRef;
      expect(() => hosted.tell('add', { n: () => 1 })).toThrow(
        expect.objectContaining({ code: 'ERR_NOT_CLONEABLE' }),
      );
      await expect(hosted.ask('echo', { value: Symbol('s') })).rejects.toSatisfy((e) =>
        TroupeError.is(e, 'ERR_NOT_CLONEABLE'),
      );
      expect(await hosted.ask('echo', { value: [1] })).toEqual([1]);
    } finally {
      await dev.close();
    }
  }, 60_000);

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
