import type { StandardSchemaV1 } from '@standard-schema/spec';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type ActorRef, ask, behavior, defineProtocol, tell } from '../../index.js';
import { flushMicrotasks, settle } from '../../runtime/testkit/index.js';
import { supervisor } from '../../supervisors/index.js';
import { closeSystemsAfterEach, gate, makeSystem, rejection, within } from './helpers.js';

closeSystemsAfterEach();

const Strict = defineProtocol('val.strict', {
  put: tell(z.object({ n: z.number() })),
  echo: ask(z.object({ n: z.number() }), z.number()),
  withDefault: ask(z.object({ n: z.number().default(5) }), z.number()),
  badReply: ask(z.object({}), z.string()),
  seen: ask(z.object({}), z.array(z.unknown())),
});

const strict = behavior({
  protocols: [Strict],
  initialState: () => ({ seen: [] as unknown[] }),
  handlers: {
    put: (body, ctx) => {
      ctx.state.seen.push(body);
    },
    echo: (body, ctx) => {
      ctx.state.seen.push(body);
      return body.n;
    },
    withDefault: ({ n }) => n,
    badReply: () => 42 as unknown as string,
    seen: (_b, ctx) => [...ctx.state.seen],
  },
});

/** An untyped view, to send bodies the types would refuse. */
const loose = (ref: ActorRef<typeof Strict>) => ref as unknown as ActorRef;

describe("validate: 'always'", () => {
  it('keeps an invalid ask from the handler and rejects it with ERR_VALIDATION', async () => {
    const { system, events } = makeSystem({ validate: 'always' });
    const ref = system.spawn(strict);
    const error = await rejection(loose(ref).ask('echo', { n: 'one' }));
    expect(error.code).toBe('ERR_VALIDATION');
    expect(error.details?.issues).toEqual([{ path: 'n', message: expect.any(String) }]);
    expect(await ref.ask('seen', {})).toEqual([]);
    expect(events.filter((e) => e.type === 'actor-crashed')).toEqual([]);
  });

  it('turns an invalid tell into a validation-failed dead letter and goes on', async () => {
    const { system, dead } = makeSystem({ validate: 'always' });
    const ref = system.spawn(strict);
    loose(ref).tell('put', { n: 'one' });
    ref.tell('put', { n: 2 });
    expect(await ref.ask('seen', {})).toEqual([{ n: 2 }]);
    expect(dead.map((d) => [d.messageType, d.reason, d.error?.code])).toEqual([
      ['put', 'validation-failed', 'ERR_VALIDATION'],
    ]);
  });

  it('hands the handler the parsed value (defaults applied, unknown keys stripped)', async () => {
    const { system } = makeSystem({ validate: 'always' });
    const ref = system.spawn(strict);
    expect(await loose(ref).ask('withDefault', {})).toBe(5);
    loose(ref).tell('put', { n: 1, extra: true });
    expect(await ref.ask('seen', {})).toEqual([{ n: 1 }]);
  });

  it('rejects an ask whose reply fails its schema with ERR_VALIDATION', async () => {
    const { system } = makeSystem({ validate: 'always' });
    const ref = system.spawn(strict);
    const error = await rejection(ref.ask('badReply', {}));
    expect(error.code).toBe('ERR_VALIDATION');
  });

  it('applies per actor through the spawn option', async () => {
    const { system } = makeSystem();
    const checked = system.spawn(strict, { validate: 'always' });
    const unchecked = system.spawn(strict);
    expect((await rejection(loose(checked).ask('echo', { n: 'x' }))).code).toBe('ERR_VALIDATION');
    expect(await loose(unchecked).ask('echo', { n: 'x' })).toBe('x');
  });
});

