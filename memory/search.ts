import MiniSearch from 'minisearch';
import { invalidOption, TroupeError } from '../protocols/index.js';
import { closeableOnce } from '../runtime/internal.js';

/** The value of a filterable field of a {@link SearchDocument}. */
export type SearchFieldValue = string | number | boolean;

/**
 * A document of a search index: an id, the text to search, and fields to filter on.
 *
 * Only `text` is searched; `fields` are matched by equality through {@link SearchOptions.filter}.
 * Field values must be strings, finite numbers or booleans (`-0` is stored as `0`).
 *
 * @example
 * ```ts
 * const doc: SearchDocument = { id: 'note/42', text: 'Deployed v2 to staging', fields: { agent: 'ops', kind: 'note' } };
 * ```
 */
export interface SearchDocument {
  /** Non-empty; unique within an index. Any characters, including `/`, spaces and unicode. */
  readonly id: string;
  /** The text searched by word. May be empty. */
  readonly text: string;
  /** Values to filter on; not searched. */
  readonly fields?: Readonly<Record<string, SearchFieldValue>>;
}

/** One result of {@link SearchIndex.search}. */
export interface SearchHit {
  /** The id of the matching document. */
  readonly id: string;
  /**
   * Relevance, higher is better. Comparable only within one result list and one adapter (the embedded
   * index gives an unbounded BM25-like score, Meilisearch a ranking score in [0, 1]).
   */
  readonly score: number;
  /** The document as it was upserted (`id`, `text` and `fields`, or no `fields` if it had none). */
  readonly document: SearchDocument;
}

/** Options of {@link SearchIndex.search}. */
export interface SearchOptions {
  /** Maximum number of hits, a positive integer. Defaults to 10. */
  readonly limit?: number;
  /**
   * Keeps only documents whose `fields` equal every entry (AND). An empty object filters nothing.
   * Adapters may restrict the keys (Meilisearch: only keys declared `filterable`).
   */
  readonly filter?: Readonly<Record<string, SearchFieldValue>>;
}

/**
 * The port of a full-text search index for agent memory. Adapters: {@link embeddedSearchIndex}
 * (in-process) and `meilisearchIndex` (a Meilisearch server). Every method is asynchronous and reports
 * failures by rejecting with a {@link TroupeError}:
 *
 * - `ERR_VALIDATION` for a malformed document, id or query;
 * - `ERR_INVALID_OPTION` for a bad {@link SearchOptions} entry;
 * - `ERR_ILLEGAL_STATE` once the index is closed;
 * - `ERR_SEARCH_UNAVAILABLE` when a remote index cannot be reached or refuses a request.
 *
 * @example
 * ```ts
 * const index = embeddedSearchIndex();
 * await index.upsert([{ id: 'a', text: 'deployment of the billing service', fields: { agent: 'ops' } }]);
 * const hits = await index.search('deploy', { filter: { agent: 'ops' }, limit: 5 });
 * // hits[0].document.id === 'a'
 * await index.close();
 * ```
 */
