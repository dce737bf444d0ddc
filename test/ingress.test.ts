import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  behavior,
  createSystem,
  type DeadLetterEvent,
  defineProtocol,
  deliverFromBoundary,
  tell,
} from '../index.js';
import { settle } from '../runtime/testkit/index.js';

const Account = defineProtocol('bank.account', {
  deposit: tell(z.object({ amount: z.number().positive() })),
  balance: ask(z.object({}), z.number()),
  broken: ask(z.object({}), z.number()),
});

const account = behavior({
  protocols: [Account],
  initialState: () => ({ balance: 0 }),
  handlers: {
    deposit: ({ amount }, ctx) => {
      ctx.state.balance += amount;
    },
    balance: (_body, ctx) => ctx.state.balance,
    broken: () => 'not a number' as unknown as number,
  },
});

const SEED = Number(process.env.FC_SEED ?? 42);
let system: ActorSystem;
let deadLetters: DeadLetterEvent[];

function setup(): string {
  system = createSystem({ name: 'bank', node: 'n1' });
  deadLetters = [];
  system.deadLetters$.subscribe((d) => deadLetters.push(d));
  return system.spawn(account, { name: 'acct' }).address;
}

afterEach(async () => {
  await system.close();
});

const envelope = (to: string, type: string, body: unknown, extra: object = {}) => ({
  id: crypto.randomUUID(),
  to,
  type,
  body,
  ...extra,
});

describe('delivery from a process boundary', () => {
  it('delivers a valid tell and answers a valid ask', async () => {
    const to = setup();
    expect(await deliverFromBoundary(system, envelope(to, 'bank.account.deposit', { amount: 5 }))).toEqual({
      ok: true,
    });
    const result = await deliverFromBoundary(
      system,
      envelope(to, 'bank.account.balance', {}, { replyTo: 'troupe://bank/n2/caller', correlationId: 'c1' }),
    );
    expect(result).toEqual({ ok: true, reply: 5 });
    expect(deadLetters).toEqual([]);
  });

  it('validates bodies at the boundary even though local sends are not validated', async () => {
    const to = setup();
    const result = await deliverFromBoundary(system, envelope(to, 'bank.account.deposit', { amount: -3 }));
    expect(result).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION' } });
    expect(deadLetters.map((d) => d.reason)).toEqual(['validation-failed']);
    const local = system.ref(to, Account);
    local.tell('deposit', { amount: -3 });
    expect(await local.ask('balance', {})).toBe(-3);
  });

  it('refuses each kind of bad input with a dead letter and a typed error', async () => {
    const to = setup();
    const cases: [unknown, string, string][] = [
      ['not an object', 'malformed', 'ERR_VALIDATION'],
      [{ id: 1, to, type: 'x' }, 'malformed', 'ERR_VALIDATION'],
      [envelope(to, 'nope', {}), 'unknown-message', 'ERR_UNKNOWN_MESSAGE'],
      [envelope(to, 'constructor.prototype', {}), 'unknown-message', 'ERR_UNKNOWN_MESSAGE'],
      [envelope(to, 'bank.account.__proto__', {}), 'unknown-message', 'ERR_UNKNOWN_MESSAGE'],
      [envelope(to, 'bank.account.withdraw', {}), 'unknown-message', 'ERR_UNKNOWN_MESSAGE'],
      [
        envelope('troupe://bank/n1/ghost', 'bank.account.deposit', { amount: 1 }),
        'no-such-actor',
        'ERR_NO_SUCH_ACTOR',
      ],
      [envelope('http://x', 'bank.account.deposit', { amount: 1 }), 'malformed', 'ERR_INVALID_ADDRESS'],
      [
        envelope(to, 'bank.account.deposit', { amount: 1 }, { deadline: Date.now() - 1 }),
        'expired',
        'ERR_ASK_TIMEOUT',
      ],
      [envelope(to, 'bank.account.balance', {}), 'malformed', 'ERR_VALIDATION'],
    ];
    for (const [data, reason, code] of cases) {
      deadLetters = [];
      const result = await deliverFromBoundary(system, data);
      expect(result, JSON.stringify(data)).toMatchObject({ ok: false, error: { code } });
      expect(
        deadLetters.map((d) => d.reason),
        JSON.stringify(data),
      ).toEqual([reason]);
    }
  });

  it('checks a reply against its schema before it leaves', async () => {
    const to = setup();
    const result = await deliverFromBoundary(
      system,
      envelope(to, 'bank.account.broken', {}, { replyTo: 'troupe://bank/n2/c' }),
    );
    expect(result).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION' } });
  });

  it('survives 10,000 random and malformed payloads, reporting each as a dead letter', async () => {
    const to = setup();
    const types = [
      'bank.account.deposit',
      'bank.account.balance',
      'bank.account',
      'x.y',
      '',
      '.',
      'bank.account.',
    ];
    const payload = fc.oneof(
      fc.anything(),
      fc.jsonValue(),
      fc.record(
        {
          id: fc.oneof(fc.uuid(), fc.anything()),
          to: fc.oneof(fc.constant(to), fc.string(), fc.constant('troupe://bank/n1/acct/x')),
          type: fc.oneof(fc.constantFrom(...types), fc.string()),
          body: fc.oneof(
            fc.anything(),
            fc.record({ amount: fc.oneof(fc.double(), fc.string(), fc.constant(-1)) }),
          ),
          deadline: fc.oneof(fc.constant(undefined), fc.integer(), fc.double()),
        },
        { requiredKeys: [] },
      ),
    );
    const samples = fc.sample(payload, { numRuns: 10_000, seed: SEED });
    let accepted = 0;
    for (const data of samples) {
      const before = deadLetters.length;
      const result = await deliverFromBoundary(system, data);
      if (result.ok) accepted++;
      else expect(deadLetters.length, `seed ${SEED}: ${String(result.error.message)}`).toBe(before + 1);
    }
    expect(deadLetters.length + accepted).toBe(10_000);
    await settle(system);
    const local = system.ref(to, Account);
    local.tell('deposit', { amount: 1 });
    expect(typeof (await local.ask('balance', {}))).toBe('number');
  }, 60_000);
});
