import fc from 'fast-check';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  type AnyProtocol,
  type AskKeys,
  ask,
  assertPlainData,
  type BodyOf,
  decodeEnvelope,
  defineProtocol,
  formatAddress,
  parseAddress,
  type ReplyOf,
  splitType,
  type TellKeys,
  TroupeError,
  tell,
  type Validated,
  validate,
} from '../protocols/index.js';

/** Replay a failing property with FC_SEED=<seed>. */
const SEED = Number(process.env.FC_SEED ?? 42);

const withCode = (code: string) => expect.objectContaining({ code });

/** The error `fn` throws; fails the test when it throws nothing. */
function thrown(fn: () => unknown): TroupeError {
  try {
    fn();
  } catch (error) {
    expect(TroupeError.is(error), `not a TroupeError: ${String(error)}`).toBe(true);
    return error as TroupeError;
  }
  expect.fail('expected a throw');
}

const Counter = defineProtocol('counter', {
  add: tell(z.object({ by: z.number() })),
  get: ask(z.object({}), z.number()),
});
const Names = defineProtocol('names', {
  rename: ask(z.object({ to: z.string() }), z.boolean()),
  forget: tell(z.object({ who: z.string().optional() })),
});

describe('protocol types', () => {
  it('infers message names, bodies and replies from zod schemas', () => {
    expectTypeOf<TellKeys<typeof Counter>>().toEqualTypeOf<'add'>();
    expectTypeOf<AskKeys<typeof Counter>>().toEqualTypeOf<'get'>();
    expectTypeOf<BodyOf<typeof Counter, 'add'>>().toEqualTypeOf<{ by: number }>();
    expectTypeOf<BodyOf<typeof Counter, 'get'>>().toEqualTypeOf<Record<string, never>>();
    expectTypeOf<ReplyOf<typeof Counter, 'get'>>().toEqualTypeOf<number>();
    expectTypeOf<ReplyOf<typeof Counter, 'add'>>().toBeNever();
    expectTypeOf<BodyOf<typeof Counter, 'nope'>>().toBeNever();
  });

  it('merges the messages of a union of protocols', () => {
    type Both = typeof Counter | typeof Names;
    expectTypeOf<TellKeys<Both>>().toEqualTypeOf<'add' | 'forget'>();
    expectTypeOf<AskKeys<Both>>().toEqualTypeOf<'get' | 'rename'>();
    expectTypeOf<BodyOf<Both, 'add'>>().toEqualTypeOf<{ by: number }>();
    expectTypeOf<BodyOf<Both, 'forget'>>().toEqualTypeOf<{ who?: string | undefined }>();
    expectTypeOf<ReplyOf<Both, 'get'>>().toEqualTypeOf<number>();
    expectTypeOf<ReplyOf<Both, 'rename'>>().toEqualTypeOf<boolean>();
  });

  it('leaves an untyped protocol open', () => {
    expectTypeOf<BodyOf<AnyProtocol, string>>().toEqualTypeOf<unknown>();
    expectTypeOf<ReplyOf<AnyProtocol, string>>().toEqualTypeOf<unknown>();
    expectTypeOf<TellKeys<AnyProtocol>>().toEqualTypeOf<string>();
    expectTypeOf<AskKeys<AnyProtocol>>().toEqualTypeOf<string>();
  });

  it('keeps the literal protocol name and the schemas at run time', () => {
    expectTypeOf(Counter.name).toEqualTypeOf<'counter'>();
    expect(Counter.name).toBe('counter');
    expect(Counter.messages.add.kind).toBe('tell');
    expect(Counter.messages.get.kind).toBe('ask');
    expect(Object.isFrozen(Counter) && Object.isFrozen(Counter.messages)).toBe(true);
  });
});