export interface SearchIndex {
  /**
   * Adds documents, replacing any stored document with the same id (wholly: fields it no longer has
   * are gone). Within one call the last document with an id wins. The whole batch is validated
   * before anything is written, so a bad document leaves the index unchanged.
   */
  upsert(documents: readonly SearchDocument[]): Promise<void>;
  /** Removes the documents with these ids; unknown ids are ignored. */
  remove(ids: readonly string[]): Promise<void>;
  /**
   * Finds documents whose text matches the words of `query` (case-insensitive; the last word also
   * matches as a prefix; small typos are tolerated), best first. A query without any letter or digit
   * returns `[]`.
   */
  search(query: string, options?: SearchOptions): Promise<SearchHit[]>;
  /** Removes every document. */
  clear(): Promise<void>;
  /**
   * Releases the index; later calls reject with `ERR_ILLEGAL_STATE`. `drain()` is the same (calls
   * already made complete). Idempotent.
   */
  close(): Promise<void>;
  drain(): Promise<void>;
  closed(): Promise<Error | undefined>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of {@link embeddedSearchIndex}. */
export interface EmbeddedSearchIndexOptions {
  /**
   * Typo tolerance: a fraction of each query term's length (0.2 allows one edit in a 5-letter word),
   * or, from 1 up, a fixed edit distance. 0 disables it. Defaults to 0.2.
   */
  readonly fuzzy?: number;
  /** Whether the last query term also matches as a prefix (`deplo` finds `deployment`). Defaults to true. */
  readonly prefix?: boolean;
}

/**
 * An in-process {@link SearchIndex} backed by MiniSearch: nothing leaves the process and nothing is
 * persisted. Documents are searched by the words of their `text` (BM25 ranking; a document matching
 * more query terms ranks higher), filtered by strict equality (`===`) on `fields`.
 *
 * @param options - `fuzzy` (default 0.2) and `prefix` (default true); see {@link EmbeddedSearchIndexOptions}.
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad option.
 *
 * @example
 * ```ts
 * const index = embeddedSearchIndex({ fuzzy: 0 });
 * await index.upsert([{ id: 'm1', text: 'User prefers dark mode', fields: { kind: 'preference' } }]);
 * const [best] = await index.search('dark', { filter: { kind: 'preference' } });
 * ```
 */
export function embeddedSearchIndex(options: EmbeddedSearchIndexOptions = {}): SearchIndex {
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', 'must be an object', options);
  }
  const fuzzy = options.fuzzy ?? 0.2;
  if (typeof fuzzy !== 'number' || !Number.isFinite(fuzzy) || fuzzy < 0) {
    throw invalidOption('fuzzy', 'must be a finite number >= 0', fuzzy);
  }
  const prefix = options.prefix ?? true;
  if (typeof prefix !== 'boolean') throw invalidOption('prefix', 'must be a boolean', prefix);

  // MiniSearch keeps only the inverted index; the documents live here so hits return them exactly.
  const documents = new Map<string, SearchDocument>();
  const mini = new MiniSearch<SearchDocument>({
    idField: 'id',
    fields: ['text'],
    storeFields: [],
    searchOptions: {
      combineWith: 'OR',
      fuzzy: fuzzy === 0 ? false : fuzzy,
      // Only the last term may be unfinished while someone types; prefixing every term adds noise.
      prefix: prefix ? (_term, index, terms) => index === terms.length - 1 : false,
    },
  });
  let closed = false;

  const assertOpen = (): void => {
    if (closed) throw new TroupeError('ERR_ILLEGAL_STATE', 'The search index is closed');
  };

  return {
    async upsert(batch) {
      assertOpen();
      const valid = validateSearchDocuments(batch);
      for (const document of valid) {
        if (mini.has(document.id)) mini.discard(document.id);
        mini.add(document);
        documents.set(document.id, document);
      }
    },

    async remove(ids) {
      assertOpen();
      for (const id of validateSearchIds(ids)) {
        if (!documents.delete(id)) continue;
        mini.discard(id);
      }
    },

    async search(query, searchOptions) {
      assertOpen();
      validateSearchQuery(query);
      const { limit, filter } = validateSearchOptions(searchOptions);
      if (!hasSearchableTerms(query)) return [];
      const results = mini.search(query, {
        ...(filter === undefined
          ? {}
          : { filter: (result) => matchesFilter(documents.get(result.id as string), filter) }),
      });
      const hits: SearchHit[] = [];
      for (const result of results) {
        if (hits.length >= limit) break;
        const document = documents.get(result.id as string);
        if (document !== undefined) hits.push({ id: document.id, score: result.score, document });
      }
      return hits;
    },

    async clear() {
      assertOpen();
      mini.removeAll();
      documents.clear();
    },

    ...closeableOnce(() => {
      closed = true;
      mini.removeAll();
      documents.clear();
    }),
  };
}

// The checks below are shared by both adapters; exported for `meilisearch.ts`, not from the barrel.

/** The default of {@link SearchOptions.limit}. @internal */
export const DEFAULT_SEARCH_LIMIT = 10;

/**
 * Checks a batch for {@link SearchIndex.upsert} and returns frozen copies holding only `id`, `text`
 * and `fields` (so later mutation by the caller cannot reach the index).
 *
 * @throws TroupeError `ERR_VALIDATION` naming the first bad document.
 * @internal
 */
