import {
  type EnqueuedTaskPromise,
  type Hit,
  type Index,
  Meilisearch,
  type SearchParams,
  type Task,
} from 'meilisearch';
import { invalidOption, TroupeError } from '../protocols/index.js';
import { closeableOnce } from '../runtime/internal.js';
import {
  hasSearchableTerms,
  type SearchDocument,
  type SearchFieldValue,
  type SearchHit,
  type SearchIndex,
  validateSearchDocuments,
  validateSearchIds,
  validateSearchOptions,
  validateSearchQuery,
} from './search.js';

/** Options of {@link meilisearchIndex}. */
export interface MeilisearchIndexOptions {
  /** The server, e.g. `http://127.0.0.1:7700`. */
  readonly url: string;
  /** An API key allowed to manage documents and settings of the index; none for an open server. */
  readonly apiKey?: string;
  /** The index uid: letters, digits, `_` and `-`. Created (primary key `id`) on first use. */
  readonly index: string;
  /**
   * The field names that `SearchOptions.filter` may use (letters, digits, `_` and `-`).
   * Meilisearch only filters on attributes declared beforehand. Defaults to none.
   */
  readonly filterable?: readonly string[];
  /**
   * Time limit of each HTTP request, in ms. Waiting for an indexing task gets this or 30 s, whichever
   * is longer, since indexing a batch may legitimately take a while. Defaults to 5000.
   */
  readonly timeoutMs?: number;
}

/** What this adapter stores in Meilisearch for one {@link SearchDocument}. */
interface StoredDocument {
  /** The document id in base64url: Meilisearch ids allow only `[A-Za-z0-9_-]`. */
  id: string;
  text: string;
  /** Nested rather than spread so field names can never collide with `id` or `text`, and so an absent `fields` stays absent. */
  fields?: Record<string, SearchFieldValue>;
}

const UID = /^[A-Za-z0-9_-]{1,400}$/;
const FIELD_NAME = /^[A-Za-z0-9_-]+$/;
/** Meilisearch's limit on a document id, in bytes (all ASCII here). */
const MAX_STORED_ID = 511;
const MIN_TASK_WAIT_MS = 30_000;

/**
 * A {@link SearchIndex} stored in a Meilisearch server (v1.x), through the `meilisearch` client.
 * Every write waits for its indexing task, so a search after `upsert` resolves sees the new documents.
 *
 * Layout: each document is stored as `{ id: base64url(id), text, fields }`; only `text` is searchable
 * and `fields.<name>` is filterable for each name in `filterable`. The index and its settings are
 * created on first use and checked again after a failure.
 *
 * Differences from `embeddedSearchIndex`: filters compare as Meilisearch does (strings
 * case-insensitively; `1` matches `"1"`), ranking follows Meilisearch's rules (more matched words
 * first, then typos, proximity...), scores are in [0, 1], and an id may take at most 383 bytes of UTF-8.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad option (synchronously). The index's methods reject
 * with `ERR_SEARCH_UNAVAILABLE` (cause chained) when the server is unreachable, times out, refuses a
 * request or fails a task; with `ERR_INVALID_OPTION` when filtering on a name not in `filterable`; and
 * otherwise as {@link SearchIndex} says.
 *
 * @example
 * ```ts
 * const index = meilisearchIndex({ url: 'http://127.0.0.1:7700', apiKey: process.env.MEILI_KEY, index: 'memory', filterable: ['agent'] });
 * await index.upsert([{ id: 'ops/1', text: 'rolled back the deployment', fields: { agent: 'ops' } }]);
 * const hits = await index.search('deploy', { filter: { agent: 'ops' } });
 * ```
 */
