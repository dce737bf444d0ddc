/**
 * The search-index contract, run against each adapter: the embedded one always, Meilisearch when
 * `MEILISEARCH_URL` names a server (with `MEILISEARCH_KEY` as its API key, if it needs one).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Meilisearch } from 'meilisearch';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { meilisearchIndex } from '../../memory/meilisearch.js';
import { embeddedSearchIndex, type SearchIndex } from '../../memory/search.js';
import { TroupeError } from '../../protocols/index.js';
import { searchIndexContract } from './search-contract.js';

searchIndexContract('search index contract: embedded (MiniSearch)', async () => embeddedSearchIndex());

const meiliUrl = process.env.MEILISEARCH_URL;
const meiliKey = process.env.MEILISEARCH_KEY;

const noMeilisearch = meiliUrl === undefined || meiliUrl === '';
if (noMeilisearch) {
  console.warn('search: MEILISEARCH_URL is not set; the Meilisearch run of the search contract is skipped');
}

describe.skipIf(noMeilisearch)('with MEILISEARCH_URL', () => {
  // One server-side index for the run, emptied before each test, then deleted.
  const uid = `troupe-test-${randomUUID()}`;
  const url = meiliUrl ?? '';
  searchIndexContract('search index contract: Meilisearch', async () => {
    const index = meilisearchIndex({
      url,
      ...(meiliKey === undefined ? {} : { apiKey: meiliKey }),
      index: uid,
      filterable: ['agent', 'kind'],
    });
    await index.clear();
    return index;
  });
  afterAll(async () => {
    const client = new Meilisearch({ host: url, ...(meiliKey === undefined ? {} : { apiKey: meiliKey }) });
    await client.deleteIndex(uid).waitTask();
  });
});

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return TroupeError.is(error) ? error.code : `not a TroupeError: ${String(error)}`;
  }
  return undefined;
}

describe('meilisearchIndex without a server', () => {
  const sockets = new Set<Socket>();
  let silent: Server | undefined;

  afterEach(async () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await new Promise<void>((resolve) => (silent ? silent.close(() => resolve()) : resolve()));
    silent = undefined;
  });

  it('rejects every call with ERR_SEARCH_UNAVAILABLE when the server is unreachable, cause chained', async () => {
    const index: SearchIndex = meilisearchIndex({
      url: 'http://127.0.0.1:1',
      index: 'troupe-unreachable',
      filterable: ['agent'],
      timeoutMs: 500,
    });
    const error = await index.search('anything').catch((thrown: unknown) => thrown);
    expect(TroupeError.is(error, 'ERR_SEARCH_UNAVAILABLE')).toBe(true);
    expect((error as TroupeError).cause).toBeInstanceOf(Error);
    expect(await codeOf(index.upsert([{ id: 'a', text: 'alpha' }]))).toBe('ERR_SEARCH_UNAVAILABLE');
    expect(await codeOf(index.remove(['a']))).toBe('ERR_SEARCH_UNAVAILABLE');
    expect(await codeOf(index.clear())).toBe('ERR_SEARCH_UNAVAILABLE');
    // A failed set-up is not cached as success: the next call tries again and fails again.
    expect(await codeOf(index.search('again', { filter: { agent: 'x' } }))).toBe('ERR_SEARCH_UNAVAILABLE');
    await index.close();
    expect(await codeOf(index.search('anything'))).toBe('ERR_ILLEGAL_STATE');
  });

  it('gives up after timeoutMs on a server that never answers', async () => {
    silent = createServer((socket) => {
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => silent!.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    const index = meilisearchIndex({
      url: `http://127.0.0.1:${address.port}`,
      index: 'troupe-silent',
      timeoutMs: 200,
    });
    const started = Date.now();
    expect(await codeOf(index.upsert([{ id: 'a', text: 'alpha' }]))).toBe('ERR_SEARCH_UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(5_000);
    await index.close();
  });

  it('checks input before reaching the server', async () => {
    const index = meilisearchIndex({
      url: 'http://127.0.0.1:1',
      index: 'troupe-unreachable',
      filterable: ['agent'],
    });
    const error = await index.search('x', { filter: { colour: 'red' } }).catch((thrown: unknown) => thrown);
    expect(TroupeError.is(error, 'ERR_INVALID_OPTION')).toBe(true);
    expect((error as TroupeError).details?.option).toBe('filter');
    expect(await codeOf(index.search('x', { limit: 0 }))).toBe('ERR_INVALID_OPTION');
    expect(await codeOf(index.upsert([{ id: '', text: 'x' }]))).toBe('ERR_VALIDATION');
    expect(await codeOf(index.upsert([{ id: 'x'.repeat(400), text: 'too long an id' }]))).toBe(
      'ERR_VALIDATION',
    );
    expect(await codeOf(index.upsert([{ id: 'lone \ud800 surrogate', text: 'x' }]))).toBe('ERR_VALIDATION');
    // Nothing to send: no request, so no failure.
    await expect(index.upsert([])).resolves.toBeUndefined();
    await expect(index.remove([])).resolves.toBeUndefined();
    await expect(index.search('  ')).resolves.toEqual([]);
    await index.close();
  });

  it('rejects bad options when created', () => {
    const bad = (options: Record<string, unknown>) => () =>
      meilisearchIndex({ url: 'http://127.0.0.1:1', index: 'ok', ...options } as never);
    for (const options of [
      { url: '' },
      { index: 'has space' },
      { index: '' },
      { filterable: ['fine', 'not.ok'] },
      { timeoutMs: 0 },
    ]) {
      expect(bad(options), JSON.stringify(options)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_OPTION' }) as unknown as Error,
      );
    }
  });
});

describe('embeddedSearchIndex options', () => {
  it('rejects bad options', () => {
    expect(() => embeddedSearchIndex({ fuzzy: -1 })).toThrow(TroupeError);
    expect(() => embeddedSearchIndex({ prefix: 'yes' as unknown as boolean })).toThrow(TroupeError);
  });

  it('turns prefix matching and fuzziness off on request', async () => {
    const strict = embeddedSearchIndex({ prefix: false, fuzzy: 0 });
    await strict.upsert([{ id: 'd', text: 'deployment finished' }]);
    expect(await strict.search('deploy')).toEqual([]);
    expect(await strict.search('deploymant')).toEqual([]);
    expect((await strict.search('deployment')).map((hit) => hit.id)).toEqual(['d']);
    await strict.close();
    const lenient = embeddedSearchIndex();
    await lenient.upsert([{ id: 'd', text: 'deployment finished' }]);
    expect((await lenient.search('deploymant')).map((hit) => hit.id)).toEqual(['d']);
    await lenient.close();
  });

  it('filters by strict equality: a number does not match its string', async () => {
    const index = embeddedSearchIndex();
    await index.upsert([
      { id: 'n', text: 'ticket', fields: { priority: 1 } },
      { id: 's', text: 'ticket', fields: { priority: '1' } },
    ]);
    expect((await index.search('ticket', { filter: { priority: 1 } })).map((hit) => hit.id)).toEqual(['n']);
    await index.close();
  });
});