describe('defineProtocol', () => {
  const message = tell(z.object({}));

  it('accepts dotted names of letters, digits, "_" and "-"', () => {
    for (const name of ['a', 'acme.orders', 'Orders_v2', 'x-y.z_1']) {
      expect(defineProtocol(name, { ping: message }).name).toBe(name);
    }
  });

  it('rejects bad protocol names with ERR_INVALID_OPTION', () => {
    for (const name of ['', '1abc', 'a b', 'a..b', '.a', 'a.', 'a/b', '_a', 'é']) {
      const error = thrown(() => defineProtocol(name, { ping: message }));
      expect(error, JSON.stringify(name)).toMatchObject({
        code: 'ERR_INVALID_OPTION',
        details: { option: 'name' },
      });
    }
    expect(() => defineProtocol(42 as never, { ping: message })).toThrow(withCode('ERR_INVALID_OPTION'));
  });

  it('rejects bad message maps and specs with ERR_INVALID_OPTION', () => {
    const bad: [string, unknown][] = [
      ['no messages', {}],
      ['not an object', null],
      ['a dotted message name', { 'a.b': message }],
      ['an empty message name', { '': message }],
      ['a message name starting with a digit', { '1x': message }],
      ['a spec without kind', { x: { body: z.object({}) } }],
      ['an unknown kind', { x: { kind: 'shout', body: z.object({}) } }],
      ['a tell whose body is no schema', { x: { kind: 'tell', body: {} } }],
      ['an ask without a reply schema', { x: { kind: 'ask', body: z.object({}) } }],
      ['an ask whose reply is no schema', { x: { kind: 'ask', body: z.object({}), reply: 'number' } }],
      ['a bare schema instead of tell(schema)', { x: z.object({}) }],
    ];
    for (const [what, messages] of bad) {
      expect(() => defineProtocol('p', messages as never), what).toThrow(withCode('ERR_INVALID_OPTION'));
    }
  });
});

describe('addresses', () => {
  it('round-trips through formatAddress and parseAddress', () => {
    for (const parts of [
      { system: 'shop', node: 'n1', path: 'orders' },
      { system: 'shop', node: 'n1', path: 'orders/$a1/worker' },
      { system: 'c', node: '@cart', path: '42' },
      // The node itself: the root of its tree (what system.tree() reports as the root's address).
      { system: 'shop', node: 'n1', path: '' },
    ]) {
      const address = formatAddress(parts);
      expect(address).toBe(`troupe://${parts.system}/${parts.node}/${parts.path}`);
      expect(parseAddress(address)).toEqual(parts);
      expect(formatAddress(parseAddress(address))).toBe(address);
    }
  });

  it('rejects malformed addresses with ERR_INVALID_ADDRESS', () => {
    for (const bad of [
      '',
      'shop/n1/a',
      'http://shop/n1/a',
      'troupe:/shop/n1/a',
      'troupe://',
      'troupe://shop',
      'troupe://shop/n1',
      'troupe:///n1/a',
      'troupe://shop//a',
      'troupe://shop/n1/a//b',
      'troupe://shop/n1/a/',
    ]) {
      const error = thrown(() => parseAddress(bad));
      expect(error.code, bad).toBe('ERR_INVALID_ADDRESS');
      expect(error.details).toEqual({ address: bad });
    }
    expect(() => parseAddress(undefined as never)).toThrow(withCode('ERR_INVALID_ADDRESS'));
  });
});

