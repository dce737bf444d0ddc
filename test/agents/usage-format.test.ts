/** Costs for people: the ledger keeps exact sums, `formatUsage` rounds them for display. */
import { expect, it } from 'vitest';
import { formatUsage, usageLedger } from '../../index.js';

it('keeps the exact cost and prints it rounded to a micro-dollar, with counts people can read', () => {
  const usage = usageLedger({ prices: { 'gpt-4o-mini': { inputPerMillion: 0.15, outputPerMillion: 0.6 } } });
  for (const call of [
    { inputTokens: 800, outputTokens: 0 },
    { inputTokens: 0, outputTokens: 200 },
    { inputTokens: 400, outputTokens: 0 },
  ]) {
    usage.record('troupe://app/local/writer', 'gpt-4o-mini', call);
  }
  const totals = usage.byAgent('troupe://app/local/writer');
  // The sum as the ledger adds it, float noise and all: nothing is rounded away.
  expect(totals.costUsd).toBe(0.00012 + 0.00012 + 0.00006);
  expect(String(totals.costUsd)).not.toBe('0.0003');
  expect(formatUsage(totals)).toBe('3 calls, 1,400 tokens (1,200 in, 200 out), $0.0003');
  expect(formatUsage({ calls: 1, inputTokens: 1_234_567, outputTokens: 0, costUsd: 12.5 })).toBe(
    '1 call, 1,234,567 tokens (1,234,567 in, 0 out), $12.50',
  );
  expect(formatUsage({ calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 })).toContain('$0.00');
});
