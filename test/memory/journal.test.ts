/** Every journal adapter against the one contract: in-memory, PGlite (in memory and on disk), Postgres. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inMemoryJournal, pgliteJournal, postgresJournal } from '../../memory/index.js';
import { SimulatedClock } from '../../runtime/testkit/index.js';
import { PostgresServer } from '../harness/postgres.js';
import { journalContract } from './journal-contract.js';

let server: PostgresServer;
let dir: string;
// One PGlite each (its start is an initdb, about two seconds); each test gets its own table prefix.
let inMemory: PGlite;
let onDisk: PGlite;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'troupe-pglite-'));
  [server, inMemory, onDisk] = await Promise.all([
    PostgresServer.fromEnvironment(),
    PGlite.create('memory://'),
    PGlite.create(join(dir, 'db')),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([server?.dispose(), inMemory?.close(), onDisk?.close()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

let n = 0;
const prefix = () => `c${process.pid}_${++n}_`;

journalContract('in-memory', async () => inMemoryJournal());
journalContract('PGlite in memory', () => pgliteJournal({ db: inMemory, prefix: prefix() }));
journalContract('PGlite on disk', () => pgliteJournal({ db: onDisk, prefix: prefix() }));
journalContract('Postgres', () => postgresJournal({ connectionString: server.url, prefix: prefix() }));

describe('a journal on a simulated clock', () => {
  it('stamps createdAt with its wall time, and polls on it only while subscribed', async () => {
    const clock = new SimulatedClock({ epochMs: Date.UTC(2030, 0, 1) });
    const journal = inMemoryJournal({ clock, pollMs: 50 });
    await clock.advance(1234);
    await journal.append('s', [{ type: 'a', data: 1 }]);
    await journal.saveSnapshot('s', 1, { n: 1 });
    const [event] = await journal.readStream('s');
    expect(event!.createdAt).toBe(Date.UTC(2030, 0, 1) + 1234);
    expect((await journal.loadSnapshot('s'))!.createdAt).toBe(Date.UTC(2030, 0, 1) + 1234);
    expect(clock.pendingTimers).toBe(0);
    const subscription = journal.subscribe().subscribe(() => {});
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(500);
    expect(clock.pendingTimers).toBe(1);
    subscription.unsubscribe();
    expect(clock.pendingTimers).toBe(0);
    await journal.close();
  });
});
