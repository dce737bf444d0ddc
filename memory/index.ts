/**
 * Memory: the event-sourced journal (in-memory, PGlite, Postgres), persistent actors, projections and
 * full-text recall. It may import from `protocols`, `runtime` and `supervisors`.
 * @packageDocumentation
 */
export type { SnapshotFailedEvent } from './events.js';
export { inMemoryJournal } from './in-memory.js';
export {
  type AppendOptions,
  type AppendResult,
  type Checkpoint,
  type Journal,
  type JournalOptions,
  journalDefaults,
  type NewEvent,
  type Snapshot,
  START,
  type StoredEvent,
  type SubscribeOptions,
  storableText,
  streamPages,
} from './journal.js';
export { type MeilisearchIndexOptions, meilisearchIndex } from './meilisearch.js';
export {
  type CommandHandlers,
  type Effect,
  type PersistentDefinition,
  persistentBehavior,
} from './persistent.js';
export {
  type EventOf,
  type EventSchemas,
  type PersistentStream,
  recoverStream,
  type StreamDefinition,
} from './persistent-stream.js';
export { type PgliteDatabase, type PgliteJournalOptions, pgliteJournal } from './pglite.js';
export { type PostgresJournalOptions, postgresJournal } from './postgres.js';
export {
  type Projection,
  type ProjectionOptions,
  type SearchProjectionOptions,
  startProjection,
  startSearchProjection,
} from './projection.js';
export {
  type EmbeddedSearchIndexOptions,
  embeddedSearchIndex,
  type SearchDocument,
  type SearchFieldValue,
  type SearchHit,
  type SearchIndex,
  type SearchOptions,
} from './search.js';
export {
  type MetricRow,
  SCHEMA_VERSION,
  type SqlExecutor,
  type SqlJournal,
  type SqlJournalOptions,
  type UsageRow,
} from './sql.js';
