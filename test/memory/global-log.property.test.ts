/**
 * Property: under random interleavings of concurrent appends from many writers (separate journals,
 * separate connections, plus transactions that take their id early and commit late), a live reader
 * of the global log sees no gap and no duplicate: every acknowledged event exactly once, each stream
 * in version order, and the same order as a catch-up read afterwards. Replay with FC_SEED=<seed>.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { postgresJournal, type SqlJournal, type StoredEvent } from '../../index.js';
import { propertySeed, seeded } from '../harness/fast-check.js';
import { PostgresServer } from '../harness/postgres.js';

const SEED = propertySeed(Date.now() % 2 ** 31);

let server: PostgresServer;
let raw: pg.Pool;
beforeAll(async () => {
  server = await PostgresServer.fromEnvironment();
  raw = new pg.Pool({ connectionString: server.url, max: 6 });
}, 60_000);
afterAll(async () => {
  await raw?.end();
  await server?.dispose();
});

/** One step of a writer: an append through the journal, or a late-committing raw transaction. */
type Step =
  | { kind: 'append'; stream: number; shared: boolean; wait: boolean; events: number; pauseMs: number }
  | { kind: 'late'; holdMs: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      stream: fc.nat(5),
      // Streams every writer appends to, and appends not awaited before the next: batches of one
      // journal and of several race on one stream, through the fast and the locked path.
      shared: fc.boolean(),
      wait: fc.boolean(),
      events: fc.integer({ min: 1, max: 3 }),
      pauseMs: fc.nat(3),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('late' as const), holdMs: fc.integer({ min: 1, max: 40 }) }),
  },
);
const planArb = fc.array(fc.array(stepArb, { minLength: 1, maxLength: 12 }), { minLength: 2, maxLength: 5 });

let run = 0;

it('a live reader of the global log sees every acknowledged event exactly once, with no gap', async () => {
  await fc.assert(
    fc.asyncProperty(planArb, async (plan) => {
      const prefix = `gl${process.pid}_${++run}_`;
      const writers: SqlJournal[] = [];
      for (let i = 0; i < plan.length; i++) {
        writers.push(await postgresJournal({ connectionString: server.url, prefix, poolSize: 2 }));
      }
      const reader = await postgresJournal({ connectionString: server.url, prefix, pollMs: 20 });
      const seen: StoredEvent[] = [];
      const subscription = reader.subscribe({ batchSize: 7 }).subscribe((e) => seen.push(e));
      const acked = new Set<string>();
      const unawaited: Promise<void>[] = [];
      let late = 0;
      try {
        await Promise.all(
          plan.map(async (steps, w) => {
            for (const step of steps) {
              if (step.kind === 'append') {
                const stream = step.shared ? `shared-s${step.stream}` : `w${w}-s${step.stream}`;
                const events = Array.from({ length: step.events }, (_, i) => ({ type: 'e', data: { w, i } }));
                // 'any' appends: whatever the races, none may fail.
                const appended = writers[w]!.append(stream, events).then((result) => {
                  for (let v = result.fromVersion; v <= result.toVersion; v++) acked.add(`${stream}@${v}`);
                });
                if (step.wait) await appended;
                else unawaited.push(appended);
                // The generated schedule's pause between steps: the races it makes are the test.
                await new Promise((r) => setTimeout(r, step.pauseMs));
              } else {
                // Takes its transaction id now and commits after later transactions did.
                const stream = `late-${w}-${++late}`;
                const client = await raw.connect();
                try {
                  await client.query('BEGIN');
                  await client.query('SELECT pg_current_xact_id()');
                  // The generated schedule's time a transaction stays open: the window under test.
                  await new Promise((r) => setTimeout(r, step.holdMs));
                  await client.query(
                    `INSERT INTO ${prefix}events (stream_id, version, type, data) VALUES ($1, 1, 'late', '{}')`,
                    [stream],
                  );
                  await client.query('COMMIT');
                } finally {
                  client.release();
                }
                acked.add(`${stream}@1`);
              }
            }
          }),
        );
        await Promise.all(unawaited);
        // On a timeout the assertions below say what is missing.
        await vi
          .waitFor(() => expect(seen.length).toBeGreaterThanOrEqual(acked.size), {
            timeout: 10_000,
            interval: 5,
          })
          .catch(() => {});
        const keys = seen.map((e) => `${e.stream}@${e.version}`);
        expect(new Set(keys).size, 'no duplicates').toBe(keys.length);
        expect(
          [...acked].filter((k) => !keys.includes(k)),
          'acknowledged but never read',
        ).toEqual([]);
        expect(keys.length).toBe(acked.size);
        const versions = new Map<string, number>();
        for (const e of seen) {
          expect(e.version, `${e.stream} in version order`).toBe((versions.get(e.stream) ?? 0) + 1);
          versions.set(e.stream, e.version);
        }
        const catchUp = await reader.readAll({ limit: 10_000 });
        expect(catchUp.map((e) => `${e.stream}@${e.version}`)).toEqual(keys);
      } finally {
        subscription.unsubscribe();
        await Promise.all([...writers, reader].map((j) => j.close()));
      }
    }),
    seeded('global log property', SEED, 12),
  );
}, 240_000);
