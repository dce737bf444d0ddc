/**
 * Voting: the tally by each rule, ties, abstentions, quorum, weights and instant runoff; a fast-check
 * property that the tally equals a plain reference tally (and that the property catches a broken
 * one); `vote()` asking scripted agents and protocol voters, one crashing and one silent.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  asAgent,
  type Ballot,
  behavior,
  type SocietyVoteEvent,
  type TallyOptions,
  TroupeError,
  tally,
  type VoteResult,
  VoterProtocol,
  type VotingRule,
  vote,
} from '../../index.js';
import { propertySeed, seeded } from '../harness/fast-check.js';
import { scriptedAgent, testSystem } from './helpers.js';

const b = (voter: string, choice: string | null, weight = 1): Ballot => ({ voter, choice, weight });

describe('tally', () => {
  it('counts by each rule, with weights and abstentions', () => {
    const ballots = [b('a', 'x'), b('b', 'y'), b('c', 'x'), b('d', null), b('e', 'z', 0.5)];
    expect(tally(ballots, { rule: { kind: 'plurality' } })).toEqual({
      decided: true,
      winner: 'x',
      reason: 'won',
      tally: { x: 2, y: 1, z: 0.5 },
      cast: 3.5,
      abstained: 1,
      eligible: 4.5,
    });
    expect(tally(ballots, { rule: { kind: 'majority' } })).toMatchObject({ decided: true, winner: 'x' });
    expect(tally([...ballots, b('f', 'y', 1.5)], { rule: { kind: 'majority' } })).toMatchObject({
      decided: false,
      reason: 'no-majority',
      tally: { x: 2, y: 2.5, z: 0.5 },
    });
    expect(tally(ballots, { rule: { kind: 'supermajority', threshold: 2 / 3 } })).toMatchObject({
      decided: false,
      reason: 'no-supermajority',
    });
    expect(
      tally([b('a', 'x', 3), b('b', 'y')], { rule: { kind: 'supermajority', threshold: 0.75 } }),
    ).toMatchObject({ decided: true, winner: 'x' });
    expect(tally(ballots, { rule: { kind: 'unanimity' } })).toMatchObject({
      decided: false,
      reason: 'dissent',
    });
    expect(tally([b('a', 'x'), b('b', null), b('c', 'x')], { rule: { kind: 'unanimity' } })).toMatchObject({
      decided: true,
      winner: 'x',
      abstained: 1,
    });
    expect(tally([b('a', null)], { rule: { kind: 'majority' } })).toMatchObject({
      decided: false,
      reason: 'no-votes',
    });
  });

  it('breaks ties by a deterministic rule', () => {
    const tied = [b('a', 'pear'), b('b', 'apple')];
    expect(tally(tied, { rule: { kind: 'plurality' } }).winner).toBe('apple');
    expect(tally([...tied].reverse(), { rule: { kind: 'plurality' } }).winner).toBe('apple');
    expect(tally(tied, { rule: { kind: 'plurality' }, tie: { order: ['pear'] } }).winner).toBe('pear');
    expect(tally(tied, { rule: { kind: 'plurality' }, tie: 'undecided' })).toMatchObject({
      decided: false,
      reason: 'tie',
    });
  });

  it('needs its quorum of the eligible weight present, abstentions included', () => {
    const ballots = [b('a', 'x'), b('b', null)];
    expect(tally(ballots, { rule: { kind: 'majority' }, quorum: 0.5, eligible: 5 })).toMatchObject({
      decided: false,
      reason: 'no-quorum',
    });
    expect(tally(ballots, { rule: { kind: 'majority' }, quorum: 0.4, eligible: 5 })).toMatchObject({
      decided: true,
      winner: 'x',
    });
  });

  it('runs off ranked choices, moving eliminated ballots to their next preference', () => {
    const r = (voter: string, ...ranking: string[]): Ballot => ({ voter, ranking });
    const ballots = [
      r('1', 'a', 'c'),
      r('2', 'a', 'c'),
      r('3', 'b', 'c'),
      r('4', 'b', 'a'),
      r('5', 'c', 'b'),
      r('6', 'c', 'b'),
      r('7', 'c'),
      r('8', 'd', 'b'),
    ];
    const result = tally(ballots, { rule: { kind: 'ranked-choice' } });
    // d out (1); its ballot goes to b: a 2, b 3, c 3; a out: its ballots go to c (5 of 8).
    expect(result).toMatchObject({
      decided: true,
      winner: 'c',
      tally: { a: 2, b: 2, c: 3, d: 1 },
      rounds: [
        { a: 2, b: 2, c: 3, d: 1 },
        { a: 2, b: 3, c: 3 },
        { b: 3, c: 5 },
      ],
      eliminated: ['d', 'a'],
    });
  });

  it('puts a choice nobody ranks first out at once: it takes no transfers', () => {
    const r = (voter: string, ...ranking: string[]): Ballot => ({ voter, ranking });
    const ballots = [
      ...['1', '2', '3'].map((v) => r(v, 'q')),
      ...['4', '5', '6'].map((v) => r(v, 'r')),
      r('7', 's', 'p'),
      r('8', 's', 'p'),
      r('9', 't', 'p'),
      r('10', 't', 'p'),
    ];
    // Were p kept in play, t's and s's ballots would go to it and p would win 4 to 3.
    expect(tally(ballots, { rule: { kind: 'ranked-choice' } })).toMatchObject({
      decided: true,
      winner: 'q',
      eliminated: ['t', 's'],
      rounds: [
        { q: 3, r: 3, s: 2, t: 2 },
        { q: 3, r: 3, s: 2 },
        { q: 3, r: 3 },
      ],
    });
  });

  it('refuses bad input naming the part', () => {
    const bad: [readonly Ballot[], TallyOptions, string][] = [
      [[], { rule: { kind: 'nope' } as unknown as VotingRule }, 'rule'],
      [[], { rule: { kind: 'supermajority', threshold: 0.5 } }, 'rule.threshold'],
      [[], { rule: { kind: 'majority' }, quorum: 0 }, 'quorum'],
      [[b('a', 'x'), b('a', 'y')], { rule: { kind: 'majority' } }, 'ballots[1].voter'],
      [[b('a', 'x', -1)], { rule: { kind: 'majority' } }, 'ballots[0].weight'],
      [[{ voter: 'a', ranking: ['x', 'x'] }], { rule: { kind: 'ranked-choice' } }, 'ballots[0].ranking'],
    ];
    for (const [ballots, options, part] of bad) {
      const thrown = (() => {
        try {
          tally(ballots, options);
        } catch (error) {
          return error;
        }
      })();
      expect(TroupeError.is(thrown, 'ERR_INVALID_OPTION'), part).toBe(true);
      expect((thrown as TroupeError).details?.option).toBe(part);
    }
  });
});

/** A plain reference tally, written independently of the library's: for the non-ranked rules. */
function referenceTally(
  ballots: readonly Ballot[],
  rule: VotingRule,
): Pick<VoteResult, 'decided' | 'winner'> {
  const counts: Record<string, number> = {};
  let cast = 0;
  for (const ballot of ballots) {
    if (ballot.choice == null) continue;
    counts[ballot.choice] = (counts[ballot.choice] ?? 0) + (ballot.weight ?? 1);
    cast += ballot.weight ?? 1;
  }
  if (cast === 0) return { decided: false };
  const ordered = Object.entries(counts).sort(([a, x], [c, y]) => y - x || a.localeCompare(c));
  const [winner, best] = ordered[0]!;
  if (rule.kind === 'plurality') return { decided: true, winner };
  if (rule.kind === 'majority') return best > cast / 2 ? { decided: true, winner } : { decided: false };
  if (rule.kind === 'supermajority')
    return best >= rule.threshold * cast ? { decided: true, winner } : { decided: false };
  if (rule.kind === 'unanimity') return ordered.length === 1 ? { decided: true, winner } : { decided: false };
  throw new Error('not a plain rule');
}