export function meilisearchIndex(options: MeilisearchIndexOptions): SearchIndex {
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', 'must be an object', options);
  }
  const { url, apiKey, index: uid } = options;
  if (typeof url !== 'string' || url.length === 0)
    throw invalidOption('url', 'must be a non-empty string', url);
  if (apiKey !== undefined && typeof apiKey !== 'string') {
    // The value is deliberately left out of the error: it is a secret.
    throw invalidOption('apiKey', 'must be a string');
  }
  if (typeof uid !== 'string' || !UID.test(uid)) {
    throw invalidOption('index', 'must be 1 to 400 letters, digits, "_" or "-"', uid);
  }
  const filterable = options.filterable ?? [];
  if (
    !Array.isArray(filterable) ||
    !filterable.every((name) => typeof name === 'string' && FIELD_NAME.test(name))
  ) {
    throw invalidOption(
      'filterable',
      'must be an array of names made of letters, digits, "_" or "-"',
      filterable,
    );
  }
  const timeoutMs = options.timeoutMs ?? 5000;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw invalidOption('timeoutMs', 'must be a positive integer', timeoutMs);
  }

  const client = new Meilisearch({
    host: url,
    ...(apiKey === undefined ? {} : { apiKey }),
    timeout: timeoutMs,
    defaultWaitOptions: { timeout: Math.max(timeoutMs, MIN_TASK_WAIT_MS), interval: 25 },
  });
  const index: Index<StoredDocument> = client.index<StoredDocument>(uid);
  const declared = new Set(filterable);
  let ready: Promise<void> | undefined;
  let closed = false;

  const unavailable = (action: string, error: unknown): TroupeError => {
    if (TroupeError.is(error)) return error;
    const reason = error instanceof Error ? error.message : String(error);
    return new TroupeError(
      'ERR_SEARCH_UNAVAILABLE',
      `Meilisearch ${action} on index "${uid}" failed: ${reason}`,
      {
        cause: error,
        details: { url, index: uid },
      },
    );
  };

  /** Runs a write and waits for its task; a task that did not succeed is a failure of the server. */
  const runTask = async (action: string, enqueue: () => EnqueuedTaskPromise): Promise<Task> => {
    let task: Task;
    try {
      task = await enqueue().waitTask();
    } catch (error) {
      throw unavailable(action, error);
    }
    return task;
  };
  const requireSuccess = (action: string, task: Task): void => {
    if (task.status === 'succeeded') return;
    const reason = task.error?.message ?? `the task ended ${task.status}`;
    throw new TroupeError(
      'ERR_SEARCH_UNAVAILABLE',
      `Meilisearch ${action} on index "${uid}" failed: ${reason}`,
      {
        cause: task.error ?? task,
        details: { url, index: uid, taskUid: task.uid },
      },
    );
  };

  const setUp = async (): Promise<void> => {
    const created = await runTask('index creation', () => client.createIndex(uid, { primaryKey: 'id' }));
    if (created.error?.code !== 'index_already_exists') requireSuccess('index creation', created);
    const settings = await runTask('settings update', () =>
      index.updateSettings({
        searchableAttributes: ['text'],
        filterableAttributes: filterable.map((name) => `fields.${name}`),
      }),
    );
    requireSuccess('settings update', settings);
  };

  /** Checks the state, then sets the index up once; a failed set-up is retried by the next call. */
  const open = async (): Promise<void> => {
    if (closed) throw new TroupeError('ERR_ILLEGAL_STATE', `The search index "${uid}" is closed`);
    ready ??= setUp().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    await ready;
  };
  const assertOpen = (): void => {
    if (closed) throw new TroupeError('ERR_ILLEGAL_STATE', `The search index "${uid}" is closed`);
  };

  return {
    async upsert(batch) {
      assertOpen();
      const stored = validateSearchDocuments(batch).map((document, position): StoredDocument => {
        const id = encodeId(document.id);
        if (decodeId(id) !== document.id) {
          throw new TroupeError(
            'ERR_VALIDATION',
            `Search document ${position}: \`id\` is not well-formed unicode`,
            {
              details: { path: `${position}.id` },
            },
          );
        }
        if (id.length > MAX_STORED_ID) {
          throw new TroupeError(
            'ERR_VALIDATION',
            `Search document ${position}: \`id\` is too long for Meilisearch (at most 383 bytes of UTF-8)`,
            { details: { path: `${position}.id` } },
          );
        }
        return document.fields === undefined
          ? { id, text: document.text }
          : { id, text: document.text, fields: { ...document.fields } };
      });
      if (stored.length === 0) return;
      await open();
      requireSuccess('upsert', await runTask('upsert', () => index.addDocuments(stored)));
    },

    async remove(ids) {
      assertOpen();
      const encoded = validateSearchIds(ids).map(encodeId);
      if (encoded.length === 0) return;
      await open();
      requireSuccess('remove', await runTask('remove', () => index.deleteDocuments(encoded)));
    },

    async search(query, searchOptions) {
      assertOpen();
      validateSearchQuery(query);
      const { limit, filter } = validateSearchOptions(searchOptions);
      const expression = filter === undefined ? undefined : filterExpression(filter, declared);
      if (!hasSearchableTerms(query)) return [];
      await open();
      const params: SearchParams = {
        limit,
        showRankingScore: true,
        attributesToRetrieve: ['id', 'text', 'fields'],
        ...(expression === undefined ? {} : { filter: expression }),
      };
      let hits: Hit<StoredDocument>[];
      try {
        ({ hits } = await index.search<StoredDocument>(query, params));
      } catch (error) {
        throw unavailable('search', error);
      }
      const results: SearchHit[] = [];
      for (const hit of hits) {
        const document = toSearchDocument(hit);
        // Documents written by something else than this adapter cannot be returned faithfully.
        if (document !== undefined)
          results.push({ id: document.id, score: hit._rankingScore ?? 0, document });
      }
      return results;
    },

    async clear() {
      await open();
      requireSuccess('clear', await runTask('clear', () => index.deleteAllDocuments()));
    },

    // The client holds no connection of its own (it uses fetch), so closing only refuses later calls.
    ...closeableOnce(() => {
      closed = true;
    }),
  };
}

function encodeId(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

function decodeId(stored: string): string {
  return Buffer.from(stored, 'base64url').toString('utf8');
}

function toSearchDocument(hit: Hit<StoredDocument>): SearchDocument | undefined {
  // Checked, not trusted: the index may hold documents that another program wrote.
  const { id: stored, text, fields } = hit as Partial<Record<keyof StoredDocument, unknown>>;
  if (typeof stored !== 'string' || typeof text !== 'string') return undefined;
  const id = decodeId(stored);
  if (id.length === 0 || encodeId(id) !== stored) return undefined;
  if (fields === undefined) return { id, text };
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return undefined;
  return { id, text, fields: fields as Record<string, SearchFieldValue> };
}

/**
 * Builds `fields.a = "x" AND fields.b = "y"`. Every value is quoted: Meilisearch compares a quoted
 * number with numbers too, and quoting keeps words such as `AND` or `NULL` from being read as syntax.
 */
function filterExpression(
  filter: Readonly<Record<string, SearchFieldValue>>,
  declared: ReadonlySet<string>,
): string {
  return Object.entries(filter)
    .map(([key, value]) => {
      if (!declared.has(key)) {
        throw invalidOption(
          'filter',
          `"${key}" is not filterable; declare it in the \`filterable\` option of meilisearchIndex`,
          key,
        );
      }
      return `fields.${key} = ${quote(String(value))}`;
    })
    .join(' AND ');
}

/** A double-quoted filter value: the parser unescapes `\\` and `\"`, so escape both. */
function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (character) => `\\${character}`)}"`;
}
