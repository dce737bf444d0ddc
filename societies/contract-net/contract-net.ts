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

const bidSchema = z.discriminatedUnion('bid', [
  z.object({
    bid: z.literal(true),
    /** What the contractor asks to be paid (or the cost it estimates). */
    cost: z.number().finite(),
    /** A quality the manager may score by (higher is better). */
    score: z.number().finite().optional(),
    note: z.string().optional(),
  }),
  z.object({ bid: z.literal(false), reason: z.string().optional() }),
]);

/**
 * What a contractor speaks: `propose` is the call for proposals (bid or refuse, before the deadline);
 * `award` gives it the task at a price, and it answers with the result or a failure.
 */
export const ContractorProtocol = defineProtocol('troupe.society.contractor', {
  propose: ask(
    z.object({
      round: z.string().min(1),
      task: z.unknown(),
      /** Epoch ms (the manager's wall clock) after which a bid is not read. */
      deadline: z.number(),
    }),
    bidSchema,
  ),
  award: ask(
    z.object({ round: z.string().min(1), task: z.unknown(), price: z.number() }),
    z.discriminatedUnion('ok', [
      z.object({ ok: z.literal(true), result: z.unknown() }),
      z.object({ ok: z.literal(false), error: z.object({ code: z.string(), message: z.string() }) }),
    ]),
  ),
});

/** A contractor's answer to a call for proposals. */
export type Proposal = z.infer<typeof bidSchema>;

/** A bid as the manager ranks it. */
export interface Bid {
  readonly bidder: string;
  readonly cost: number;
  readonly score?: number;
  readonly note?: string;
}

/**
 * How bids are ranked: the bid with the highest `rank(bid)` wins; equal ranks go to the bidder whose
 * address sorts first, so the same bids always give the same order. See {@link lowestCost},
 * {@link bestScore}, or give your own.
 */
export interface AwardRule {
  readonly name: string;
  readonly rank: (bid: Bid) => number;
}

/** Awards to the lowest cost. The default. */
export function lowestCost(): AwardRule {
  return { name: 'lowest-cost', rank: (bid) => -bid.cost };
}

/** Awards to the best score (a bid without one ranks last). */
export function bestScore(): AwardRule {
  return { name: 'best-score', rank: (bid) => bid.score ?? Number.NEGATIVE_INFINITY };
}

/** Options of {@link contractNet}. */
export interface ContractNetOptions {
  /** The system whose clock, random source and event stream the round uses. */
  readonly system: ActorSystem;
  /** Who is called: refs speaking {@link ContractorProtocol}, or agents (`asAgent(ref)`). */
  readonly members: Members<Member<typeof ContractorProtocol>>;
  /** The task: plain data sent with the call and the award. */
  readonly task: unknown;
  /** How long contractors have to bid. Defaults to 5 s. */
  readonly deadlineMs?: number;
  /** How long the awarded contractor has to deliver before the next-best bid gets the task. Defaults to 30 s. */
  readonly executeTimeoutMs?: number;
  /** How bids are ranked. Defaults to {@link lowestCost}. */
  readonly award?: AwardRule;
  /**
   * The price paid: `first-price` (default), the winner's own cost; `second-price` (Vickrey), the
   * cost of the next-ranked bid (its own when it is the last), so bidding one's true cost is best.
   */
  readonly pricing?: 'first-price' | 'second-price';
  /** Bids awarded in turn at most (the winner, then the next-best ...). Defaults to every bid. */
  readonly maxAwards?: number;
  /** The round's id. Defaults to a random one from the system's source. */
  readonly round?: string;
  /**
   * For agents: the prompt of the call (defaults to the task as JSON and a request for a cost, or
   * `REFUSE`) and of the award (defaults to the task as JSON).
   */
  readonly prompts?: {
    readonly propose?: (task: unknown) => string;
    readonly award?: (task: unknown) => string;
  };
}

/** Defaults of {@link contractNet}'s options. */
export const contractNetDefaults = {
  deadlineMs: 5000,
  executeTimeoutMs: 30_000,
  pricing: 'first-price',
} as const;

