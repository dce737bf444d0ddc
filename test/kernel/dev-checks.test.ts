import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type ActorRef, ask, behavior, defineProtocol, tell } from '../../index.js';
import { settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, makeSystem, rejection, thrown } from './helpers.js';

closeSystemsAfterEach();

const Any = defineProtocol('dev.any', {
  put: tell(z.any()),
  echo: ask(z.any(), z.any()),
  timer: ask(z.object({}), z.string()),
  seen: ask(z.object({}), z.number()),
});

const sink = behavior({
  protocols: [Any],
  initialState: () => ({ seen: [] as unknown[] }),
  handlers: {
    put: (body, ctx) => {
      ctx.state.seen.push(body);
    },
    echo: (body) => (body instanceof Date ? 'a Date' : typeof body),
    timer: (_b, ctx) => {
      try {
        ctx.timers.startSingle('k', 10, 'put', { when: new Date() });
        return 'started';
      } catch (error) {
        return (error as { code: string }).code;
      }
    },
    seen: (_b, ctx) => ctx.state.seen.length,
  },
});

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

const notPlain: [string, unknown][] = [
  ['a function', { f: () => 1 }],
  ['a Date', new Date(0)],
  ['a class instance', { p: new Point(1, 2) }],
  ['a Map', new Map()],
  ['a bigint', { n: 1n }],
  ['NaN', { n: Number.NaN }],
  ['Infinity', { n: Number.POSITIVE_INFINITY }],
  ['a symbol', { s: Symbol('s') }],
  ['a cycle', cyclic()],
];

function cyclic(): unknown {
  const o: Record<string, unknown> = {};
  o.self = o;
  return o;
}

describe('devChecks: true', () => {
  it.each(notPlain)('makes tell throw ERR_NOT_PLAIN_DATA for %s', async (_what, body) => {
    const { system, dead } = makeSystem({ devChecks: true });
    const ref = system.spawn(sink) as ActorRef;
    expect(thrown(() => ref.tell('put', body)).code).toBe('ERR_NOT_PLAIN_DATA');
    await settle(system);
    expect(await ref.ask('seen', {})).toBe(0);
    expect(dead).toEqual([]);
  });

  it.each(notPlain)('makes ask reject with ERR_NOT_PLAIN_DATA for %s', async (_what, body) => {
    const { system } = makeSystem({ devChecks: true });
    const ref = system.spawn(sink) as ActorRef;
    expect((await rejection(ref.ask('echo', body))).code).toBe('ERR_NOT_PLAIN_DATA');
  });

  it('lets plain data through', async () => {
    const { system } = makeSystem({ devChecks: true });
    const ref = system.spawn(sink) as ActorRef;
    ref.tell('put', { a: [1, 'two', null, true, { b: undefined }] });
    ref.tell('put', Object.create(null));
    expect(await ref.ask('seen', {})).toBe(2);
  });

  it('checks timer bodies too', async () => {
    const { system } = makeSystem({ devChecks: true });
    const ref = system.spawn(sink);
    expect(await ref.ask('timer', {})).toBe('ERR_NOT_PLAIN_DATA');
  });
});

describe('devChecks: false', () => {
  it('lets a function, a Date or a class instance through to the handler', async () => {
    const { system } = makeSystem({ devChecks: false });
    const ref = system.spawn(sink) as ActorRef;
    ref.tell('put', { f: () => 1 });
    ref.tell('put', { p: new Point(1, 2) });
    expect(await ref.ask('echo', new Date(0))).toBe('a Date');
    expect(await ref.ask('seen', {})).toBe(2);
    expect(await ref.ask('timer', {})).toBe('started');
  });
});
