import { invalidOption, TroupeError } from '../protocols/index.js';
import { checkSink, type EventSink, publishGuardEvent } from './events.js';

/** Limits of one budget; an absent limit does not bind. */
export interface BudgetLimits {
  /** Tokens, input and output together. */
  readonly tokens?: number;
  /** Cost in US dollars. */
  readonly costUsd?: number;
  /** Model calls (a tool call is not counted). */
  readonly calls?: number;
}

/** Options of {@link createBudgets}. */
export interface BudgetOptions {
  /** Where refusals are published (an actor system), as `budget-exhausted` events. */
  readonly system?: EventSink;
}

/** What a scope has spent (settled calls plus the estimates of calls in flight). */
export interface Spend {
  readonly tokens: number;
  readonly costUsd: number;
  readonly calls: number;
}

/** What one call is expected to spend, or did. */
export interface CallCost {
  readonly tokens: number;
  readonly costUsd: number;
}

/** A call's hold on its budgets: settle it with what the call spent, or release it if nothing was sent. */
export interface Reservation {
  /** Replaces the estimate with what the call spent (it counts as one call). */
  settle(spent: CallCost): void;
  /** Drops the estimate: the call was never sent. */
  release(): void;
}

/**
 * Budgets by scope. A scope is an actor's address: it covers that actor and, as a supervision
 * subtree, every actor below it (`troupe://app/local/user/team` covers
 * `troupe://app/local/user/team/researcher`). A call is charged to every scope that covers its
 * agent, and refused if any of them cannot cover its estimate.
 */
export interface Budgets {
  /** Sets (or replaces) the limits of a scope; what it has spent stays. */
  limit(scope: string, limits: BudgetLimits): void;
  /**
   * Reserves a call's estimate in every scope that covers `agent`, before the call is sent.
   * @throws TroupeError `ERR_BUDGET_EXCEEDED` naming the scope and the limit, when one of them
   * cannot cover it; nothing is reserved then.
   */
  reserve(agent: string, estimate: CallCost): Reservation;
  /** What a scope with limits has spent; zeros for a scope without. */
  spent(scope: string): Spend;
  /** Forgets what a scope has spent (a new period); calls in flight are not charged to the new one. */
  reset(scope: string): void;
}

interface Scope {
  limits: BudgetLimits;
  /** Bumped by reset: a call reserved before it is not charged to the new period. */
  period: number;
  tokens: number;
  costUsd: number;
  calls: number;
}

/**
 * Makes an empty book of budgets. With `system`, each refused reservation is also a
 * `budget-exhausted` event there.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad option.
 * @example
 * ```ts
 * const budgets = createBudgets();
 * budgets.limit(team.address, { costUsd: 5 });          // the whole subtree
 * budgets.limit(researcher.address, { tokens: 50_000, calls: 100 });
 * ```
 */
export function createBudgets(options: BudgetOptions = {}): Budgets {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  checkSink(options.system);
  return new BudgetBook(options.system);
}

const LIMIT_KEYS = ['tokens', 'costUsd', 'calls'] as const;

class BudgetBook implements Budgets {
  private readonly scopes = new Map<string, Scope>();

  constructor(private readonly system: EventSink | undefined) {}

  limit(scope: string, limits: BudgetLimits): void {
    if (typeof scope !== 'string' || scope === '') throw invalidOption('scope', 'must be an address', scope);
    if (typeof limits !== 'object' || limits === null)
      throw invalidOption('limits', 'must be an object', limits);
    for (const key of LIMIT_KEYS) {
      const value = limits[key];
      if (value !== undefined && !(typeof value === 'number' && value >= 0))
        throw invalidOption(`limits.${key}`, 'must be a non-negative number', value);
    }
    const known = this.scopes.get(scope);
    if (known === undefined)
      this.scopes.set(scope, { limits: { ...limits }, period: 0, tokens: 0, costUsd: 0, calls: 0 });
    else known.limits = { ...limits };
  }

  reserve(agent: string, estimate: CallCost): Reservation {
    const covering: Scope[] = [];
    for (const [name, scope] of this.scopes) {
      if (!inSubtree(name, agent)) continue;
      const need = { tokens: estimate.tokens, costUsd: estimate.costUsd, calls: 1 };
      for (const key of LIMIT_KEYS) {
        const limit = scope.limits[key];
        if (limit !== undefined && scope[key] + need[key] > limit) {
          const refusal = { scope: name, limit: key, max: limit, used: scope[key], needed: need[key], agent };
          publishGuardEvent(this.system, { type: 'budget-exhausted', ...refusal });
          throw new TroupeError(
            'ERR_BUDGET_EXCEEDED',
            `the call would exceed the ${key} budget of ${name} (${scope[key]} of ${limit} used, the call needs ${need[key]})`,
            { details: refusal },
          );
        }
      }
      covering.push(scope);
    }
    for (const scope of covering) add(scope, estimate, 1);
    const periods = covering.map((scope) => scope.period);
    let open = true;
    const close = (spent: CallCost | undefined) => {
      if (!open) return;
      open = false;
      covering.forEach((scope, i) => {
        if (scope.period !== periods[i]) return;
        add(scope, estimate, -1);
        if (spent !== undefined) add(scope, spent, 1);
      });
    };
    return { settle: (spent) => close(spent), release: () => close(undefined) };
  }

  spent(scope: string): Spend {
    const s = this.scopes.get(scope);
    return s === undefined
      ? { tokens: 0, costUsd: 0, calls: 0 }
      : { tokens: s.tokens, costUsd: s.costUsd, calls: s.calls };
  }

  reset(scope: string): void {
    const s = this.scopes.get(scope);
    if (s === undefined) return;
    s.period++;
    s.tokens = 0;
    s.costUsd = 0;
    s.calls = 0;
  }
}

function add(scope: Scope, cost: CallCost, sign: 1 | -1): void {
  scope.tokens += sign * cost.tokens;
  scope.costUsd += sign * cost.costUsd;
  scope.calls += sign;
}

/** True when `agent` is the actor at `scope` or below it in the supervision tree (by address). */
export function inSubtree(scope: string, agent: string): boolean {
  return agent === scope || (agent.startsWith(scope) && agent.charCodeAt(scope.length) === 47) /* / */;
}