/** The outcome of a round: who got the task, at what price, its result, and what happened to everyone. */
export interface ContractNetOutcome {
  readonly round: string;
  readonly status: 'awarded' | 'failed';
  readonly winner?: string;
  readonly price?: number;
  readonly result?: unknown;
  /** `ERR_CONTRACT_FAILED` when nobody bid or every awarded bidder failed. */
  readonly error?: FailureReport;
  /** The bids, best first. */
  readonly bids: readonly Bid[];
  readonly refusals: readonly { readonly bidder: string; readonly reason?: string }[];
  /** Bidders that did not answer the call in time, crashed, or answered something invalid. */
  readonly silent: readonly (FailureReport & { readonly bidder: string })[];
  /** Awarded bidders that failed or timed out, in the order the task went to them. */
  readonly failures: readonly (FailureReport & { readonly bidder: string; readonly price: number })[];
}

/**
 * Runs one round of the contract net: a call for proposals to every member with a deadline, bids
 * ranked by the award rule, and the task awarded to the best; if the winner fails or times out, to
 * the next-best, and so on. A crashed or silent bidder never blocks the round: its call ends at the
 * deadline and it is reported in `silent`. Sealed bids: no bidder sees another's. The outcome is
 * also a `contract-net-round` event.
 * @throws TroupeError `ERR_INVALID_OPTION` naming the part (no members, a bad deadline or rule).
 * @example
 * ```ts
 * const outcome = await contractNet({
 *   system,
 *   members: [carrierA, carrierB, carrierC],
 *   task: { deliver: 'parcel-7', to: 'Lyon' },
 *   deadlineMs: 2000,
 *   pricing: 'second-price',
 * });
 * if (outcome.status === 'awarded') console.log(outcome.winner, outcome.price, outcome.result);
 * ```
 */
export async function contractNet(options: ContractNetOptions): Promise<ContractNetOutcome> {
  const settings = resolveOptions(options);
  const { system, task, deadlineMs, executeTimeoutMs, award, pricing } = settings;
  const members = await resolveMembers(options.members, 'members');
  const round = options.round ?? `round-${system.random().toString(36).slice(2, 10)}`;
  const deadline = system.clock.wallNow() + deadlineMs;
  const proposePrompt = options.prompts?.propose ?? defaultProposePrompt;
  const awardPrompt = options.prompts?.award ?? ((t: unknown) => `Do this task: ${JSON.stringify(t)}`);

  const answers = await Promise.all(
    members.map(async (member) => {
      const bidder = memberAddress(member);
      try {
        const proposal: Proposal = isAgentMember(member)
          ? readBid(
              (await runAgent(member, proposePrompt(task), { timeoutMs: deadlineMs, runId: `${round}-cfp` }))
                .text,
            )
          : await member.ask('propose', { round, task, deadline }, { timeoutMs: deadlineMs });
        return { bidder, member, proposal };
      } catch (error) {
        return { bidder, member, failure: failureOf(error) };
      }
    }),
  );
  const bids: (Bid & { member: Member<typeof ContractorProtocol> })[] = [];
  const refusals: { bidder: string; reason?: string }[] = [];
  const silent: (FailureReport & { bidder: string })[] = [];
  for (const a of answers) {
    if (a.failure !== undefined) silent.push({ bidder: a.bidder, ...a.failure });
    else if (!a.proposal.bid)
      refusals.push({
        bidder: a.bidder,
        ...(a.proposal.reason === undefined ? {} : { reason: a.proposal.reason }),
      });
    else
      bids.push({
        bidder: a.bidder,
        member: a.member,
        cost: a.proposal.cost,
        ...(a.proposal.score === undefined ? {} : { score: a.proposal.score }),
        ...(a.proposal.note === undefined ? {} : { note: a.proposal.note }),
      });
  }
  const ranked = rankBids(bids, award);
  const failures: (FailureReport & { bidder: string; price: number })[] = [];
  const report = ranked.map(({ member: _member, ...bid }) => bid);
  const finish = (
    outcome: Omit<ContractNetOutcome, 'round' | 'bids' | 'refusals' | 'silent' | 'failures'>,
  ) => {
    const full: ContractNetOutcome = { round, ...outcome, bids: report, refusals, silent, failures };
    system.publish({
      type: 'contract-net-round',
      round,
      status: full.status,
      ...(full.winner === undefined ? {} : { winner: full.winner }),
      ...(full.price === undefined ? {} : { price: full.price }),
      bids: report.length,
      refusals: refusals.length,
      silent: silent.map(({ bidder, code }) => ({ bidder, code })),
      failures: failures.map(({ bidder, code }) => ({ bidder, code })),
    });
    return full;
  };
  const tries = Math.min(ranked.length, settings.maxAwards);
  for (let i = 0; i < tries; i++) {
    const bid = ranked[i]!;
    const price = pricing === 'second-price' ? (ranked[i + 1]?.cost ?? bid.cost) : bid.cost;
    try {
      const { member } = bid;
      if (isAgentMember(member)) {
        const { text } = await runAgent(member, awardPrompt(task), {
          timeoutMs: executeTimeoutMs,
          runId: `${round}-award`,
        });
        return finish({ status: 'awarded', winner: bid.bidder, price, result: text });
      }
      const done = await member.ask('award', { round, task, price }, { timeoutMs: executeTimeoutMs });
      if (done.ok) return finish({ status: 'awarded', winner: bid.bidder, price, result: done.result });
      failures.push({ bidder: bid.bidder, price, code: done.error.code, message: done.error.message });
    } catch (error) {
      failures.push({ bidder: bid.bidder, price, ...failureOf(error) });
    }
  }
  const why =
    ranked.length === 0
      ? `no bid in round ${round} (${refusals.length} refused, ${silent.length} silent)`
      : `every awarded bidder failed in round ${round}`;
  return finish({ status: 'failed', error: new TroupeError('ERR_CONTRACT_FAILED', why).toJSON() });
}

