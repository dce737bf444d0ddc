import type { ModelPrice } from '../../agents/index.js';
import { invalidOption } from '../../protocols/index.js';
import type { ChatTurn } from './protocol.js';

/** What speaker selection and termination see of a chat. */
export interface ChatView {
  readonly task: string;
  readonly turns: readonly ChatTurn[];
  readonly participants: readonly { readonly name: string; readonly description: string }[];
  readonly usage: { readonly inputTokens: number; readonly outputTokens: number };
}

/** Why a termination condition is met. */
export interface Stop {
  readonly reason: string;
  readonly detail: string;
}

/**
 * A termination condition, checked before every turn: it answers why the chat should end, or
 * undefined. Compose with {@link anyOf} and {@link allOf}.
 */
export interface Termination {
  check(view: ChatView): Stop | undefined;
}

/** Ends the chat once it has had `turns` turns (failed ones included). */
export function maxTurns(turns: number): Termination {
  if (!Number.isInteger(turns) || turns < 1)
    throw invalidOption('maxTurns', 'must be a positive integer', turns);
  return {
    check: (view) =>
      view.turns.length >= turns ? { reason: 'max-turns', detail: `${view.turns.length} turns` } : undefined,
  };
}

/**
 * Ends the chat when the last answer contains `text` (such as `TERMINATE`), optionally only from
 * the participant `from`.
 */
export function textMention(text: string, options?: { readonly from?: string }): Termination {
  if (typeof text !== 'string' || text === '')
    throw invalidOption('textMention', 'must be a non-empty string', text);
  return {
    check: (view) => {
      const last = view.turns.at(-1);
      if (last === undefined || last.error !== undefined || !last.text.includes(text)) return undefined;
      if (options?.from !== undefined && last.speaker !== options.from) return undefined;
      return { reason: 'mention', detail: `${last.speaker} said "${text}"` };
    },
  };
}

/** Ends the chat once its participants' turns have used `maxTokens` tokens (input and output). */
export function tokenBudget(maxTokens: number): Termination {
  if (!(maxTokens > 0)) throw invalidOption('tokenBudget', 'must be a positive number', maxTokens);
  return {
    check: ({ usage }) => {
      const used = usage.inputTokens + usage.outputTokens;
      return used >= maxTokens ? { reason: 'tokens', detail: `${used} of ${maxTokens} tokens` } : undefined;
    },
  };
}

/** Ends the chat once its turns have cost `maxCostUsd` at `price`. */
export function costBudget(maxCostUsd: number, price: ModelPrice): Termination {
  if (!(maxCostUsd > 0)) throw invalidOption('costBudget', 'must be a positive number', maxCostUsd);
  if (!(price?.inputPerMillion >= 0 && price.outputPerMillion >= 0))
    throw invalidOption('costBudget.price', 'must give non-negative prices per million tokens', price);
  return {
    check: ({ usage }) => {
      const cost =
        (usage.inputTokens * price.inputPerMillion + usage.outputTokens * price.outputPerMillion) / 1e6;
      return cost >= maxCostUsd ? { reason: 'cost', detail: `$${cost} of $${maxCostUsd}` } : undefined;
    },
  };
}

/** Ends the chat when `condition` returns true. */
export function when(condition: (view: ChatView) => boolean, detail = 'the condition held'): Termination {
  if (typeof condition !== 'function') throw invalidOption('when', 'must be a function', condition);
  return { check: (view) => (condition(view) ? { reason: 'function', detail } : undefined) };
}

/** A termination its owner sets from outside (a button, a signal handler): `stop()`, and the chat ends before its next turn. */
export interface ExternalStop extends Termination {
  stop(detail?: string): void;
}

/**
 * A termination set from outside in this process. (From anywhere in the cluster, send the chat's
 * `stop` message.)
 */
export function externalStop(): ExternalStop {
  let stopped: string | undefined;
  return {
    stop: (detail = 'stopped from outside') => {
      stopped = detail;
    },
    check: () => (stopped === undefined ? undefined : { reason: 'external', detail: stopped }),
  };
}

/** Met when any of `conditions` is (the first one met gives the reason). */
export function anyOf(...conditions: Termination[]): Termination {
  checkAll(conditions, 'anyOf');
  return {
    check: (view) => {
      for (const c of conditions) {
        const stop = c.check(view);
        if (stop !== undefined) return stop;
      }
      return undefined;
    },
  };
}

/** Met when all of `conditions` are. */
export function allOf(...conditions: Termination[]): Termination {
  checkAll(conditions, 'allOf');
  return {
    check: (view) => {
      const stops: Stop[] = [];
      for (const c of conditions) {
        const stop = c.check(view);
        if (stop === undefined) return undefined;
        stops.push(stop);
      }
      return { reason: 'all', detail: stops.map((s) => `${s.reason}: ${s.detail}`).join('; ') };
    },
  };
}

function checkAll(conditions: readonly Termination[], option: string): void {
  if (conditions.length === 0) throw invalidOption(option, 'needs at least one condition');
  conditions.forEach((c, i) => {
    if (typeof c?.check !== 'function') throw invalidOption(`${option}[${i}]`, 'must be a termination', c);
  });
}