describe('envelopes', () => {
  const good = {
    id: 'm1',
    to: 'troupe://a/b/c',
    from: 'troupe://a/b/d',
    type: 'counter.add',
    body: { by: 1 },
    correlationId: 'c1',
    replyTo: 'troupe://a/b/d',
    deadline: 1_700_000_000_000,
    trace: { traceparent: '00-abc-def-01', tracestate: 'k=v' },
    fence: 3,
  };

  it('accepts a well-formed envelope as it is, with or without its optional fields', () => {
    expect(decodeEnvelope(good)).toBe(good);
    const minimal = { id: 'm1', to: 'troupe://a/b/c', type: 'counter.add', body: undefined };
    expect(decodeEnvelope(minimal)).toBe(minimal);
  });

  it('rejects each malformed field with ERR_VALIDATION, naming it', () => {
    const { id: _id, ...withoutId } = good;
    const bad: [unknown, string][] = [
      [null, 'not an object'],
      ['envelope', 'not an object'],
      [[good], 'not an object'],
      [withoutId, '`id`'],
      [{ ...good, id: 7 }, '`id`'],
      [{ ...good, id: '' }, '`id`'],
      [{ ...good, to: undefined }, '`to`'],
      [{ ...good, to: '' }, '`to`'],
      [{ ...good, type: ['counter.add'] }, '`type`'],
      [{ ...good, from: 1 }, '`from`'],
      [{ ...good, correlationId: {} }, '`correlationId`'],
      [{ ...good, replyTo: null }, '`replyTo`'],
      [{ ...good, deadline: 'soon' }, '`deadline`'],
      [{ ...good, deadline: Number.POSITIVE_INFINITY }, '`deadline`'],
      [{ ...good, fence: 1.5 }, '`fence`'],
      [{ ...good, fence: '3' }, '`fence`'],
      [{ ...good, trace: 'x' }, '`trace.traceparent`'],
      [{ ...good, trace: null }, '`trace.traceparent`'],
      [{ ...good, trace: { tracestate: 'x' } }, '`trace.traceparent`'],
    ];
    for (const [data, field] of bad) {
      const error = thrown(() => decodeEnvelope(data));
      expect(error.code, field).toBe('ERR_VALIDATION');
      expect(error.message).toContain(field);
    }
  });
});

describe('splitType', () => {
  it('splits at the last dot', () => {
    expect(splitType('counter.add')).toEqual({ protocol: 'counter', message: 'add' });
    expect(splitType('acme.orders.place')).toEqual({ protocol: 'acme.orders', message: 'place' });
  });

  it('returns undefined without a protocol or a message', () => {
    for (const type of ['', 'nodot', '.add', 'counter.', '.']) expect(splitType(type), type).toBeUndefined();
  });
});

describe('assertPlainData', () => {
  class Money {
    cents = 1;
  }

  it('accepts plain data', () => {
    const shared = { a: 1 };
    for (const value of [
      null,
      undefined,
      true,
      0,
      -1.5,
      '',
      'text',
      [],
      [1, 'two', null, [3]],
      {},
      { nested: { list: [{ deep: true }] }, skipped: undefined },
      { x: shared, y: shared }, // shared, but not a cycle
      Object.create(null),
    ]) {
      expect(() => assertPlainData(value)).not.toThrow();
    }
  });

  it('rejects what does not survive JSON with ERR_NOT_PLAIN_DATA, naming the path', () => {
    const cycle: Record<string, unknown> = { list: [] };
    (cycle.list as unknown[]).push(cycle);
    const cases: [unknown, string, string][] = [
      [() => 1, 'body', 'function'],
      [{ f: () => 1 }, 'body.f', 'function'],
      [{ at: new Date(0) }, 'body.at', 'Date'],
      [{ m: new Map() }, 'body.m', 'Map'],
      [{ s: new Set([1]) }, 'body.s', 'Set'],
      [[1, new Money()], 'body[1]', 'Money'],
      [{ s: Symbol('x') }, 'body.s', 'symbol'],
      [{ n: 10n }, 'body.n', 'bigint'],
      [{ n: Number.NaN }, 'body.n', 'NaN'],
      [{ n: [Number.NEGATIVE_INFINITY] }, 'body.n[0]', 'Infinity'],
      [cycle, 'body.list[0]', 'cycle'],
    ];
    for (const [value, path, what] of cases) {
      const error = thrown(() => assertPlainData(value));
      expect(error.code, path).toBe('ERR_NOT_PLAIN_DATA');
      expect(error.message).toContain(`${path} is`);
      expect(error.message).toContain(what);
      expect(error.details).toEqual({ path });
    }
  });

  it('names the root it was given', () => {
    expect(thrown(() => assertPlainData({ f: () => 1 }, 'reply')).message).toMatch(/^reply\.f is/);
  });

  it('accepts every JSON value and its JSON round trip (property)', () => {
    const property = fc.property(fc.jsonValue(), (value) => {
      assertPlainData(value);
      assertPlainData({ wrapped: [value] });
      const wire = JSON.stringify(value);
      assertPlainData(JSON.parse(wire));
      // What crossed the wire is the same plain data (up to -0, which JSON writes as 0).
      expect(JSON.stringify(JSON.parse(wire))).toBe(wire);
    });
    try {
      fc.assert(property, { seed: SEED, numRuns: 500 });
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      throw new Error(`property failed with seed ${SEED} (replay: FC_SEED=${SEED})\n${detail}`, {
        cause: error,
      });
    }
  });
});

