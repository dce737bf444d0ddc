/**
 * Contract net on protocol contractors and scripted agents: the award by lowest cost, best score or a
 * custom rule; first-price and second-price (Vickrey); a winner that fails or times out hands the
 * task to the next-best bid; a crashed or silent bidder never blocks a round and is reported.
 */
import { describe, expect, it } from 'vitest';
import {
  type ActorRef,
  type ActorSystem,
  asAgent,
  behavior,
  bestScore,
  type ContractNetRoundEvent,
  ContractorProtocol,
  contractNet,
  type Proposal,
} from '../../index.js';
import { scriptedAgent, testSystem } from './helpers.js';

interface Script {
  readonly propose: () => Proposal | Promise<Proposal>;
  readonly award?: (price: number) => unknown;
}

/** A contractor that bids and works as scripted; records the prices it was awarded at. */
function contractor(system: ActorSystem, name: string, script: Script, awarded: [string, number][] = []) {
  return system.spawn(
    behavior({
      protocols: [ContractorProtocol],
      handlers: {
        propose: () => script.propose(),
        award: async ({ price }) => {
          awarded.push([name, price]);
          return { ok: true as const, result: await script.award?.(price) };
        },
      },
    }),
    { name },
  );
}

const never = () => new Promise<never>(() => {});

