/**
 * Memory: the event-sourced journal (in-memory, PGlite, Postgres), persistent actors, projections and
 * full-text recall. This layer arrives with the event-sourcing issue; today it exports nothing.
 * It may import from `protocols`, `runtime` and `supervisors`.
 * @packageDocumentation
 */
export {};