describe('validate', () => {
  const Order = z.object({
    user: z.object({ name: z.string().min(2) }),
    tags: z.array(z.string()),
  });

  /** The result of a sync validation; fails the test if it is a promise. */
  function sync(result: Validated | Promise<Validated>): Validated {
    expect(result).not.toBeInstanceOf(Promise);
    return result as Validated;
  }

  it('passes valid values through, as the schema outputs them', () => {
    const value = { user: { name: 'ada' }, tags: ['x'] };
    expect(sync(validate(Order, value, 'the body'))).toEqual({ ok: true, value });
    const trimmed = z.string().transform((s) => s.trim());
    expect(sync(validate(trimmed, '  hi ', 'name'))).toEqual({ ok: true, value: 'hi' });
  });

  it('answers synchronously for a sync schema, with every issue and its path', () => {
    const result = sync(validate(Order, { user: { name: 'a' }, tags: ['ok', 1] }, 'the body'));
    expect(result.ok).toBe(false);
    const error = (result as Extract<Validated, { ok: false }>).error;
    expect(error.code).toBe('ERR_VALIDATION');
    expect(error.message).toMatch(/^the body failed its schema: /);
    expect(error.message).toContain('user.name: ');
    expect(error.message).toContain('tags.1: ');
    expect(error.details?.issues).toEqual([
      { path: 'user.name', message: expect.any(String) },
      { path: 'tags.1', message: expect.any(String) },
    ]);
  });

  it('reports an issue at the root without a path', () => {
    const result = sync(validate(z.number(), 'one', 'the reply'));
    expect(result).toMatchObject({
      ok: false,
      error: { code: 'ERR_VALIDATION', details: { issues: [{ path: '' }] } },
    });
  });

  it('returns a promise for an async schema', async () => {
    const schema = z.object({
      name: z.string().refine(async (s) => s.startsWith('x'), 'must start with x'),
    });
    const failing = validate(schema, { name: 'y' }, 'the body');
    expect(failing).toBeInstanceOf(Promise);
    const result = await failing;
    expect(result).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION' } });
    expect((result as Extract<Validated, { ok: false }>).error.message).toContain('name: must start with x');
    await expect(validate(schema, { name: 'xy' }, 'the body')).resolves.toEqual({
      ok: true,
      value: { name: 'xy' },
    });
    const bare = z.string().refine(async (s) => s.length > 1, 'too short');
    await expect(validate(bare, 'a', 'name')).resolves.toMatchObject({
      ok: false,
      error: { message: 'name failed its schema: too short' },
    });
  });

  it('turns a schema that throws into ERR_VALIDATION with the cause', () => {
    const boom = new Error('schema bug');
    const broken = {
      '~standard': {
        version: 1 as const,
        vendor: 'test',
        validate: () => {
          throw boom;
        },
      },
    };
    const result = sync(validate(broken, 1, 'the body'));
    expect(result).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION' } });
    expect((result as Extract<Validated, { ok: false }>).error.cause).toBe(boom);
  });

  it('turns an async schema that rejects into ERR_VALIDATION with the cause', async () => {
    // A hand-written schema: zod 4.6's async refine that throws also leaks an unhandled
    // rejection of its own, which is zod's, not the runtime's.
    const boom = new Error('lookup failed');
    const schema = {
      '~standard': {
        version: 1 as const,
        vendor: 'test',
        validate: () => Promise.reject(boom),
      },
    };
    const result = await validate(schema, 'x', 'the body');
    expect(result).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION' } });
    expect((result as Extract<Validated, { ok: false }>).error.cause).toBe(boom);
  });
});
