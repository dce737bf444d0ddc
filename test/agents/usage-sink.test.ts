/** Usage rows reach a Postgres journal's `usage` table (a hypertable where TimescaleDB is installed). */
import { describe, expect, it } from 'vitest';
import { usageLedger } from '../../index.js';
import { postgresJournals } from '../memory/postgres-journals.js';

const pg = postgresJournals('usage');

describe('usage ledger with a Postgres sink', () => {
  it('writes each call, priced, to the usage table', async () => {
    const journal = await pg.journal();
    const usage = usageLedger({
      prices: { small: { inputPerMillion: 1, outputPerMillion: 4 } },
      sink: journal,
    });
    usage.record('troupe://app/local/team/a', 'small', { inputTokens: 1000, outputTokens: 500 });
    usage.record('troupe://app/local/team/b', 'small', { inputTokens: 10, outputTokens: 0 });
    await usage.flush();
    const rows = await journal.transaction((tx) =>
      tx.query<{
        agent: string;
        model: string;
        input_tokens: number;
        output_tokens: number;
        cost_usd: number;
      }>(
        `SELECT agent, model, input_tokens, output_tokens, cost_usd FROM ${journal.tables.usage} ORDER BY agent`,
      ),
    );
    expect(rows.rows).toEqual([
      {
        agent: 'troupe://app/local/team/a',
        model: 'small',
        input_tokens: 1000,
        output_tokens: 500,
        cost_usd: 0.003,
      },
      {
        agent: 'troupe://app/local/team/b',
        model: 'small',
        input_tokens: 10,
        output_tokens: 0,
        cost_usd: 0.00001,
      },
    ]);
    expect(usage.bySubtree('troupe://app/local/team')).toEqual({
      calls: 2,
      inputTokens: 1010,
      outputTokens: 500,
      costUsd: 0.00301,
    });
  });

  it('reports a failed write at flush', async () => {
    const journal = await pg.journal();
    const usage = usageLedger({ sink: journal });
    await journal.close();
    usage.record('troupe://app/local/a', 'm', { inputTokens: 1, outputTokens: 1 });
    await expect(usage.flush()).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_/) });
    await expect(usage.flush()).resolves.toBeUndefined();
  });
});
