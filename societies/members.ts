import type { AgentProtocol, RunOutcome } from '../agents/index.js';
import { type AnyProtocol, asError, ERROR_CODES, invalidOption, TroupeError } from '../protocols/index.js';
import type { ActorRef } from '../runtime/index.js';

/**
 * An agent taking part in a pattern whose protocol it does not speak: the pattern writes it a prompt,
 * asks its `run`, and reads its answer (a bid, a vote, a turn). Make one with {@link asAgent}.
 */
export interface AgentMember {
  readonly agent: ActorRef<typeof AgentProtocol>;
}

/** A member of a society: an actor speaking the pattern's protocol `P`, or an agent ({@link asAgent}). */
export type Member<P extends AnyProtocol> = ActorRef<P> | AgentMember;

/**
 * Who takes part: a list, or a function giving the current members at the start of each round (a
 * process group's `members`, a lookup), so membership can change between rounds.
 */
export type Members<M> = readonly M[] | (() => readonly M[] | PromiseLike<readonly M[]>);

/**
 * Marks an agent as a member of a pattern: the pattern asks its `run` with a prompt and reads the
 * answer's text.
 * @example
 * ```ts
 * const voters = [asAgent(alice), asAgent(bob)];
 * ```
 */
export function asAgent(agent: ActorRef<typeof AgentProtocol>): AgentMember {
  if (typeof agent?.ask !== 'function') throw invalidOption('agent', 'must be an actor ref', agent);
  return { agent };
}

/** True for a member given with {@link asAgent}. */
export function isAgentMember(member: Member<any>): member is AgentMember {
  return typeof (member as AgentMember).agent?.ask === 'function';
}

/** The address that names a member in outcomes and events. */
export function memberAddress(member: Member<any>): string {
  return isAgentMember(member) ? member.agent.address : member.address;
}

/**
 * The members of a round: the list (checked already by {@link checkMembers}), or what the function
 * gives now.
 * @throws TroupeError `ERR_INVALID_OPTION` naming `option` for no members or a member that is not a ref.
 */
export async function resolveMembers<M extends Member<any>>(
  members: Members<M>,
  option: string,
): Promise<M[]> {
  if (typeof members !== 'function') return [...members];
  const list = await members();
  checkMemberList(list, option);
  return [...list];
}

/** Checks a list of members given at definition time (a function is checked at each round). */
export function checkMembers(members: unknown, option: string): void {
  if (typeof members === 'function') return;
  checkMemberList(members, option);
}

function checkMemberList(list: unknown, option: string): asserts list is readonly Member<any>[] {
  if (!Array.isArray(list) || list.length === 0)
    throw invalidOption(option, 'must be a non-empty list of refs (or a function giving one)', list);
  const seen = new Set<string>();
  for (const member of list) {
    if (!isAgentMember(member) && typeof (member as ActorRef)?.ask !== 'function')
      throw invalidOption(option, 'each member must be an actor ref or asAgent(ref)', member);
    const address = memberAddress(member);
    if (seen.has(address)) throw invalidOption(option, `lists ${address} twice`, address);
    seen.add(address);
  }
}

/** Asks an agent member's `run` and gives the answer's text, or throws the run's failure as a TroupeError. */
export async function runAgent(
  member: AgentMember,
  input: string,
  options: { readonly timeoutMs: number; readonly runId?: string; readonly signal?: AbortSignal },
): Promise<{ readonly text: string; readonly tokens: number }> {
  const outcome: RunOutcome = await member.agent.ask(
    'run',
    options.runId === undefined ? { input } : { input, runId: options.runId },
    { timeoutMs: options.timeoutMs, ...(options.signal === undefined ? {} : { signal: options.signal }) },
  );
  if (!outcome.ok) {
    throw new TroupeError(knownCode(outcome.error.code), outcome.error.message, {
      details: { agent: member.agent.address },
    });
  }
  return { text: outcome.output, tokens: outcome.usage.inputTokens + outcome.usage.outputTokens };
}

/** A failure as outcomes and events report it: its code (a Troupe code, or a defect's error name) and message. */
export interface FailureReport {
  readonly code: string;
  readonly message: string;
}

/**
 * The code and message of anything thrown. An error without a Troupe code (a defect in a user
 * function) is reported by its name (`Error`, `TypeError`).
 */
export function failureOf(thrown: unknown): FailureReport {
  if (TroupeError.is(thrown)) return { code: thrown.code, message: thrown.message };
  const error = asError(thrown);
  return { code: error.name || 'Error', message: error.message };
}

function knownCode(code: string): TroupeError['code'] {
  return Object.hasOwn(ERROR_CODES, code) ? (code as TroupeError['code']) : 'ERR_REMOTE';
}