/** A plain reference instant runoff: lexical tie rule (the last-sorting of the lowest goes out). */
function referenceRunoff(ballots: readonly Ballot[]): Pick<VoteResult, 'decided' | 'winner'> {
  let alive = new Set(ballots.flatMap((ballot) => ballot.ranking ?? []));
  for (;;) {
    const counts = new Map<string, number>();
    let inPlay = 0;
    for (const ballot of ballots) {
      const top = (ballot.ranking ?? []).find((c) => alive.has(c));
      if (top === undefined) continue;
      counts.set(top, (counts.get(top) ?? 0) + (ballot.weight ?? 1));
      inPlay += ballot.weight ?? 1;
    }
    if (inPlay === 0) return { decided: false };
    const ordered = [...counts].sort(([a, x], [c, y]) => y - x || (a < c ? -1 : 1));
    const [leader, most] = ordered[0]!;
    if (most * 2 > inPlay) return { decided: true, winner: leader };
    if (ordered.every(([, n]) => n === most)) return { decided: true, winner: leader };
    // Choices with no first preference are out (they are the lowest), and so is the last-sorting lowest.
    const least = ordered.at(-1)![1];
    const loser = ordered.filter(([, n]) => n === least).at(-1)![0];
    alive = new Set(ordered.map(([c]) => c).filter((c) => c !== loser));
  }
}

