import { TroupeError } from '../protocols/index.js';
import { type AppendRequest, type AppendResult, MESSAGE_ID_SEPARATOR } from './journal.js';

/** What a store knows of a stream before a batch. */
export interface StreamFacts {
  readonly version: number;
  readonly fence: number | undefined;
}

/** An event row to insert. */
export interface PlannedRow {
  readonly stream: string;
  readonly version: number;
  readonly type: string;
  readonly data: string;
  readonly metadata: string;
  readonly messageId: string | null;
}

/** What a batch does: a result per request, the rows to insert, the new versions and fences. */
export interface BatchPlan {
  readonly results: (AppendResult | TroupeError)[];
  readonly rows: PlannedRow[];
  readonly versions: Map<string, number>;
  readonly fences: Map<string, number>;
}

/** The key of a message id within a stream, for the duplicate lookup. */
export function duplicateKey(stream: string, messageId: string): string {
  return `${stream}${MESSAGE_ID_SEPARATOR}${messageId}`;
}

/**
 * The message id stored on an append's `index`th event: the id itself on the first, the id and the
 * index after a separator that ids may not contain on the others, so unique(stream, message id) holds.
 */
export function rowMessageId(messageId: string | undefined, index: number): string | null {
  if (messageId === undefined) return null;
  return index === 0 ? messageId : `${messageId}${MESSAGE_ID_SEPARATOR}${index}`;
}

/** The index of an event within its append, from its stored message id (0 without one). */
export function indexInAppend(rowMessageId: string | null | undefined): number {
  const at = rowMessageId?.indexOf(MESSAGE_ID_SEPARATOR) ?? -1;
  return at < 0 ? 0 : Number(rowMessageId!.slice(at + 1));
}

/**
 * Decides a batch, request by request in order, as every store must: a stale fence is refused, a
 * known message id is a duplicate (the first append's result), a wrong expected version is a
 * conflict, and anything else appends after the stream's current version. `facts` must hold every
 * stream of the batch (version 0 for a new one); `duplicates` the earlier appends of the batch's
 * message ids, keyed by {@link duplicateKey}.
 */
export function planBatch(
  requests: readonly AppendRequest[],
  facts: ReadonlyMap<string, StreamFacts>,
  duplicates: Map<string, AppendResult>,
): BatchPlan {
  const versions = new Map<string, number>();
  const fences = new Map<string, number>();
  const rows: PlannedRow[] = [];
  const results = requests.map((request): AppendResult | TroupeError => {
    const { stream } = request;
    const known = facts.get(stream);
    const version = versions.get(stream) ?? known?.version ?? 0;
    const fence = fences.get(stream) ?? known?.fence;
    if (request.fence !== undefined && fence !== undefined && request.fence < fence) {
      return new TroupeError(
        'ERR_FENCED',
        `an append to "${stream}" carried fence ${request.fence}, older than ${fence}: the writer's activation is stale`,
        { details: { stream, fence: request.fence, newest: fence } },
      );
    }
    if (request.messageId !== undefined) {
      const earlier = duplicates.get(duplicateKey(stream, request.messageId));
      if (earlier !== undefined) return { ...earlier, duplicate: true };
    }
    if (request.expectedVersion !== undefined && request.expectedVersion !== version) {
      return new TroupeError(
        'ERR_JOURNAL_CONFLICT',
        `"${stream}" is at version ${version}, not the expected ${request.expectedVersion}`,
        { details: { stream, expected: request.expectedVersion, actual: version } },
      );
    }
    if (request.fence !== undefined && (fence === undefined || request.fence > fence)) {
      fences.set(stream, request.fence);
    }
    const result: AppendResult = {
      stream,
      fromVersion: version + 1,
      toVersion: version + request.events.length,
      duplicate: false,
    };
    for (let i = 0; i < request.events.length; i++) {
      const event = request.events[i]!;
      rows.push({
        stream,
        version: version + 1 + i,
        type: event.type,
        data: event.data,
        metadata: event.metadata,
        messageId: rowMessageId(request.messageId, i),
      });
    }
    if (request.events.length > 0) versions.set(stream, result.toVersion);
    if (request.messageId !== undefined && request.events.length > 0) {
      duplicates.set(duplicateKey(stream, request.messageId), result);
    }
    return result;
  });
  return { results, rows, versions, fences };
}
