import { invalidOption } from '../protocols/index.js';
import { inSubtree } from '../supervisors/index.js';
import type { TokenUsage } from './model.js';

/** The price of a model, in US dollars per million tokens. */
export interface ModelPrice {
  readonly inputPerMillion: number;
  readonly outputPerMillion: number;
}

/** Totals of usage. `costUsd` is the exact sum; {@link formatUsage} rounds it for display. */
export interface UsageTotals {
  readonly calls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly costUsd: number;
}

const DOLLARS = new Intl.NumberFormat('en-US', {
  style: 'currency',
  currency: 'USD',
  minimumFractionDigits: 2,
  // Micro-dollars: a single call's cost still shows, and float noise of the sum does not.
  maximumFractionDigits: 6,
});
const COUNT = new Intl.NumberFormat('en-US');

/**
 * Usage totals as one line for people: counts with separators, the cost rounded to a micro-dollar
 * (the totals keep the exact sum).
 * @example
 * ```ts
 * formatUsage(usage.bySubtree(team.address)); // '3 calls, 1,100 tokens (1,000 in, 100 out), $0.00022'
 * ```
 */
export function formatUsage(totals: UsageTotals): string {
  const { calls, inputTokens, outputTokens, costUsd } = totals;
  return (
    `${COUNT.format(calls)} call${calls === 1 ? '' : 's'}, ${COUNT.format(inputTokens + outputTokens)} tokens ` +
    `(${COUNT.format(inputTokens)} in, ${COUNT.format(outputTokens)} out), ${DOLLARS.format(costUsd)}`
  );
}

/** Where usage rows go besides the ledger: a SQL journal's `usage` table (a hypertable on Timescale). */
export interface UsageSink {
  recordUsage(
    rows: readonly {
      readonly agent: string;
      readonly model: string;
      readonly inputTokens: number;
      readonly outputTokens: number;
      readonly costUsd?: number;
    }[],
  ): Promise<void>;
}

/** Options of {@link usageLedger}. */
export interface UsageLedgerOptions {
  /**
   * Prices by model name. A name is priced by its own entry, or without its provider prefix, or by
   * the longest entry it starts with (so `gpt-4o-mini` prices `openai:gpt-4o-mini` and the provider's
   * `gpt-4o-mini-2024-07-18`); unpriced models cost 0, so cost budgets need their models priced.
   */
  readonly prices?: Readonly<Record<string, ModelPrice>>;
  /** Also writes each call's usage there, in batches (for example a Postgres journal). */
  readonly sink?: UsageSink;
}

/**
 * Usage accounting: tokens, calls and cost per agent, per model, and per supervision subtree (an
 * address covers the actors below it).
 */
export interface UsageLedger {
  /** The cost of `usage` on `model` at the ledger's prices. */
  costOf(model: string, usage: TokenUsage): number;
  /** Records one model call of `agent`. */
  record(agent: string, model: string, usage: TokenUsage): void;
  /** One agent's totals. */
  byAgent(agent: string): UsageTotals;
  /** One model's totals. */
  byModel(model: string): UsageTotals;
  /** The totals of every agent at or below `scope` (a supervisor's address). */
  bySubtree(scope: string): UsageTotals;
  /** Everything. */
  total(): UsageTotals;
  /** Waits for the rows written to the sink so far; rejects with the sink's error if one failed. */
  flush(): Promise<void>;
}

