/**
 * The contract every journal adapter passes: in-memory, PGlite and Postgres run these same tests.
 */
import { firstValueFrom, take, toArray } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Journal, StoredEvent } from '../../memory/index.js';
import { START } from '../../memory/index.js';

const ev = (type: string, data: unknown = {}) => ({ type, data });

export function journalContract(name: string, make: () => Promise<Journal>): void {
  describe(`journal contract: ${name}`, () => {
    const open: Journal[] = [];
    const fresh = async () => {
      const journal = await make();
      open.push(journal);
      return journal;
    };
    afterEach(async () => {
      await Promise.all(open.splice(0).map((j) => j.close()));
    });

    it('appends to a new stream and reads it back in version order, data and metadata intact', async () => {
      const j = await fresh();
      // Astral characters, and a literal backslash-u that only looks like an escape, are fine.
      const data = { text: 'héllo ☃ 😀 \\u0000', nested: { list: [1, 2, { deep: null }] }, n: 1.5 };
      const result = await j.append(
        's-1',
        [ev('a', data), { type: 'b', data: null, metadata: { by: 'me' } }],
        {
          expectedVersion: 0,
          messageId: 'm-1',
        },
      );
      expect(result).toEqual({ stream: 's-1', fromVersion: 1, toVersion: 2, duplicate: false });
      const events = await j.readStream('s-1');
      expect(events.map((e) => [e.version, e.type, e.data, e.metadata])).toEqual([
        [1, 'a', data, {}],
        [2, 'b', null, { by: 'me' }],
      ]);
      expect(events.map((e) => e.messageId)).toEqual(['m-1', 'm-1']);
      expect(events[0]!.createdAt).toBeGreaterThan(Date.now() - 60_000);
      expect(await j.streamVersion('s-1')).toBe(2);
      expect(await j.streamVersion('nothing-here')).toBe(0);
      expect(await j.readStream('nothing-here')).toEqual([]);
    });

    it('refuses an append whose expected version is not the stream version, and appends nothing', async () => {
      const j = await fresh();
      await j.append('s', [ev('a')], { expectedVersion: 0 });
      const error = await j.append('s', [ev('b')], { expectedVersion: 0 }).catch((e) => e);
      expect(error).toMatchObject({
        code: 'ERR_JOURNAL_CONFLICT',
        details: { stream: 's', expected: 0, actual: 1 },
      });
      await expect(j.append('s', [ev('b')], { expectedVersion: 5 })).rejects.toMatchObject({
        code: 'ERR_JOURNAL_CONFLICT',
      });
      expect((await j.readStream('s')).map((e) => e.type)).toEqual(['a']);
      expect(await j.append('s', [ev('c')], { expectedVersion: 1 })).toMatchObject({
        fromVersion: 2,
        toVersion: 2,
      });
    });

    it('is idempotent by message id: a re-append returns the first result and appends nothing', async () => {
      const j = await fresh();
      const first = await j.append('s', [ev('a'), ev('b'), ev('c')], { messageId: 'cmd-1' });
      await j.append('s', [ev('d')], { messageId: 'cmd-2' });
      const again = await j.append('s', [ev('x')], { messageId: 'cmd-1', expectedVersion: 0 });
      expect(again).toEqual({ ...first, duplicate: true });
      expect(again).toMatchObject({ fromVersion: 1, toVersion: 3 });
      expect(await j.streamVersion('s')).toBe(4);
      // The same id in another stream is another message.
      expect(await j.append('t', [ev('a')], { messageId: 'cmd-1' })).toMatchObject({ duplicate: false });
      // An id that merely starts like another one is not a duplicate of it.
      expect(await j.append('s', [ev('e')], { messageId: 'cmd-1#1' })).toMatchObject({ duplicate: false });
    });

    it('reads a stream from a version, with a limit', async () => {
      const j = await fresh();
      await j.append(
        's',
        Array.from({ length: 10 }, (_, i) => ev('e', { i })),
      );
      const part = await j.readStream('s', { fromVersion: 4, limit: 3 });
      expect(part.map((e) => e.version)).toEqual([4, 5, 6]);
      expect(part.map((e) => (e.data as { i: number }).i)).toEqual([3, 4, 5]);
      expect(await j.readStream('s', { fromVersion: 11 })).toEqual([]);
    });

    it('groups appends made in one turn, each with its own result or error', async () => {
      const j = await fresh();
      await j.append('taken', [ev('a')]);
      const settled = await Promise.allSettled([
        j.append('g-1', [ev('a')], { expectedVersion: 0 }),
        j.append('g-2', [ev('a'), ev('b')]),
        j.append('taken', [ev('b')], { expectedVersion: 0 }),
        j.append('g-1', [ev('b')], { expectedVersion: 1 }),
        j.append('g-1', [ev('c')], { messageId: 'once' }),
        j.append('g-1', [ev('c')], { messageId: 'once' }),
      ]);
      const values = settled.map((s) =>
        s.status === 'fulfilled' ? s.value : (s.reason as { code: string }).code,
      );
      expect(values).toEqual([
        { stream: 'g-1', fromVersion: 1, toVersion: 1, duplicate: false },
        { stream: 'g-2', fromVersion: 1, toVersion: 2, duplicate: false },
        'ERR_JOURNAL_CONFLICT',
        { stream: 'g-1', fromVersion: 2, toVersion: 2, duplicate: false },
        { stream: 'g-1', fromVersion: 3, toVersion: 3, duplicate: false },
        { stream: 'g-1', fromVersion: 3, toVersion: 3, duplicate: true },
      ]);
      expect((await j.readStream('g-1')).map((e) => e.type)).toEqual(['a', 'b', 'c']);
      expect(await j.streamVersion('taken')).toBe(1);
    });

    it('reads the global log in order and resumes after a checkpoint without repeating or skipping', async () => {
      const j = await fresh();
      await j.append('x', [ev('x1'), ev('x2')]);
      await j.append('y', [ev('y1')]);
      await j.append('x', [ev('x3')]);
      const all = await j.readAll();
      expect(all.map((e) => e.type)).toEqual(['x1', 'x2', 'y1', 'x3']);
      const firstTwo = await j.readAll({ limit: 2 });
      const rest = await j.readAll({ after: firstTwo[1]!.checkpoint });
      expect([...firstTwo, ...rest].map((e) => e.type)).toEqual(['x1', 'x2', 'y1', 'x3']);
      expect(await j.readAll({ after: all[3]!.checkpoint })).toEqual([]);
    });

    it('subscribes: catches up, then follows new appends; unsubscribing stops it', async () => {
      const j = await fresh();
      await j.append('s', [ev('old-1'), ev('old-2')]);
      const seen: StoredEvent[] = [];
      const subscription = j.subscribe({ batchSize: 1 }).subscribe((e) => seen.push(e));
      await vi.waitFor(() => expect(seen).toHaveLength(2), { interval: 5 });
      await j.append('t', [ev('new-1')]);
      await j.append('s', [ev('new-2')]);
      await vi.waitFor(() => expect(seen).toHaveLength(4), { interval: 5 });
      expect(seen.map((e) => e.type)).toEqual(['old-1', 'old-2', 'new-1', 'new-2']);
      subscription.unsubscribe();
      await j.append('s', [ev('after')]);
      // A subscription from a checkpoint starts after it.
      const later = await firstValueFrom(
        j.subscribe({ after: seen[1]!.checkpoint }).pipe(take(3), toArray()),
      );
      expect(later.map((e) => e.type)).toEqual(['new-1', 'new-2', 'after']);
      // By now 'after' was committed and read by another subscription; the ended one never got it.
      expect(seen).toHaveLength(4);
    });

    it('keeps the latest snapshot and prunes the events it covers when asked', async () => {
      const j = await fresh();
      await j.append(
        's',
        Array.from({ length: 5 }, (_, i) => ev('e', { i })),
      );
      expect(await j.loadSnapshot('s')).toBeUndefined();
      await j.saveSnapshot('s', 3, { total: 3 });
      await j.saveSnapshot('s', 2, { total: 2 });
      expect(await j.loadSnapshot('s')).toMatchObject({ stream: 's', version: 3, state: { total: 3 } });
      expect(await j.pruneToSnapshot('s')).toBe(3);
      expect((await j.readStream('s')).map((e) => e.version)).toEqual([4, 5]);
      expect(await j.streamVersion('s')).toBe(5);
      expect(await j.append('s', [ev('next')], { expectedVersion: 5 })).toMatchObject({ fromVersion: 6 });
      expect(await j.pruneToSnapshot('no-snapshot')).toBe(0);
      // A snapshot of the whole stream prunes all but the newest event, which keeps the version.
      await j.saveSnapshot('s', 6, { total: 6 });
      expect(await j.pruneToSnapshot('s')).toBe(2);
      expect((await j.readStream('s')).map((e) => e.version)).toEqual([6]);
      expect(await j.streamVersion('s')).toBe(6);
      // The newest append stays whole, so a redelivery of it is still known.
      await j.append('s', [ev('x'), ev('y'), ev('z')], { messageId: 'last' });
      await j.saveSnapshot('s', 9, { total: 9 });
      expect(await j.pruneToSnapshot('s')).toBe(1);
      expect((await j.readStream('s')).map((e) => e.version)).toEqual([7, 8, 9]);
      expect(await j.append('s', [ev('x'), ev('y'), ev('z')], { messageId: 'last' })).toEqual({
        stream: 's',
        fromVersion: 7,
        toVersion: 9,
        duplicate: true,
      });
    });

    it('refuses an append whose fence is older than the newest seen for the stream', async () => {
      const j = await fresh();
      await j.append('s', [ev('a')], { fence: 5 });
      const error = await j.append('s', [ev('stale')], { fence: 3 }).catch((e) => e);
      expect(error).toMatchObject({ code: 'ERR_FENCED', details: { stream: 's', fence: 3, newest: 5 } });
      await j.append('s', [ev('b')], { fence: 5 });
      await j.append('s', [ev('c')], { fence: 8 });
      await expect(j.append('s', [ev('stale')], { fence: 5 })).rejects.toMatchObject({ code: 'ERR_FENCED' });
      // Fences are per stream.
      await j.append('other', [ev('a')], { fence: 1 });
      expect((await j.readStream('s')).map((e) => e.type)).toEqual(['a', 'b', 'c']);
    });

    it('stores reader checkpoints', async () => {
      const j = await fresh();
      expect(await j.loadCheckpoint('reader')).toBeUndefined();
      await j.append('s', [ev('a')]);
      const [event] = await j.readAll();
      await j.saveCheckpoint('reader', event!.checkpoint);
      expect(await j.loadCheckpoint('reader')).toEqual(event!.checkpoint);
      await j.saveCheckpoint('reader', START);
      expect(await j.loadCheckpoint('reader')).toEqual(START);
    });

    it('refuses bad input with typed errors and stores nothing', async () => {
      const j = await fresh();
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const cases: [Promise<unknown>, string][] = [
        [j.append('', [ev('a')]), 'ERR_VALIDATION'],
        [j.append('s', 'nope' as never), 'ERR_VALIDATION'],
        [j.append('s', [{ type: '', data: 1 }]), 'ERR_VALIDATION'],
        [j.append('s', [ev('a', cyclic)]), 'ERR_VALIDATION'],
        [j.append('s', [ev('a', { big: 1n })]), 'ERR_VALIDATION'],
        [j.append('s', [{ type: 'a', data: 1, metadata: [] as never }]), 'ERR_VALIDATION'],
        // Postgres cannot store NUL or a lone surrogate; no adapter takes them.
        [j.append('s', [ev('a', { t: 'x\u0000y' })]), 'ERR_VALIDATION'],
        [j.append('s', [ev('a', { t: 'half \ud800' })]), 'ERR_VALIDATION'],
        [j.append('s', [{ type: 'a', data: 1, metadata: { m: '\udc00' } }]), 'ERR_VALIDATION'],
        [j.append('s\u0000', [ev('a')]), 'ERR_VALIDATION'],
        [j.append('s', [ev('a\u0000')]), 'ERR_VALIDATION'],
        [j.append('s', [ev('a')], { expectedVersion: -1 }), 'ERR_INVALID_OPTION'],
        [j.append('s', [ev('a')], { messageId: 'a\u001fb' }), 'ERR_INVALID_OPTION'],
        [j.append('s', [ev('a')], { fence: 1.5 }), 'ERR_INVALID_OPTION'],
        [j.readStream('s', { fromVersion: 0 }), 'ERR_INVALID_OPTION'],
        [j.readAll({ after: { tx: -1, position: 0 } }), 'ERR_INVALID_OPTION'],
        [j.saveSnapshot('s', 0, {}), 'ERR_INVALID_OPTION'],
      ];
      for (const [call, code] of cases) await expect(call).rejects.toMatchObject({ code });
      expect(await j.streamVersion('s')).toBe(0);
      expect(await j.readAll()).toEqual([]);
    });

    it('closes idempotently, finishing appends already taken; later calls fail', async () => {
      const j = await make();
      const taken = j.append('s', [ev('a')]);
      let completed = false;
      let closed: Error | undefined | 'open' = 'open';
      void j.closed().then((e) => (closed = e));
      j.subscribe().subscribe({ complete: () => (completed = true) });
      await Promise.all([j.close(), j.drain(), j.close()]);
      expect(await taken).toMatchObject({ toVersion: 1 });
      expect(await j.closed()).toBeUndefined();
      expect(closed).toBeUndefined();
      expect(completed).toBe(true);
      await expect(j.append('s', [ev('b')])).rejects.toMatchObject({ code: 'ERR_ILLEGAL_STATE' });
    });
  });
}
