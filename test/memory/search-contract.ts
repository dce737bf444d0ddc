/**
 * The contract every {@link SearchIndex} adapter passes. An adapter's test file calls
 * {@link searchIndexContract} with a factory; adapters that filter only on declared names must be
 * created with `filterable: ['agent', 'kind']`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SearchDocument, SearchHit, SearchIndex } from '../../memory/search.js';
import { TroupeError } from '../../protocols/index.js';

const ids = (hits: readonly SearchHit[]): string[] => hits.map((hit) => hit.id);

/** Rejects with a TroupeError carrying `code`; a plain rejection or another code fails the test. */
async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error, `expected a rejection with ${code}`).toBeInstanceOf(TroupeError);
  expect((error as TroupeError).code).toBe(code);
}

/**
 * Declares `describe(name)` with the tests of the {@link SearchIndex} contract. `make` returns a
 * fresh, empty index for each test (it may reuse a server-side index if it clears it first); the
 * contract closes it after the test.
 *
 * @example
 * ```ts
 * searchIndexContract('embedded', async () => embeddedSearchIndex());
 * ```
 */
export function searchIndexContract(name: string, make: () => Promise<SearchIndex>): void {
  describe(name, () => {
    let index: SearchIndex;

    beforeEach(async () => {
      index = await make();
    });

    afterEach(async () => {
      await index.close();
    });

    it('finds an upserted document by a word of its text, case-insensitively', async () => {
      await index.upsert([
        { id: 'a', text: 'The Kubernetes cluster restarted overnight' },
        { id: 'b', text: 'Lunch order: falafel and hummus' },
      ]);
      expect(ids(await index.search('kubernetes'))).toEqual(['a']);
      expect(ids(await index.search('FALAFEL'))).toEqual(['b']);
      expect(await index.search('saxophone')).toEqual([]);
    });

    it('matches the last word as a prefix, so "deploy" finds "deployment"', async () => {
      await index.upsert([
        { id: 'd', text: 'The deployment to production succeeded' },
        { id: 'o', text: 'Weekly grocery shopping list' },
      ]);
      expect(ids(await index.search('deploy'))).toEqual(['d']);
      expect(ids(await index.search('deplo'))).toEqual(['d']);
      expect(ids(await index.search('produc'))).toEqual(['d']);
    });

    it('replaces a document upserted again with the same id', async () => {
      await index.upsert([{ id: 'x', text: 'zebra migration season', fields: { agent: 'alice' } }]);
      await index.upsert([{ id: 'x', text: 'volcano eruption warning' }]);
      expect(await index.search('zebra')).toEqual([]);
      const hits = await index.search('volcano');
      expect(ids(hits)).toEqual(['x']);
      // Replaced wholly: the fields of the old version are gone too.
      expect(hits[0]!.document).toStrictEqual({ id: 'x', text: 'volcano eruption warning' });
      expect(await index.search('volcano', { filter: { agent: 'alice' } })).toEqual([]);
    });

    it('keeps the last of several documents with one id in a batch', async () => {
      await index.upsert([
        { id: 'dup', text: 'first penguin' },
        { id: 'dup', text: 'second penguin' },
      ]);
      const hits = await index.search('penguin');
      expect(hits.map((hit) => hit.document.text)).toEqual(['second penguin']);
    });

    it('removes documents by id and ignores unknown ids', async () => {
      await index.upsert([
        { id: 'r1', text: 'orchid greenhouse humidity' },
        { id: 'r2', text: 'orchid fertiliser schedule' },
      ]);
      await index.remove(['r1', 'never-stored']);
      expect(ids(await index.search('orchid'))).toEqual(['r2']);
      await index.remove([]);
      expect(ids(await index.search('orchid'))).toEqual(['r2']);
    });

    it('filters on fields by equality, all entries having to match', async () => {
      await index.upsert([
        { id: 'f1', text: 'weather report sunny', fields: { agent: 'alice', kind: 'note' } },
        { id: 'f2', text: 'weather report rainy', fields: { agent: 'alice', kind: 'fact' } },
        { id: 'f3', text: 'weather report windy', fields: { agent: 'bob', kind: 'fact' } },
        { id: 'f4', text: 'weather report foggy' },
      ]);
      expect(ids(await index.search('weather', { filter: { agent: 'alice' } })).sort()).toEqual(['f1', 'f2']);
      expect(ids(await index.search('weather', { filter: { kind: 'fact' } })).sort()).toEqual(['f2', 'f3']);
      expect(ids(await index.search('weather', { filter: { agent: 'alice', kind: 'fact' } }))).toEqual([
        'f2',
      ]);
      expect(await index.search('weather', { filter: { agent: 'carol' } })).toEqual([]);
      expect(ids(await index.search('weather', { filter: {} })).sort()).toEqual(['f1', 'f2', 'f3', 'f4']);
    });

    it('returns at most `limit` hits, 10 by default', async () => {
      const docs: SearchDocument[] = Array.from({ length: 12 }, (_, n) => ({
        id: `l${n}`,
        text: `lantern number ${n}`,
      }));
      await index.upsert(docs);
      expect(await index.search('lantern')).toHaveLength(10);
      expect(await index.search('lantern', { limit: 3 })).toHaveLength(3);
      expect(await index.search('lantern', { limit: 50 })).toHaveLength(12);
    });

    it('returns hits whose document is exactly the upserted one', async () => {
      const withFields: SearchDocument = {
        id: 'exact-1',
        text: 'Quarterly budget review: travel costs up 12%',
        fields: { agent: 'alice', kind: 'fact', priority: 3, weight: 0.5, pinned: true, archived: false },
      };
      const bare: SearchDocument = { id: 'exact-2', text: 'Budget spreadsheet shared with finance' };
      const emptyFields: SearchDocument = { id: 'exact-3', text: 'Budget owner is Dana', fields: {} };
      await index.upsert([withFields, bare, emptyFields]);
      const hits = await index.search('budget');
      expect(ids(hits).sort()).toEqual(['exact-1', 'exact-2', 'exact-3']);
      const byId = new Map(hits.map((hit) => [hit.id, hit]));
      expect(byId.get('exact-1')!.document).toStrictEqual(withFields);
      expect(byId.get('exact-2')!.document).toStrictEqual(bare);
      expect(byId.get('exact-3')!.document).toStrictEqual(emptyFields);
      for (const hit of hits) expect(hit.document.id).toBe(hit.id);
    });

    it('ranks a document matching more query terms first, with non-increasing scores', async () => {
      await index.upsert([
        { id: 'one', text: 'restart the payment worker on staging tonight' },
        { id: 'three', text: 'deploy the payment service to production tonight' },
        { id: 'none', text: 'water the office plants every monday morning' },
      ]);
      const hits = await index.search('payment service production');
      expect(ids(hits)).toEqual(['three', 'one']);
      for (const hit of hits) {
        expect(Number.isFinite(hit.score)).toBe(true);
        expect(hit.score).toBeGreaterThan(0);
      }
      expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score);
    });

    it('round-trips ids with "/", ":", spaces and unicode', async () => {
      const odd = [
        'notes/2024-06-01:standup',
        'agent:planner/step 3',
        'ünïcødé 日本語 🚀',
        ' padded ',
        'a+b=c?&#%',
      ];
      await index.upsert(odd.map((id, n) => ({ id, text: `quokka sighting ${n}` })));
      const hits = await index.search('quokka', { limit: 20 });
      expect(ids(hits).sort()).toEqual([...odd].sort());
      for (const hit of hits) expect(hit.document.id).toBe(hit.id);
      await index.remove(['ünïcødé 日本語 🚀', 'notes/2024-06-01:standup']);
      expect(ids(await index.search('quokka', { limit: 20 })).sort()).toEqual(
        ['agent:planner/step 3', ' padded ', 'a+b=c?&#%'].sort(),
      );
    });

    it('clears every document and stays usable', async () => {
      await index.upsert([
        { id: 'c1', text: 'harpsichord lesson' },
        { id: 'c2', text: 'harpsichord tuning' },
      ]);
      await index.clear();
      expect(await index.search('harpsichord')).toEqual([]);
      await index.upsert([{ id: 'c3', text: 'harpsichord recital' }]);
      expect(ids(await index.search('harpsichord'))).toEqual(['c3']);
    });

    it('returns no hits for an empty or wordless query', async () => {
      await index.upsert([{ id: 'e', text: 'anything at all' }]);
      expect(await index.search('')).toEqual([]);
      expect(await index.search('   ')).toEqual([]);
      expect(await index.search(' ?! ')).toEqual([]);
    });

    it('rejects bad documents with ERR_VALIDATION and writes nothing of the batch', async () => {
      const bad = (document: unknown) => index.upsert([document as SearchDocument]);
      await expectCode(bad({ id: '', text: 'empty id' }), 'ERR_VALIDATION');
      await expectCode(bad({ id: 7, text: 'numeric id' }), 'ERR_VALIDATION');
      await expectCode(bad({ text: 'no id' }), 'ERR_VALIDATION');
      await expectCode(bad({ id: 'ok', text: 42 }), 'ERR_VALIDATION');
      await expectCode(bad({ id: 'ok', text: 'bad field', fields: { nested: { a: 1 } } }), 'ERR_VALIDATION');
      await expectCode(bad(null), 'ERR_VALIDATION');
      await expectCode(
        index.upsert([
          { id: 'good', text: 'marmalade recipe' },
          { id: '', text: 'marmalade' },
        ]),
        'ERR_VALIDATION',
      );
      expect(await index.search('marmalade')).toEqual([]);
      await expectCode(index.remove([3 as unknown as string]), 'ERR_VALIDATION');
      await expectCode(index.search(5 as unknown as string), 'ERR_VALIDATION');
    });

    it('rejects a limit that is not a positive integer with ERR_INVALID_OPTION naming `limit`', async () => {
      await index.upsert([{ id: 'k', text: 'kiwi' }]);
      for (const limit of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '3' as unknown as number]) {
        const error = await index.search('kiwi', { limit }).then(
          () => undefined,
          (thrown: unknown) => thrown,
        );
        expect(TroupeError.is(error, 'ERR_INVALID_OPTION'), `limit ${String(limit)}`).toBe(true);
        expect((error as TroupeError).details?.option).toBe('limit');
      }
      expect(ids(await index.search('kiwi', { limit: 1 }))).toEqual(['k']);
    });

    it('closes idempotently and rejects every call after close with ERR_ILLEGAL_STATE', async () => {
      await index.upsert([{ id: 'z', text: 'zeppelin' }]);
      await index.close();
      await expect(index.close()).resolves.toBeUndefined();
      await expect(index.drain()).resolves.toBeUndefined();
      await expect(index.closed()).resolves.toBeUndefined();
      await expectCode(index.search('zeppelin'), 'ERR_ILLEGAL_STATE');
      await expectCode(index.upsert([{ id: 'y', text: 'yacht' }]), 'ERR_ILLEGAL_STATE');
      await expectCode(index.remove(['z']), 'ERR_ILLEGAL_STATE');
      await expectCode(index.clear(), 'ERR_ILLEGAL_STATE');
    });
  });
}
