import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { type ActorRef, ask, type BehaviorDefinition, behavior, defineProtocol, tell } from '../../index.js';
import { closeSystemsAfterEach, makeSystem, thrown } from './helpers.js';

closeSystemsAfterEach();

const Counter = defineProtocol('bd.counter', {
  add: tell(z.object({ by: z.number() })),
  get: ask(z.object({}), z.number()),
});

describe('behavior()', () => {
  it('refuses a behaviour missing a handler: a compile error, and ERR_MISSING_HANDLER at run time', () => {
    const compileCheck = () =>
      behavior({
        protocols: [Counter],
        // @ts-expect-error `get` has no handler
        handlers: {
          add: () => {},
        },
      });
    void compileCheck;
    const definition = {
      protocols: [Counter],
      handlers: { add: () => {} },
    } as unknown as BehaviorDefinition<typeof Counter, undefined>;
    const error = thrown(() => behavior(definition));
    expect(error.code).toBe('ERR_MISSING_HANDLER');
    expect(error.details).toMatchObject({ message: 'get', protocol: 'bd.counter' });
  });

  it('refuses a handler that is not a function with ERR_MISSING_HANDLER', () => {
    const definition = {
      protocols: [Counter],
      handlers: { add: () => {}, get: 42 },
    } as unknown as BehaviorDefinition<typeof Counter, undefined>;
    expect(thrown(() => behavior(definition)).code).toBe('ERR_MISSING_HANDLER');
  });

  it('refuses two protocols defining the same message name with ERR_PROTOCOL_CONFLICT', () => {
    const Other = defineProtocol('bd.other', { get: ask(z.object({}), z.string()) });
    const definition = {
      protocols: [Counter, Other],
      handlers: { add: () => {}, get: () => 0 },
    } as unknown as BehaviorDefinition<typeof Counter, undefined>;
    const error = thrown(() => behavior(definition));
    expect(error.code).toBe('ERR_PROTOCOL_CONFLICT');
    expect(error.details).toMatchObject({ message: 'get', protocols: ['bd.counter', 'bd.other'] });
  });

  it('accepts two protocols with distinct messages and routes each to its handler', async () => {
    const Other = defineProtocol('bd.named', { name: ask(z.object({}), z.string()) });
    const both = behavior({
      protocols: [Counter, Other],
      initialState: () => ({ n: 0 }),
      handlers: {
        add: ({ by }, ctx) => {
          ctx.state.n += by;
        },
        get: (_b, ctx) => ctx.state.n,
        name: () => 'both',
      },
    });
    const { system } = makeSystem();
    const ref = system.spawn(both);
    ref.tell('add', { by: 2 });
    expect(await ref.ask('get', {})).toBe(2);
    expect(await ref.ask('name', {})).toBe('both');
  });

  it('refuses, at spawn, a protocol whose name is already registered with other messages', () => {
    const First = defineProtocol('bd.same', { a: tell(z.object({})) });
    const Second = defineProtocol('bd.same', { b: tell(z.object({})) });
    const { system } = makeSystem();
    system.spawn(behavior({ protocols: [First], handlers: { a: () => {} } }));
    const second = behavior({ protocols: [Second], handlers: { b: () => {} } });
    expect(thrown(() => system.spawn(second)).code).toBe('ERR_PROTOCOL_CONFLICT');
  });

  it('refuses a hook that is not a function and a negative handlerDeadlineMs with ERR_INVALID_OPTION', () => {
    const base = { protocols: [Counter], handlers: { add: () => {}, get: () => 0 } };
    const badHook = { ...base, postStop: 'later' } as unknown as BehaviorDefinition<
      typeof Counter,
      undefined
    >;
    expect(thrown(() => behavior(badHook)).code).toBe('ERR_INVALID_OPTION');
    expect(thrown(() => behavior({ ...base, handlerDeadlineMs: -1 })).code).toBe('ERR_INVALID_OPTION');
  });

  it('makes a reusable behaviour: each spawn has its own state', async () => {
    const counter = behavior({
      protocols: [Counter],
      initialState: () => ({ n: 0 }),
      handlers: {
        add: ({ by }, ctx) => {
          ctx.state.n += by;
        },
        get: (_b, ctx) => ctx.state.n,
      },
    });
    const { system } = makeSystem();
    const a = system.spawn(counter);
    const b = system.spawn(counter);
    a.tell('add', { by: 1 });
    b.tell('add', { by: 10 });
    expect([await a.ask('get', {}), await b.ask('get', {})]).toEqual([1, 10]);
  });

  it('refuses to spawn something that is not a behaviour with ERR_INVALID_OPTION', () => {
    const { system } = makeSystem();
    const fake = { protocols: [Counter] } as unknown as Parameters<typeof system.spawn>[0];
    expect(thrown(() => system.spawn(fake)).code).toBe('ERR_INVALID_OPTION');
  });
});

describe('ActorRef', () => {
  it('lets a typed ref stand where an untyped ActorRef is expected, and the untyped one send anything', async () => {
    expectTypeOf<ActorRef<typeof Counter>>().toExtend<ActorRef>();
    const { system } = makeSystem();
    const typed = system.spawn(
      behavior({
        protocols: [Counter],
        initialState: () => 0,
        handlers: {
          add: ({ by }, ctx) => {
            ctx.state += by;
          },
          get: (_b, ctx) => ctx.state,
        },
      }),
    );
    const refs: ActorRef[] = [typed];
    refs[0]!.tell('add', { by: 2 });
    expect(await refs[0]!.ask('get', {})).toBe(2);
  });
});

describe('typed refs', () => {
  it('check message names, bodies, replies and tell/ask kinds at compile time', async () => {
    const { system } = makeSystem({ validate: 'always' });
    const ref = system.spawn(
      behavior({
        protocols: [Counter],
        initialState: () => 0,
        handlers: {
          add: ({ by }, ctx) => {
            ctx.state += by;
          },
          get: (_b, ctx) => ctx.state,
        },
      }),
    );
    const compileChecks = () => {
      // @ts-expect-error the body of `add` is { by: number }
      ref.tell('add', { by: 'two' });
      // @ts-expect-error no message `remove` in the protocol
      ref.tell('remove', {});
      // @ts-expect-error `get` is an ask, not a tell
      ref.tell('get', {});
      // @ts-expect-error `add` is a tell, not an ask
      void ref.ask('add', { by: 1 });
      const reply: Promise<number> = ref.ask('get', {});
      // @ts-expect-error the reply of `get` is a number
      const wrong: Promise<string> = ref.ask('get', {});
      return [reply, wrong];
    };
    void compileChecks;
    // At run time, with validation on, the same mistakes are refused rather than handled.
    (ref as ActorRef).tell('add', { by: 'two' });
    expect(await ref.ask('get', {})).toBe(0);
  });
});
