import { z } from 'zod';
import { ask, defineProtocol, invalidOption, TroupeError } from '../../protocols/index.js';
import type { ActorSystem } from '../../runtime/index.js';
import {
  checkMembers,
  type FailureReport,
  failureOf,
  isAgentMember,
  type Member,
  type Members,
  memberAddress,
  resolveMembers,
  runAgent,
} from '../members.js';
import { type Ballot, type TallyOptions, tally, type VoteResult } from './tally.js';

/**
 * What a voter speaks: `vote` asks for its ballot on a question (a choice, a ranking, or `null` to
 * abstain).
 */
export const VoterProtocol = defineProtocol('troupe.society.voter', {
  vote: ask(
    z.object({
      /** The vote's id: the same for every voter of one vote. */
      ballotId: z.string().min(1),
      question: z.string(),
      /** The choices offered, if the vote has a fixed list. */
      choices: z.array(z.string()).optional(),
    }),
    z.object({
      choice: z.string().nullable().optional(),
      ranking: z.array(z.string()).optional(),
    }),
  ),
});

/** Options of {@link vote}. */
export interface VoteOptions extends Omit<TallyOptions, 'eligible'> {
  /** The system whose clock, random source and event stream the vote uses. */
  readonly system: ActorSystem;
  /** Who votes: refs speaking {@link VoterProtocol}, or agents (`asAgent(ref)`). */
  readonly voters: Members<Member<typeof VoterProtocol>>;
  readonly question: string;
  /**
   * The choices offered. With a list, a ballot for anything else is refused (`ERR_VALIDATION`, in
   * `missing`), and an agent's answer is matched to a choice case-insensitively.
   */
  readonly choices?: readonly string[];
  /** How long voters have, from the start. Defaults to 10 s. */
  readonly deadlineMs?: number;
  /** The weight of each voter by address. Defaults to 1 each. */
  readonly weights?: Readonly<Record<string, number>> | ((voter: string) => number);
  /**
   * Turns an agent's answer into a ballot. Defaults to: the trimmed text is the choice (one of
   * `choices` when given, matched case-insensitively; `ranked-choice` reads a list separated by
   * commas, `>` or new lines); `abstain` abstains.
   */
  readonly readAnswer?: (text: string) => Pick<Ballot, 'choice' | 'ranking'>;
  /** The vote's id in events and for voters. Defaults to a random one from the system's source. */
  readonly ballotId?: string;
}

/** The outcome of {@link vote}: the result with its tally, the ballots, and who did not vote. */
export interface VoteOutcome extends VoteResult {
  readonly ballotId: string;
  readonly ballots: readonly Ballot[];
  /** Voters whose ballot did not come (timed out, crashed, refused): each with the error's code. */
  readonly missing: readonly (FailureReport & { readonly voter: string })[];
}

/** Defaults of {@link vote}'s options. */
export const voteDefaults = { deadlineMs: 10_000 } as const;

/**
 * Asks every voter for a ballot with a deadline, then counts them with {@link tally}. A voter that
 * times out, crashes or sends an invalid ballot never blocks the vote: it is reported in `missing`
 * and counts as absent (which a quorum sees). The outcome is also a `society-vote` event.
 * @throws TroupeError `ERR_INVALID_OPTION` naming the part (no voters, a bad rule, deadline or weight).
 * @example
 * ```ts
 * const outcome = await vote({
 *   system,
 *   voters: [asAgent(alice), asAgent(bob), asAgent(carol)],
 *   question: 'What is 2 + 2? Answer with a number.',
 *   rule: { kind: 'plurality' },
 *   deadlineMs: 5000,
 * });
 * if (outcome.decided) console.log(outcome.winner, outcome.tally);
 * ```
 */