const rankedArb = fc
  .uniqueArray(
    fc.record({
      voter: fc.string({ minLength: 1, maxLength: 3 }),
      ranking: fc.uniqueArray(fc.constantFrom('p', 'q', 'r', 's'), { maxLength: 4 }),
      weight: fc.integer({ min: 1, max: 4 }),
    }),
    { selector: (ballot) => ballot.voter, maxLength: 12 },
  )
  .map((ballots) => ballots as Ballot[]);

const ballotsArb = fc
  .uniqueArray(
    fc.record({
      voter: fc.string({ minLength: 1, maxLength: 3 }),
      choice: fc.option(fc.constantFrom('p', 'q', 'r', 's'), { nil: null }),
      weight: fc.integer({ min: 0, max: 5 }),
    }),
    { selector: (ballot) => ballot.voter, maxLength: 12 },
  )
  .map((ballots) => ballots as Ballot[]);
const ruleArb: fc.Arbitrary<VotingRule> = fc.oneof(
  fc.constant({ kind: 'plurality' } as const),
  fc.constant({ kind: 'majority' } as const),
  fc.constantFrom(0.6, 2 / 3, 0.75, 1).map((threshold) => ({ kind: 'supermajority', threshold }) as const),
  fc.constant({ kind: 'unanimity' } as const),
);

/** The property: the tally of any ballots by any plain rule equals the reference's. */
const agreesWithReference = (count: typeof tally) =>
  fc.property(ballotsArb, ruleArb, (ballots, rule) => {
    const got = count(ballots, { rule });
    const want = referenceTally(ballots, rule);
    expect({ decided: got.decided, winner: got.winner }).toEqual(want);
  });

describe('tally: property', () => {
  const seed = propertySeed(20261205);

  it('equals a plain reference tally for any ballots and rule', () => {
    fc.assert(agreesWithReference(tally), seeded('tally vs reference', seed, 500));
  });

  it('runs off ranked choices as a plain reference runoff does', () => {
    fc.assert(
      fc.property(rankedArb, (ballots) => {
        const got = tally(ballots, { rule: { kind: 'ranked-choice' } });
        expect({ decided: got.decided, winner: got.winner }).toEqual(referenceRunoff(ballots));
      }),
      seeded('runoff vs reference', seed, 500),
    );
  });

  it('catches a broken tally (one that forgets weights)', () => {
    const broken: typeof tally = (ballots, options) =>
      tally(
        ballots.map((ballot) => ({ ...ballot, weight: 1 })),
        options,
      );
    const run = fc.check(agreesWithReference(broken), { seed, numRuns: 500 });
    expect(run.failed, `seed ${seed}`).toBe(true);
  });

  it('is the same for the ballots in any order', () => {
    fc.assert(
      fc.property(ballotsArb, ruleArb, fc.integer(), (ballots, rule, shift) => {
        const k = ballots.length === 0 ? 0 : Math.abs(shift) % ballots.length;
        const rotated = [...ballots.slice(k), ...ballots.slice(0, k)];
        expect(tally(rotated, { rule })).toEqual(tally(ballots, { rule }));
      }),
      seeded('tally order', seed, 300),
    );
  });
});