export function validateSearchDocuments(documents: unknown): SearchDocument[] {
  if (!Array.isArray(documents)) {
    throw new TroupeError('ERR_VALIDATION', 'upsert expects an array of documents', {
      details: { path: '' },
    });
  }
  return documents.map((document: unknown, index): SearchDocument => {
    const bad = (problem: string, path = ''): TroupeError =>
      new TroupeError('ERR_VALIDATION', `Search document ${index}: ${problem}`, {
        details: { path: `${index}${path}` },
      });
    if (typeof document !== 'object' || document === null) throw bad('must be an object');
    const { id, text, fields } = document as Record<string, unknown>;
    if (typeof id !== 'string' || id.length === 0) throw bad('`id` must be a non-empty string', '.id');
    if (typeof text !== 'string') throw bad('`text` must be a string', '.text');
    if (fields === undefined) return Object.freeze({ id, text });
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
      throw bad('`fields` must be an object', '.fields');
    }
    const copy: Record<string, SearchFieldValue> = {};
    for (const [key, value] of Object.entries(fields)) {
      if (key.length === 0) throw bad('field names must be non-empty', '.fields');
      if (typeof value === 'number') {
        if (!Number.isFinite(value)) throw bad(`field "${key}" must be a finite number`, `.fields.${key}`);
        // JSON (and so any remote adapter) cannot carry -0; store 0 everywhere so adapters agree.
        copy[key] = value === 0 ? 0 : value;
      } else if (typeof value === 'string' || typeof value === 'boolean') {
        copy[key] = value;
      } else {
        throw bad(`field "${key}" must be a string, a number or a boolean`, `.fields.${key}`);
      }
    }
    return Object.freeze({ id, text, fields: Object.freeze(copy) });
  });
}

/**
 * Checks the ids of {@link SearchIndex.remove}.
 *
 * @throws TroupeError `ERR_VALIDATION` when `ids` is not an array of strings.
 * @internal
 */
export function validateSearchIds(ids: unknown): string[] {
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
    throw new TroupeError('ERR_VALIDATION', 'remove expects an array of string ids', {
      details: { path: '' },
    });
  }
  return ids as string[];
}

/**
 * Checks the query of {@link SearchIndex.search}.
 *
 * @throws TroupeError `ERR_VALIDATION` when it is not a string.
 * @internal
 */
export function validateSearchQuery(query: unknown): asserts query is string {
  if (typeof query !== 'string') {
    throw new TroupeError('ERR_VALIDATION', 'The search query must be a string', { details: { path: '' } });
  }
}

/**
 * Checks {@link SearchOptions} and applies the defaults. An empty filter becomes `undefined`.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad `limit` or `filter`.
 * @internal
 */
export function validateSearchOptions(options: SearchOptions | undefined): {
  limit: number;
  filter: Readonly<Record<string, SearchFieldValue>> | undefined;
} {
  if (options === undefined) return { limit: DEFAULT_SEARCH_LIMIT, filter: undefined };
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', 'must be an object', options);
  }
  const limit = options.limit ?? DEFAULT_SEARCH_LIMIT;
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1) {
    throw invalidOption('limit', 'must be a positive integer', limit);
  }
  const filter = options.filter;
  if (filter === undefined) return { limit, filter: undefined };
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw invalidOption('filter', 'must be an object of field values', filter);
  }
  const entries = Object.entries(filter);
  for (const [key, value] of entries) {
    const ok =
      typeof value === 'string' ||
      typeof value === 'boolean' ||
      (typeof value === 'number' && Number.isFinite(value));
    if (!ok) throw invalidOption('filter', `"${key}" must be a string, a finite number or a boolean`, value);
  }
  return { limit, filter: entries.length === 0 ? undefined : filter };
}

/**
 * Whether a query has a word to look for. Without this, a remote engine would treat a blank query
 * as "match everything" while the embedded one finds nothing.
 * @internal
 */
export function hasSearchableTerms(query: string): boolean {
  return /[\p{L}\p{N}]/u.test(query);
}

function matchesFilter(
  document: SearchDocument | undefined,
  filter: Readonly<Record<string, SearchFieldValue>>,
): boolean {
  if (document === undefined) return false;
  const fields = document.fields;
  if (fields === undefined) return false;
  for (const [key, value] of Object.entries(filter)) {
    if (!Object.hasOwn(fields, key) || fields[key] !== value) return false;
  }
  return true;
}