export async function vote(options: VoteOptions): Promise<VoteOutcome> {
  const { system, question, choices, rule, quorum, tie } = options;
  if (typeof system?.publish !== 'function') throw invalidOption('system', 'must be an actor system', system);
  if (typeof question !== 'string') throw invalidOption('question', 'must be a string', question);
  checkMembers(options.voters, 'voters');
  const deadlineMs = options.deadlineMs ?? voteDefaults.deadlineMs;
  if (!(deadlineMs > 0)) throw invalidOption('deadlineMs', 'must be a positive number', deadlineMs);
  if (choices !== undefined && (!Array.isArray(choices) || choices.length === 0))
    throw invalidOption('choices', 'must be a non-empty list when given', choices);
  // The rule, quorum and tie rule are checked before anyone is asked.
  tally([], { rule, ...(quorum === undefined ? {} : { quorum }), ...(tie === undefined ? {} : { tie }) });
  const voters = await resolveMembers(options.voters, 'voters');
  const weightOf = (voter: string): number => {
    const { weights } = options;
    const w =
      weights === undefined ? 1 : typeof weights === 'function' ? weights(voter) : (weights[voter] ?? 1);
    if (!(Number.isFinite(w) && w >= 0)) throw invalidOption('weights', `gave ${w} for ${voter}`, w);
    return w;
  };
  const ballotId = options.ballotId ?? `vote-${system.random().toString(36).slice(2, 10)}`;
  const readAnswer = options.readAnswer ?? defaultReader(rule.kind === 'ranked-choice', choices);
  const asked = voters.map(async (member) => {
    const voter = memberAddress(member);
    const weight = weightOf(voter);
    try {
      let answer: {
        readonly choice?: string | null | undefined;
        readonly ranking?: readonly string[] | undefined;
      };
      if (isAgentMember(member)) {
        const prompt =
          choices === undefined ? question : `${question}\nAnswer with one of: ${choices.join(', ')}.`;
        const { text } = await runAgent(member, prompt, { timeoutMs: deadlineMs, runId: `${ballotId}` });
        answer = readAnswer(text);
      } else {
        answer = await member.ask(
          'vote',
          { ballotId, question, ...(choices === undefined ? {} : { choices: [...choices] }) },
          { timeoutMs: deadlineMs },
        );
      }
      checkAgainstChoices(answer, choices, voter);
      const ballot: Ballot = {
        voter,
        weight,
        ...(answer.choice === undefined ? {} : { choice: answer.choice }),
        ...(answer.ranking === undefined ? {} : { ranking: answer.ranking }),
      };
      return { ok: true as const, ballot, weight };
    } catch (error) {
      return { ok: false as const, missing: { voter, ...failureOf(error) }, weight };
    }
  });
  const settled = await Promise.all(asked);
  const ballots: Ballot[] = [];
  const missing: VoteOutcome['missing'][number][] = [];
  let eligible = 0;
  for (const s of settled) {
    eligible += s.weight;
    if (s.ok) ballots.push(s.ballot);
    else missing.push(s.missing);
  }
  const result = tally(ballots, {
    rule,
    eligible,
    ...(quorum === undefined ? {} : { quorum }),
    ...(tie === undefined ? {} : { tie }),
  });
  system.publish({
    type: 'society-vote',
    ballotId,
    decided: result.decided,
    reason: result.reason,
    ...(result.winner === undefined ? {} : { winner: result.winner }),
    ballots: ballots.length,
    missing,
  });
  return { ...result, ballotId, ballots, missing };
}

function checkAgainstChoices(
  answer: { readonly choice?: string | null | undefined; readonly ranking?: readonly string[] | undefined },
  choices: readonly string[] | undefined,
  voter: string,
): void {
  if (choices === undefined) return;
  const named = [...(answer.ranking ?? []), ...(typeof answer.choice === 'string' ? [answer.choice] : [])];
  const unknown = named.filter((c) => !choices.includes(c));
  if (unknown.length > 0)
    throw new TroupeError(
      'ERR_VALIDATION',
      `${voter} voted for ${unknown.join(', ')}, not one of the choices`,
      {
        details: { voter, unknown, choices },
      },
    );
}

function defaultReader(
  ranked: boolean,
  choices: readonly string[] | undefined,
): (text: string) => Pick<Ballot, 'choice' | 'ranking'> {
  const match = (raw: string): string => {
    const text = raw.trim().replace(/[.!]+$/, '');
    return choices?.find((c) => c.toLowerCase() === text.toLowerCase()) ?? text;
  };
  return (text) => {
    if (/^\s*abstain\.?\s*$/i.test(text)) return { choice: null };
    if (ranked)
      return {
        ranking: text
          .split(/,|>|\n/)
          .map(match)
          .filter((c) => c !== ''),
      };
    return { choice: match(text) };
  };
}