/** Bids best first by the rule; equal ranks by bidder address. */
function rankBids<B extends Bid>(bids: readonly B[], award: AwardRule): B[] {
  const ranks = new Map(bids.map((b) => [b, award.rank(b)]));
  return [...bids].sort((a, b) => {
    const d = ranks.get(b)! - ranks.get(a)!;
    if (d !== 0 && !Number.isNaN(d)) return d;
    return a.bidder < b.bidder ? -1 : a.bidder > b.bidder ? 1 : 0;
  });
}

function defaultProposePrompt(task: unknown): string {
  return `Call for proposals. Task: ${JSON.stringify(task)}\nAnswer with your cost as a number, or REFUSE.`;
}

/** An agent's answer as a bid: the first number is its cost; `REFUSE` (or no number) refuses. */
function readBid(text: string): Proposal {
  if (/\brefuse\b/i.test(text)) return { bid: false, reason: text.trim() };
  const number = /-?\d+(\.\d+)?/.exec(text);
  if (number === null) return { bid: false, reason: `no cost in the answer: ${text.trim().slice(0, 80)}` };
  return { bid: true, cost: Number(number[0]) };
}

interface Settings {
  readonly system: ActorSystem;
  readonly task: unknown;
  readonly deadlineMs: number;
  readonly executeTimeoutMs: number;
  readonly award: AwardRule;
  readonly pricing: 'first-price' | 'second-price';
  readonly maxAwards: number;
}

function resolveOptions(options: ContractNetOptions): Settings {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const {
    system,
    task,
    deadlineMs = contractNetDefaults.deadlineMs,
    executeTimeoutMs = contractNetDefaults.executeTimeoutMs,
    award = lowestCost(),
    pricing = contractNetDefaults.pricing,
    maxAwards = Number.POSITIVE_INFINITY,
  } = options;
  if (typeof system?.publish !== 'function') throw invalidOption('system', 'must be an actor system', system);
  checkMembers(options.members, 'members');
  if (!(deadlineMs > 0)) throw invalidOption('deadlineMs', 'must be a positive number', deadlineMs);
  if (!(executeTimeoutMs > 0))
    throw invalidOption('executeTimeoutMs', 'must be a positive number', executeTimeoutMs);
  if (typeof award?.rank !== 'function') throw invalidOption('award', 'must be an award rule', award);
  if (pricing !== 'first-price' && pricing !== 'second-price')
    throw invalidOption('pricing', "must be 'first-price' or 'second-price'", pricing);
  if (!(maxAwards >= 1)) throw invalidOption('maxAwards', 'must be at least 1', maxAwards);
  return { system, task, deadlineMs, executeTimeoutMs, award, pricing, maxAwards };
}