describe('contract net', () => {
  it('awards the lowest cost at first price, or at the second-lowest at second price (Vickrey)', async () => {
    const { system, events } = testSystem();
    const awarded: [string, number][] = [];
    const members = [
      contractor(system, 'a', { propose: () => ({ bid: true, cost: 30 }), award: () => 'a did it' }, awarded),
      contractor(system, 'b', { propose: () => ({ bid: true, cost: 10 }), award: () => 'b did it' }, awarded),
      contractor(system, 'c', { propose: () => ({ bid: true, cost: 20 }) }, awarded),
      contractor(system, 'd', { propose: () => ({ bid: false, reason: 'busy' }) }, awarded),
    ];
    const first = await contractNet({ system, members, task: { job: 1 }, round: 'r1' });
    expect(first).toMatchObject({
      round: 'r1',
      status: 'awarded',
      winner: members[1]!.address,
      price: 10,
      result: 'b did it',
      refusals: [{ bidder: members[3]!.address, reason: 'busy' }],
      silent: [],
      failures: [],
    });
    expect(first.bids.map((bid) => bid.cost)).toEqual([10, 20, 30]);
    const second = await contractNet({ system, members, task: { job: 2 }, pricing: 'second-price' });
    expect(second).toMatchObject({ winner: members[1]!.address, price: 20 });
    expect(awarded).toEqual([
      ['b', 10],
      ['b', 20],
    ]);
    expect(events.filter((e): e is ContractNetRoundEvent => e.type === 'contract-net-round')).toMatchObject([
      { round: 'r1', status: 'awarded', winner: members[1]!.address, price: 10, bids: 3, refusals: 1 },
      { status: 'awarded', price: 20 },
    ]);
  });

  it('awards by best score or a custom rule, equal ranks by address', async () => {
    const { system } = testSystem();
    const members = [
      contractor(system, 'a', { propose: () => ({ bid: true, cost: 5, score: 0.4 }) }),
      contractor(system, 'b', { propose: () => ({ bid: true, cost: 50, score: 0.9 }) }),
      contractor(system, 'c', { propose: () => ({ bid: true, cost: 50, score: 0.9 }) }),
    ];
    expect(await contractNet({ system, members, task: 't', award: bestScore() })).toMatchObject({
      winner: members[1]!.address,
    });
    const valuePerCost = {
      name: 'value',
      rank: (bid: { cost: number; score?: number }) => (bid.score ?? 0) / bid.cost,
    };
    expect(await contractNet({ system, members, task: 't', award: valuePerCost })).toMatchObject({
      winner: members[0]!.address,
    });
  });

  it('is not blocked by a crashed or silent bidder, and gives the task to the next-best when the winner fails or times out', async () => {
    const { system, events } = testSystem();
    const awarded: [string, number][] = [];
    const members: ActorRef<typeof ContractorProtocol>[] = [
      contractor(system, 'crashes', {
        propose: () => {
          throw new Error('crashed mid-round');
        },
      }),
      contractor(system, 'silent', { propose: never }),
      contractor(
        system,
        'fails',
        {
          propose: () => ({ bid: true, cost: 1 }),
          award: () => {
            throw new Error('could not do it');
          },
        },
        awarded,
      ),
      contractor(system, 'hangs', { propose: () => ({ bid: true, cost: 2 }), award: never }, awarded),
      contractor(
        system,
        'works',
        { propose: () => ({ bid: true, cost: 3 }), award: (p) => `done for ${p}` },
        awarded,
      ),
    ];
    const outcome = await contractNet({
      system,
      members,
      task: 'x',
      deadlineMs: 150,
      executeTimeoutMs: 150,
      pricing: 'second-price',
    });
    expect(outcome).toMatchObject({
      status: 'awarded',
      winner: members[4]!.address,
      price: 3,
      result: 'done for 3',
    });
    expect(outcome.silent.map((s) => [s.bidder, s.code])).toEqual([
      [members[0]!.address, 'ERR_ACTOR_CRASHED'],
      [members[1]!.address, 'ERR_ASK_TIMEOUT'],
    ]);
    expect(outcome.failures.map((f) => [f.bidder, f.code, f.price])).toEqual([
      [members[2]!.address, 'ERR_ACTOR_CRASHED', 2],
      [members[3]!.address, 'ERR_ASK_TIMEOUT', 3],
    ]);
    expect(awarded.map(([name]) => name)).toEqual(['fails', 'hangs', 'works']);
    expect(events.filter((e) => e.type === 'contract-net-round')).toMatchObject([
      {
        silent: [{ code: 'ERR_ACTOR_CRASHED' }, { code: 'ERR_ASK_TIMEOUT' }],
        failures: [{ code: 'ERR_ACTOR_CRASHED' }, { code: 'ERR_ASK_TIMEOUT' }],
      },
    ]);
  });

  it('ends ERR_CONTRACT_FAILED with no bid, or when every awarded bidder fails', async () => {
    const { system } = testSystem();
    const refuse = contractor(system, 'no', { propose: () => ({ bid: false }) });
    expect(await contractNet({ system, members: [refuse], task: 't' })).toMatchObject({
      status: 'failed',
      error: { code: 'ERR_CONTRACT_FAILED' },
      refusals: [{ bidder: refuse.address }],
    });
    const flaky = contractor(system, 'flaky', { propose: () => ({ bid: true, cost: 1 }), award: never });
    expect(await contractNet({ system, members: [flaky], task: 't', executeTimeoutMs: 50 })).toMatchObject({
      status: 'failed',
      error: { code: 'ERR_CONTRACT_FAILED' },
      failures: [{ code: 'ERR_ASK_TIMEOUT' }],
    });
  });

  it('takes scripted agents as contractors: a number bids, REFUSE refuses, the award runs the task', async () => {
    const { system } = testSystem();
    const bidder = (name: string, bid: string) =>
      scriptedAgent(system, name, (input) =>
        input.startsWith('Call for proposals') ? bid : `${name} finished`,
      );
    const members = [
      asAgent(bidder('cheap', 'I can do it for 12 credits').ref),
      asAgent(bidder('dear', '40').ref),
      asAgent(bidder('busy', 'REFUSE: too busy').ref),
    ];
    const outcome = await contractNet({ system, members, task: { summarise: 'doc-9' } });
    expect(outcome).toMatchObject({ status: 'awarded', price: 12, result: 'cheap finished' });
    expect(outcome.refusals).toHaveLength(1);
  });

  it('refuses bad options naming the part', async () => {
    const { system } = testSystem();
    const one = contractor(system, 'one', { propose: () => ({ bid: false }) });
    const bad: [Record<string, unknown>, string][] = [
      [{ members: [] }, 'members'],
      [{ members: [one], deadlineMs: -1 }, 'deadlineMs'],
      [{ members: [one], pricing: 'dutch' }, 'pricing'],
      [{ members: [one], award: {} }, 'award'],
      [{ members: [one, one] }, 'members'],
    ];
    for (const [options, part] of bad) {
      await expect(
        contractNet({ system, task: 't', ...options } as unknown as Parameters<typeof contractNet>[0]),
        part,
      ).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', details: { option: part } });
    }
    await expect(contractNet({ system, members: () => [], task: 't' })).rejects.toMatchObject({
      details: { option: 'members' },
    });
  });
});