interface Totals {
  calls: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

const ZERO: UsageTotals = Object.freeze({ calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 });

/**
 * Makes a usage ledger.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad price or sink.
 * @example
 * ```ts
 * const usage = usageLedger({ prices: { 'gpt-4o-mini': { inputPerMillion: 0.15, outputPerMillion: 0.6 } } });
 * usage.bySubtree(team.address); // { calls, inputTokens, outputTokens, costUsd }
 * ```
 */
export function usageLedger(options: UsageLedgerOptions = {}): UsageLedger {
  const { prices = {}, sink } = options;
  for (const [model, price] of Object.entries(prices)) {
    if (!(price?.inputPerMillion >= 0 && price.outputPerMillion >= 0))
      throw invalidOption(
        `prices.${model}`,
        'must have non-negative inputPerMillion and outputPerMillion',
        price,
      );
  }
  if (sink !== undefined && typeof sink.recordUsage !== 'function')
    throw invalidOption('sink', 'must have a recordUsage method', sink);
  return new Ledger(prices, sink);
}

class Ledger implements UsageLedger {
  private readonly agents = new Map<string, Totals>();
  private readonly models = new Map<string, Totals>();
  private readonly all: Totals = { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 };
  private rows: Parameters<UsageSink['recordUsage']>[0][number][] = [];
  private writing: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(
    private readonly prices: Readonly<Record<string, ModelPrice>>,
    private readonly sink: UsageSink | undefined,
  ) {}

  costOf(model: string, usage: TokenUsage): number {
    const price = this.priceOf(model);
    if (price === undefined) return 0;
    return (usage.inputTokens * price.inputPerMillion + usage.outputTokens * price.outputPerMillion) / 1e6;
  }

  record(agent: string, model: string, usage: TokenUsage): void {
    const costUsd = this.costOf(model, usage);
    for (const totals of [this.totalsOf(this.agents, agent), this.totalsOf(this.models, model), this.all]) {
      totals.calls++;
      totals.inputTokens += usage.inputTokens;
      totals.outputTokens += usage.outputTokens;
      totals.costUsd += costUsd;
    }
    if (this.sink === undefined) return;
    this.rows.push({
      agent,
      model,
      inputTokens: usage.inputTokens,
      outputTokens: usage.outputTokens,
      costUsd,
    });
    // One write per turn of the event loop for every call recorded in it.
    if (this.rows.length === 1) {
      const sink = this.sink;
      this.writing = this.writing.then(() =>
        new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
          const rows = this.rows;
          this.rows = [];
          return sink.recordUsage(rows).catch((error: unknown) => {
            this.failure = error;
          });
        }),
      );
    }
  }

  byAgent(agent: string): UsageTotals {
    return { ...(this.agents.get(agent) ?? ZERO) };
  }

  byModel(model: string): UsageTotals {
    return { ...(this.models.get(model) ?? ZERO) };
  }

  bySubtree(scope: string): UsageTotals {
    const sum: Totals = { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 };
    for (const [agent, t] of this.agents) {
      if (!inSubtree(scope, agent)) continue;
      sum.calls += t.calls;
      sum.inputTokens += t.inputTokens;
      sum.outputTokens += t.outputTokens;
      sum.costUsd += t.costUsd;
    }
    return sum;
  }

  total(): UsageTotals {
    return { ...this.all };
  }

  async flush(): Promise<void> {
    await this.writing;
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      throw failure;
    }
  }

  /**
   * The price of a model: by its name; else by the name without its provider (`openai:gpt-4o-mini`
   * is priced as `gpt-4o-mini`); else by the longest priced name it starts with (a provider's dated
   * version, `gpt-4o-mini-2024-07-18`, is priced as `gpt-4o-mini`).
   */
  private priceOf(model: string): ModelPrice | undefined {
    const own = (name: string) => (Object.hasOwn(this.prices, name) ? this.prices[name] : undefined);
    const exact = own(model);
    if (exact !== undefined) return exact;
    const bare = model.slice(model.indexOf(':') + 1);
    if (own(bare) !== undefined) return own(bare);
    let best: string | undefined;
    for (const name of Object.keys(this.prices)) {
      if (bare.startsWith(name) && (best === undefined || name.length > best.length)) best = name;
    }
    return best === undefined ? undefined : this.prices[best];
  }

  private totalsOf(map: Map<string, Totals>, key: string): Totals {
    let totals = map.get(key);
    if (totals === undefined) {
      totals = { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 };
      map.set(key, totals);
    }
    return totals;
  }
}
