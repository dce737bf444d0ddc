/**
 * Projections: a read model in the journal's Postgres updated with its checkpoint in one transaction
 * (exactly once across crashes and concurrent writers), a read model elsewhere (at least once), and
 * a search index kept in sync with memory events.
 */
import { describe, expect, it } from 'vitest';
import {
  embeddedSearchIndex,
  inMemoryJournal,
  type StoredEvent,
  startProjection,
  startSearchProjection,
} from '../../index.js';
import { SimulatedClock } from '../../runtime/testkit/index.js';
import { postgresJournals } from './postgres-journals.js';

const { journal } = postgresJournals('pj');

describe('projections', () => {
  it('updates a read model and its checkpoint in one transaction: after a crash it resumes, no event skipped or repeated', async () => {
    const j = await journal();
    const seen = `${j.tables.events}_seen`;
    await j.transaction((tx) =>
      tx.query(`CREATE TABLE ${seen} (stream text, version bigint, PRIMARY KEY (stream, version))`),
    );
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++)
      writes.push(
        j.append(`s-${i % 7}`, [
          { type: 'e', data: { i } },
          { type: 'e', data: { i } },
        ]),
      );
    await Promise.all(writes);
    let batches = 0;
    const handle = async (events: readonly StoredEvent[], tx: unknown) => {
      const t = tx as { query: (q: string, p: unknown[]) => Promise<unknown> };
      await t.query(`INSERT INTO ${seen} SELECT * FROM unnest($1::text[], $2::bigint[])`, [
        events.map((e) => e.stream),
        events.map((e) => e.version),
      ]);
      // The third batch crashes after writing: its rows and its checkpoint must both roll back.
      if (++batches === 3) throw new Error('crash in the middle of a batch');
    };
    const first = await startProjection({ journal: j, name: 'seen', handle, batchSize: 10, maxAttempts: 1 });
    const failure = await first.closed();
    expect(failure).toMatchObject({
      code: 'ERR_PROJECTION_FAILED',
      details: { projection: 'seen', attempts: 1 },
    });
    expect(await j.loadCheckpoint('seen')).toEqual(first.checkpoint);
    const rows = async () =>
      (await j.transaction((tx) => tx.query<{ n: string }>(`SELECT count(*) AS n FROM ${seen}`))).rows[0]!.n;
    expect(Number(await rows())).toBe(20);
    // Resumed, while other writers go on appending.
    const second = await startProjection({ journal: j, name: 'seen', handle, batchSize: 10 });
    const more: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) more.push(j.append(`t-${i % 5}`, [{ type: 'e', data: { i } }]));
    await Promise.all(more);
    await second.caughtUp();
    expect(Number(await rows())).toBe(110);
    const all = await j.readAll({ limit: 1000 });
    expect(second.checkpoint).toEqual(all[all.length - 1]!.checkpoint);
    await second.close();
    expect(await second.closed()).toBeUndefined();
  });

  it('lets only one runner of a name move its checkpoint: a second fails, its writes rolled back', async () => {
    const j = await journal();
    const seen = `${j.tables.events}_once`;
    await j.transaction((tx) =>
      tx.query(`CREATE TABLE ${seen} (stream text, version bigint, PRIMARY KEY (stream, version))`),
    );
    let gate: () => void = () => {};
    const opened = new Promise<void>((r) => (gate = r));
    const handle = async (events: readonly StoredEvent[], tx: unknown) => {
      const t = tx as { query: (q: string, p: unknown[]) => Promise<unknown> };
      await opened;
      await t.query(
        `INSERT INTO ${seen} SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING`,
        [events.map((e) => e.stream), events.map((e) => e.version)],
      );
    };
    await j.append('s', [{ type: 'a', data: 1 }]);
    const [first, second] = await Promise.all([
      startProjection({ journal: j, name: 'once', handle, maxAttempts: 1 }),
      startProjection({ journal: j, name: 'once', handle, maxAttempts: 1 }),
    ]);
    gate();
    const failed = await Promise.race([
      first.closed(),
      second.closed(),
      new Promise((r) => setTimeout(() => r('both still running'), 3000)),
    ]);
    expect(failed).toMatchObject({ code: 'ERR_PROJECTION_FAILED' });
    await Promise.all([first.close(), second.close()]);
  });

  it('stops with an error when its journal closes', async () => {
    const j = inMemoryJournal();
    const p = await startProjection({ journal: j, name: 'x', handle: () => {} });
    await j.close();
    expect(await p.closed()).toMatchObject({ code: 'ERR_ILLEGAL_STATE' });
  });

  it('retries a failing batch, then goes on', async () => {
    const j = await journal();
    await j.append('s', [{ type: 'a', data: 1 }]);
    let calls = 0;
    const handled: number[] = [];
    const p = await startProjection({
      journal: j,
      name: 'flaky',
      retryDelayMs: 1,
      handle: (events) => {
        if (++calls < 3) throw new Error('transient');
        handled.push(...events.map((e) => e.version));
      },
    });
    await p.caughtUp();
    expect(handled).toEqual([1]);
    expect(calls).toBe(3);
    await p.close();
  });

  it('waits its backoff between attempts on its clock, and gives up after maxAttempts', async () => {
    const clock = new SimulatedClock();
    const j = inMemoryJournal({ clock });
    await j.append('s', [{ type: 'a', data: 1 }]);
    const at: number[] = [];
    const p = await startProjection({
      journal: j,
      name: 'backoff',
      retryDelayMs: 100,
      maxAttempts: 3,
      clock,
      handle: () => {
        at.push(clock.now());
        throw new Error('down');
      },
    });
    await clock.advance(0);
    expect(at).toEqual([0]);
    await clock.advance(99);
    expect(at).toEqual([0]);
    await clock.advance(1);
    expect(at).toEqual([0, 100]);
    // The second wait doubles.
    await clock.advance(200);
    expect(at).toEqual([0, 100, 300]);
    expect(await p.closed()).toMatchObject({ code: 'ERR_PROJECTION_FAILED', details: { attempts: 3 } });
  });

  it('runs over a journal without SQL, storing the checkpoint after the handler (at least once)', async () => {
    const j = inMemoryJournal();
    const totals = new Map<string, number>();
    const handle = (events: readonly StoredEvent[]) => {
      for (const e of events) totals.set(e.stream, (totals.get(e.stream) ?? 0) + (e.data as number));
    };
    await j.append('a', [
      { type: 'x', data: 1 },
      { type: 'x', data: 2 },
    ]);
    const p = await startProjection({ journal: j, name: 'totals', handle });
    await j.append('b', [{ type: 'x', data: 5 }]);
    await p.caughtUp();
    expect(Object.fromEntries(totals)).toEqual({ a: 3, b: 5 });
    await p.close();
    await j.append('a', [{ type: 'x', data: 10 }]);
    const resumed = await startProjection({ journal: j, name: 'totals', handle });
    await resumed.caughtUp();
    expect(Object.fromEntries(totals)).toEqual({ a: 13, b: 5 });
    await resumed.close();
    await expect(
      startProjection({ journal: j, name: 'x', handle, transactional: true }),
    ).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
    });
    await expect(startProjection({ journal: j, name: '', handle })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
    });
  });

  it('keeps a search index in sync with memory events', async () => {
    const j = await journal();
    const index = embeddedSearchIndex();
    const p = await startSearchProjection({
      journal: j,
      name: 'recall',
      index,
      toIndex: (e) => {
        const data = e.data as { id: string; text?: string };
        if (e.type === 'remembered')
          return { upsert: [{ id: data.id, text: data.text!, fields: { agent: e.stream } }] };
        if (e.type === 'forgotten') return { remove: [data.id] };
        return undefined;
      },
    });
    await j.append('agent-1', [
      { type: 'remembered', data: { id: 'm1', text: 'the deployment failed on Tuesday' } },
      { type: 'remembered', data: { id: 'm2', text: 'the customer prefers email' } },
      { type: 'noted', data: {} },
    ]);
    await j.append('agent-2', [
      { type: 'remembered', data: { id: 'm3', text: 'deployments need approval' } },
    ]);
    await p.caughtUp();
    expect((await index.search('deploy')).map((h) => h.id).sort()).toEqual(['m1', 'm3']);
    expect((await index.search('deploy', { filter: { agent: 'agent-2' } })).map((h) => h.id)).toEqual(['m3']);
    await j.append('agent-1', [{ type: 'forgotten', data: { id: 'm1' } }]);
    await p.caughtUp();
    expect((await index.search('deploy')).map((h) => h.id)).toEqual(['m3']);
    await p.close();
  });
});
