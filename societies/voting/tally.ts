import { invalidOption } from '../../protocols/index.js';

/** One voter's ballot. */
export interface Ballot {
  /** Who cast it; each voter at most once. */
  readonly voter: string;
  /** The choice; `null` or absent: an abstention. Ranked choice reads `ranking` (or this, alone). */
  readonly choice?: string | null;
  /** For ranked choice: choices in order of preference, best first, each at most once. */
  readonly ranking?: readonly string[];
  /** How much the ballot counts. Defaults to 1. */
  readonly weight?: number;
}

/**
 * How a winner is found among the votes cast (abstentions are not cast):
 * - `plurality`: the most votes (self-consistency: the most common answer);
 * - `majority`: more than half of the votes cast;
 * - `supermajority`: at least `threshold` (above 0.5, at most 1) of the votes cast;
 * - `unanimity`: every vote cast for one choice;
 * - `ranked-choice`: instant runoff: the choice with the fewest first preferences is eliminated and
 *   its ballots go to their next preference, until one has more than half of the ballots still in play.
 */
export type VotingRule =
  | { readonly kind: 'plurality' }
  | { readonly kind: 'majority' }
  | { readonly kind: 'supermajority'; readonly threshold: number }
  | { readonly kind: 'unanimity' }
  | { readonly kind: 'ranked-choice' };

/**
 * How a tie is settled, always the same way for the same ballots: `lexical` (default) prefers the
 * choice that sorts first; a list prefers the choice that comes first in it (choices not in it come
 * after, lexically); `undecided` decides nothing on a tie (`reason: 'tie'`). Ranked choice also uses it
 * to pick which of the last-placed choices is eliminated (the least preferred; `undecided` eliminates
 * as `lexical` would).
 */
export type TieRule = 'lexical' | 'undecided' | { readonly order: readonly string[] };

/** Options of {@link tally}. */
export interface TallyOptions {
  readonly rule: VotingRule;
  /**
   * The share (0 to 1) of the eligible weight that must be present (voting or abstaining) for any
   * decision. No quorum by default.
   */
  readonly quorum?: number;
  /** The total weight of everyone entitled to vote. Defaults to the weight of the ballots given. */
  readonly eligible?: number;
  readonly tie?: TieRule;
}

/** Why a vote was or was not decided. */
export type VoteReason =
  | 'won'
  | 'tie'
  | 'no-majority'
  | 'no-supermajority'
  | 'dissent'
  | 'no-quorum'
  | 'no-votes';

/** The result of a vote, with its tally. */
export interface VoteResult {
  readonly decided: boolean;
  /** The winning choice, when decided. */
  readonly winner?: string;
  readonly reason: VoteReason;
  /** Weight per choice (for ranked choice, of first preferences), choices in lexical order. */
  readonly tally: Readonly<Record<string, number>>;
  /** Ranked choice: the tally of each round, and the choice eliminated after each round but the last. */
  readonly rounds?: readonly Readonly<Record<string, number>>[];
  readonly eliminated?: readonly string[];
  /** Weight of the votes cast (abstentions excluded). */
  readonly cast: number;
  readonly abstained: number;
  readonly eligible: number;
}

/** Defaults of {@link tally}'s options. */
export const tallyDefaults = { tie: 'lexical' } as const satisfies Partial<TallyOptions>;

/**
 * Counts ballots by a rule: a pure function, the same result for the same ballots in any order.
 * @throws TroupeError `ERR_INVALID_OPTION` naming the part: a bad rule, threshold, quorum or tie rule,
 * a ballot without a voter, a voter twice, a negative or non-finite weight, a ranking with a repeat.
 * @example
 * ```ts
 * const result = tally([{ voter: 'a', choice: 'yes' }, { voter: 'b', choice: 'no', weight: 2 }], {
 *   rule: { kind: 'majority' },
 * }); // { decided: true, winner: 'no', reason: 'won', tally: { no: 2, yes: 1 }, ... }
 * ```
 */