describe('async schemas', () => {
  const Async = defineProtocol('val.async', {
    put: tell(z.object({ n: z.number() }).refine(async ({ n }) => n > 0, 'must be positive')),
    check: ask(
      z.object({ n: z.number() }).refine(async ({ n }) => n > 0, 'must be positive'),
      z.string(),
    ),
    seen: ask(z.object({}), z.array(z.number())),
  });
  const asyncActor = behavior({
    protocols: [Async],
    initialState: () => ({ seen: [] as number[] }),
    handlers: {
      put: ({ n }, ctx) => {
        ctx.state.seen.push(n);
      },
      check: ({ n }) => `ok${n}`,
      seen: (_b, ctx) => [...ctx.state.seen],
    },
  });

  it('accepts a valid body and rejects an invalid one with ERR_VALIDATION', async () => {
    const { system, dead } = makeSystem({ validate: 'always' });
    const ref = system.spawn(asyncActor);
    await expect(ref.ask('check', { n: 1 })).resolves.toBe('ok1');
    const error = await rejection(ref.ask('check', { n: -1 }));
    expect(error.code).toBe('ERR_VALIDATION');
    expect(error.message).toContain('must be positive');
    ref.tell('put', { n: -2 });
    await settle(system);
    expect(dead.map((d) => [d.messageType, d.reason])).toEqual([
      ['check', 'validation-failed'],
      ['put', 'validation-failed'],
    ]);
  });

  it('keeps the order of messages that wait for async validation', async () => {
    const { system } = makeSystem({ validate: 'always' });
    const ref = system.spawn(asyncActor);
    for (const n of [1, -1, 2, 3, -4, 5]) ref.tell('put', { n });
    expect(await ref.ask('seen', {})).toEqual([1, 2, 3, 5]);
  });

  it('rejects with ERR_VALIDATION, and goes on, when an async schema rejects', async () => {
    // A Standard Schema whose async validation rejects (zod would also leave its own sync attempt's
    // rejection unhandled, so a hand-made schema keeps this test about the kernel alone).
    const exploding: StandardSchemaV1<{ n: number }> = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: () => Promise.reject(new Error('schema exploded')),
      },
    };
    const Throwing = defineProtocol('val.throwing', {
      check: ask(exploding, z.string()),
      ping: ask(z.object({}), z.string()),
    });
    const actor = behavior({
      protocols: [Throwing],
      handlers: { check: () => 'checked', ping: () => 'pong' },
    });
    const { system } = makeSystem({ validate: 'always' });
    const ref = system.spawn(actor);
    const error = await rejection(ref.ask('check', { n: 1 }, { timeoutMs: 500 }));
    expect(error.code).toBe('ERR_VALIDATION');
    await expect(ref.ask('ping', {}, { timeoutMs: 500 })).resolves.toBe('pong');
  });

  it('settles an ask whose body is being validated when the actor stops, and lets the system go idle', async () => {
    const held = gate();
    const Slow = defineProtocol('val.slow', {
      check: ask(
        z.object({ n: z.number() }).refine(async () => {
          await held.promise;
          return true;
        }),
        z.string(),
      ),
    });
    const actor = behavior({ protocols: [Slow], handlers: { check: () => 'checked' } });
    const { system, dead } = makeSystem({ validate: 'always' });
    const ref = system.spawn(actor);
    const pending = ref.ask('check', { n: 1 }, { timeoutMs: 1000 });
    await settleSoon();
    await system.stop(ref);
    held.open();
    const error = await rejection(pending);
    expect(error.code).toBe('ERR_ACTOR_STOPPED');
    expect(dead.map((d) => [d.messageType, d.reason])).toEqual([['check', 'actor-stopped']]);
    await within(settle(system), 300, 'settle() after the stop');
  });
});

describe("validate: 'boundary' (the default)", () => {
  it('does not validate local messages', async () => {
    const { system, dead } = makeSystem();
    const ref = system.spawn(strict);
    expect(await loose(ref).ask('echo', { n: 'one' })).toBe('one');
    loose(ref).tell('put', { n: 'two' });
    expect(await ref.ask('seen', {})).toEqual([{ n: 'one' }, { n: 'two' }]);
    await expect(ref.ask('badReply', {})).resolves.toBe(42);
    expect(dead).toEqual([]);
  });
});

/** A few macrotask turns, so that promise chains started by a send can run. */
async function settleSoon(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

describe('a restart while a message is being validated', () => {
  it('hands the message to the next incarnation instead of losing it', async () => {
    const held = gate();
    let validations = 0;
    // The first validation waits for the gate; the one after the restart answers at once.
    const slow: StandardSchemaV1<{ n: number }> = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: async (value) => {
          validations++;
          if (validations === 1) await held.promise;
          return { value: value as { n: number } };
        },
      },
    };
    const Slow = defineProtocol('val.restart', {
      put: tell(slow),
      seen: ask(z.object({}), z.array(z.number())),
    });
    const Boom = defineProtocol('val.boom', { boom: tell(z.object({})) });
    const { system, dead } = makeSystem({ validate: 'always' });
    const sup = system.spawn(
      supervisor({
        strategy: 'one_for_all',
        children: [
          {
            id: 'a',
            behavior: behavior({
              protocols: [Slow],
              initialState: () => [] as number[],
              handlers: {
                put: ({ n }, ctx) => {
                  ctx.state.push(n);
                },
                seen: (_b, ctx) => ctx.state,
              },
            }),
          },
          {
            id: 'b',
            behavior: behavior({
              protocols: [Boom],
              handlers: {
                boom: () => {
                  throw new Error('sibling crash');
                },
              },
            }),
          },
        ],
      }),
    );
    await settle(system);
    const a = system.ref(`${sup.address}/a`, Slow);
    const b = system.ref(`${sup.address}/b`, Boom);
    a.tell('put', { n: 1 });
    await flushMicrotasks();
    expect(validations).toBe(1);
    b.tell('boom', {});
    await settle(system);
    held.open();
    expect(await within(a.ask('seen', {}), 500, 'seen')).toEqual([1]);
    expect(validations).toBe(2);
    expect(system.tree().children[0]?.children.map((c) => c.restarts)).toEqual([1, 1]);
    expect(dead).toEqual([]);
  });
});