describe('vote()', () => {
  it('asks agents and protocol voters with a deadline; a crashed and a silent voter are reported, not waited for', async () => {
    const { system, events } = testSystem();
    const answers = ['4', ' 4. ', 'five'];
    const agents = answers.map((a, i) => asAgent(scriptedAgent(system, `agent${i}`, () => a).ref));
    const crasher = system.spawn(
      behavior({
        protocols: [VoterProtocol],
        handlers: {
          vote: () => {
            throw new Error('crashed mid-round');
          },
        },
      }),
      { name: 'crasher' },
    );
    const silent = system.spawn(
      behavior({ protocols: [VoterProtocol], handlers: { vote: () => new Promise<never>(() => {}) } }),
      { name: 'silent' },
    );
    const heavy = system.spawn(
      behavior({
        protocols: [VoterProtocol],
        handlers: { vote: ({ question }) => ({ choice: question.length > 0 ? '4' : null }) },
      }),
      { name: 'heavy' },
    );
    const outcome = await vote({
      system,
      voters: () => [...agents, crasher, silent, heavy],
      question: 'What is 2 + 2?',
      rule: { kind: 'majority' },
      weights: { [heavy.address]: 2 },
      deadlineMs: 200,
      ballotId: 'sum',
    });
    expect(outcome).toMatchObject({
      decided: true,
      winner: '4',
      tally: { '4': 4, five: 1 },
      eligible: 7,
      cast: 5,
    });
    expect(outcome.missing.map((m) => [m.voter, m.code])).toEqual([
      [crasher.address, 'ERR_ACTOR_CRASHED'],
      [silent.address, 'ERR_ASK_TIMEOUT'],
    ]);
    expect(events.filter((e): e is SocietyVoteEvent => e.type === 'society-vote')).toMatchObject([
      {
        ballotId: 'sum',
        decided: true,
        winner: '4',
        ballots: 4,
        missing: [{ code: 'ERR_ACTOR_CRASHED' }, { code: 'ERR_ASK_TIMEOUT' }],
      },
    ]);
  });

  it('matches agent answers to the choices, refuses others, and counts a quorum of the voters asked', async () => {
    const { system } = testSystem();
    const voters = ['Yes', 'maybe', 'abstain'].map((a, i) =>
      asAgent(scriptedAgent(system, `v${i}`, () => a).ref),
    );
    const outcome = await vote({
      system,
      voters,
      question: 'Ship it?',
      choices: ['yes', 'no'],
      rule: { kind: 'majority' },
      quorum: 0.7,
    });
    expect(outcome.ballots.map((ballot) => ballot.choice)).toEqual(['yes', null]);
    expect(outcome.missing).toMatchObject([{ code: 'ERR_VALIDATION' }]);
    expect(outcome).toMatchObject({ decided: false, reason: 'no-quorum', eligible: 3 });
  });

  it('refuses an empty list of voters and a bad deadline', async () => {
    const { system } = testSystem();
    await expect(
      vote({ system, voters: [], question: 'q', rule: { kind: 'majority' } }),
    ).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      details: { option: 'voters' },
    });
    await expect(
      vote({ system, voters: () => [], question: 'q', rule: { kind: 'majority' } }),
    ).rejects.toMatchObject({
      details: { option: 'voters' },
    });
    const one = asAgent(scriptedAgent(system, 'one', () => 'x').ref);
    await expect(
      vote({ system, voters: [one], question: 'q', rule: { kind: 'majority' }, deadlineMs: 0 }),
    ).rejects.toMatchObject({ details: { option: 'deadlineMs' } });
  });
});