export function tally(ballots: readonly Ballot[], options: TallyOptions): VoteResult {
  const { rule, quorum, tie = tallyDefaults.tie } = checkOptions(options);
  const checked = checkBallots(ballots);
  let present = 0;
  let cast = 0;
  for (const b of checked) {
    present += b.weight;
    if (b.ranking.length > 0) cast += b.weight;
  }
  const eligible = options.eligible ?? present;
  const base = { cast, abstained: present - cast, eligible };
  const firsts = count(checked, () => true);
  if (quorum !== undefined && present < quorum * eligible)
    return { decided: false, reason: 'no-quorum', tally: firsts, ...base };
  if (cast === 0) return { decided: false, reason: 'no-votes', tally: firsts, ...base };
  if (rule.kind === 'ranked-choice') return instantRunoff(checked, tie, firsts, base);
  const leaders = top(firsts);
  const best = firsts[leaders[0]!]!;
  switch (rule.kind) {
    case 'plurality': {
      if (leaders.length === 1) return won(leaders[0]!, firsts, base);
      if (tie === 'undecided') return { decided: false, reason: 'tie', tally: firsts, ...base };
      return won(preferred(leaders, tie), firsts, base);
    }
    case 'majority':
      return best * 2 > cast
        ? won(leaders[0]!, firsts, base)
        : { decided: false, reason: 'no-majority', tally: firsts, ...base };
    case 'supermajority':
      return best >= rule.threshold * cast && leaders.length === 1
        ? won(leaders[0]!, firsts, base)
        : { decided: false, reason: 'no-supermajority', tally: firsts, ...base };
    case 'unanimity':
      return Object.keys(firsts).length === 1
        ? won(leaders[0]!, firsts, base)
        : { decided: false, reason: 'dissent', tally: firsts, ...base };
  }
}

interface CheckedBallot {
  readonly voter: string;
  readonly ranking: readonly string[];
  readonly weight: number;
}

type Base = Pick<VoteResult, 'cast' | 'abstained' | 'eligible'>;

function won(winner: string, counts: Record<string, number>, base: Base): VoteResult {
  return { decided: true, winner, reason: 'won', tally: counts, ...base };
}

function instantRunoff(
  ballots: readonly CheckedBallot[],
  tie: TieRule,
  firsts: Record<string, number>,
  base: Base,
): VoteResult {
  const out = new Set<string>();
  const rounds: Record<string, number>[] = [];
  const eliminated: string[] = [];
  const ranked = new Set(ballots.flatMap((b) => b.ranking));
  for (;;) {
    const round = count(ballots, (choice) => !out.has(choice));
    rounds.push(round);
    const choices = Object.keys(round);
    // A choice nobody ranks first has the fewest votes of all: it is out before any other, and
    // receives no transfers.
    for (const choice of ranked) if (!Object.hasOwn(round, choice)) out.add(choice);
    const inPlay = choices.reduce((sum, c) => sum + round[c]!, 0);
    const result = { tally: firsts, rounds, eliminated, ...base };
    if (choices.length === 0) return { decided: false, reason: 'no-votes', ...result };
    const leaders = top(round);
    if (round[leaders[0]!]! * 2 > inPlay)
      return { decided: true, winner: leaders[0]!, reason: 'won', ...result };
    if (leaders.length === choices.length) {
      // Every choice left has the same count: no elimination can separate them.
      if (tie === 'undecided') return { decided: false, reason: 'tie', ...result };
      return { decided: true, winner: preferred(leaders, tie), reason: 'won', ...result };
    }
    const low = Math.min(...choices.map((c) => round[c]!));
    const last = choices.filter((c) => round[c] === low);
    const loser = leastPreferred(last, tie === 'undecided' ? 'lexical' : tie);
    out.add(loser);
    eliminated.push(loser);
  }
}

/** Weight per choice: each ballot counts for its best choice that `inPlay` keeps; choices sorted. */
function count(
  ballots: readonly CheckedBallot[],
  inPlay: (choice: string) => boolean,
): Record<string, number> {
  const counts = new Map<string, number>();
  for (const b of ballots) {
    const choice = b.ranking.find(inPlay);
    if (choice !== undefined) counts.set(choice, (counts.get(choice) ?? 0) + b.weight);
  }
  const sorted: Record<string, number> = {};
  for (const choice of [...counts.keys()].sort(compareLexical)) {
    Object.defineProperty(sorted, choice, { value: counts.get(choice)!, enumerable: true, writable: true });
  }
  return sorted;
}

/** The choices with the highest count, in lexical order. */
function top(counts: Record<string, number>): string[] {
  const choices = Object.keys(counts);
  const best = Math.max(...choices.map((c) => counts[c]!));
  return choices.filter((c) => counts[c] === best);
}

function compareLexical(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function rankOf(choice: string, tie: Exclude<TieRule, 'undecided'>): [number, string] {
  if (tie === 'lexical') return [0, choice];
  const at = tie.order.indexOf(choice);
  return [at < 0 ? tie.order.length : at, choice];
}

function compareByTie(a: string, b: string, tie: Exclude<TieRule, 'undecided'>): number {
  const [ra, ca] = rankOf(a, tie);
  const [rb, cb] = rankOf(b, tie);
  return ra - rb || compareLexical(ca, cb);
}

function preferred(choices: readonly string[], tie: Exclude<TieRule, 'undecided'>): string {
  return [...choices].sort((a, b) => compareByTie(a, b, tie))[0]!;
}

function leastPreferred(choices: readonly string[], tie: Exclude<TieRule, 'undecided'>): string {
  return [...choices].sort((a, b) => compareByTie(a, b, tie)).at(-1)!;
}

function checkOptions(options: TallyOptions): TallyOptions {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const { rule, quorum, eligible, tie } = options;
  const kinds = ['plurality', 'majority', 'supermajority', 'unanimity', 'ranked-choice'];
  if (typeof rule !== 'object' || rule === null || !kinds.includes(rule.kind))
    throw invalidOption('rule', `must be one of ${kinds.join(', ')}`, rule);
  if (rule.kind === 'supermajority' && !(rule.threshold > 0.5 && rule.threshold <= 1))
    throw invalidOption('rule.threshold', 'must be above 0.5 and at most 1', rule.threshold);
  if (quorum !== undefined && !(quorum > 0 && quorum <= 1))
    throw invalidOption('quorum', 'must be above 0 and at most 1', quorum);
  if (eligible !== undefined && !(Number.isFinite(eligible) && eligible >= 0))
    throw invalidOption('eligible', 'must be a non-negative number', eligible);
  if (
    tie !== undefined &&
    tie !== 'lexical' &&
    tie !== 'undecided' &&
    !(
      typeof tie === 'object' &&
      tie !== null &&
      Array.isArray(tie.order) &&
      tie.order.every((c) => typeof c === 'string')
    )
  )
    throw invalidOption('tie', "must be 'lexical', 'undecided' or { order: string[] }", tie);
  return options;
}

function checkBallots(ballots: readonly Ballot[]): CheckedBallot[] {
  if (!Array.isArray(ballots)) throw invalidOption('ballots', 'must be an array', ballots);
  const voters = new Set<string>();
  return ballots.map((b, i) => {
    if (typeof b?.voter !== 'string' || b.voter === '')
      throw invalidOption(`ballots[${i}].voter`, 'must be a non-empty string', b?.voter);
    if (voters.has(b.voter)) throw invalidOption(`ballots[${i}].voter`, `${b.voter} voted twice`, b.voter);
    voters.add(b.voter);
    const weight = b.weight ?? 1;
    if (!(Number.isFinite(weight) && weight >= 0))
      throw invalidOption(`ballots[${i}].weight`, 'must be a non-negative number', weight);
    const ranking = b.ranking ?? (typeof b.choice === 'string' ? [b.choice] : []);
    if (!Array.isArray(ranking) || ranking.some((c) => typeof c !== 'string'))
      throw invalidOption(`ballots[${i}].ranking`, 'must be a list of choices', ranking);
    if (new Set(ranking).size !== ranking.length)
      throw invalidOption(`ballots[${i}].ranking`, 'names a choice twice', ranking);
    return { voter: b.voter, ranking, weight };
  });
}
