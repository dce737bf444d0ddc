/**
 * Bulkheads: never more than `maxConcurrent` calls running and `maxQueue` waiting, whatever the order
 * of arrivals, completions and aborts; waiters start first come first served; a call beyond both
 * limits is refused at once. Replay a failure with FC_SEED=<seed>.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bulkhead } from '../../index.js';
import { propertySeed, seeded } from '../harness/fast-check.js';

const SEED = propertySeed(Date.now() % 2 ** 31);
const flush = () => new Promise((r) => setImmediate(r));

type Step =
  | { kind: 'arrive' }
  | { kind: 'finish'; pick: number; fail: boolean }
  | { kind: 'abort'; pick: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.constant({ kind: 'arrive' as const }),
  fc.record({ kind: fc.constant('finish' as const), pick: fc.nat(), fail: fc.boolean() }),
  fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }),
);

describe('bulkhead', () => {
  it('keeps its limits and its order under random arrivals, completions and aborts', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(stepArb, { maxLength: 60 }),
        async (maxConcurrent, maxQueue, steps) => {
          const b = bulkhead({ name: 'p', maxConcurrent, maxQueue });
          // The model: calls running (with their finishers) and waiting, by call number.
          const running = new Map<number, (fail: boolean) => void>();
          const waiting: { id: number; abort: AbortController }[] = [];
          const started: number[] = [];
          const expectedStarts: number[] = [];
          const outcomes = new Map<number, string>();
          let next = 0;
          for (const step of steps) {
            if (step.kind === 'arrive') {
              const id = next++;
              const abort = new AbortController();
              const full = running.size >= maxConcurrent && waiting.length >= maxQueue;
              const queuedNow = running.size >= maxConcurrent && !full;
              b.run(
                () =>
                  new Promise<void>((resolve, reject) => {
                    started.push(id);
                    running.set(id, (fail) => (fail ? reject(new Error('boom')) : resolve()));
                  }),
                { signal: abort.signal },
              ).then(
                () => outcomes.set(id, 'ok'),
                (e: { code?: unknown; name?: string }) =>
                  outcomes.set(id, typeof e.code === 'string' ? e.code : (e.name ?? 'error')),
              );
              if (full) expectedStarts.push(-1);
              else if (queuedNow) waiting.push({ id, abort });
              else expectedStarts.push(id);
              await flush();
              if (full) expect(outcomes.get(id)).toBe('ERR_BULKHEAD_FULL');
            } else if (step.kind === 'finish' && running.size > 0) {
              const ids = [...running.keys()];
              const id = ids[step.pick % ids.length]!;
              running.get(id)!(step.fail);
              running.delete(id);
              const promoted = waiting.shift();
              if (promoted !== undefined) expectedStarts.push(promoted.id);
              await flush();
              expect(outcomes.get(id)).toBe(step.fail ? 'Error' : 'ok');
            } else if (step.kind === 'abort' && waiting.length > 0) {
              const [gone] = waiting.splice(step.pick % waiting.length, 1);
              gone!.abort.abort();
              await flush();
              expect(outcomes.get(gone!.id)).toBe('AbortError');
              expect(started).not.toContain(gone!.id);
            }
            expect(b.active).toBe(running.size);
            expect(b.active).toBeLessThanOrEqual(maxConcurrent);
            expect(b.queued).toBe(waiting.length);
            expect(b.queued).toBeLessThanOrEqual(maxQueue);
          }
          expect(started).toEqual(expectedStarts.filter((id) => id >= 0));
        },
      ),
      seeded('bulkhead property', SEED, 200),
    );
  }, 60_000);

  it('starts waiting calls first come first served', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 3 });
    const order: number[] = [];
    let finish: () => void = () => {};
    const calls = [0, 1, 2, 3].map((n) =>
      b.run(
        () =>
          new Promise<void>((resolve) => {
            order.push(n);
            finish = resolve;
          }),
      ),
    );
    for (let i = 0; i < 4; i++) {
      finish();
      await flush();
    }
    await Promise.all(calls);
    expect(order).toEqual([0, 1, 2, 3]);
  });

  it('refuses bad options and passes a synchronous throw on as a rejection, freeing its slot', async () => {
    for (const options of [
      { maxConcurrent: 0 },
      { maxConcurrent: 1.5 },
      { maxConcurrent: 1, maxQueue: -1 },
    ]) {
      expect(() => bulkhead(options)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    }
    const b = bulkhead({ maxConcurrent: 1 });
    await expect(
      b.run(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(b.active).toBe(0);
    expect(await b.run(() => 42)).toBe(42);
    const aborted = new AbortController();
    aborted.abort(new Error('gone'));
    await expect(b.run(() => 1, { signal: aborted.signal })).rejects.toThrow('gone');
  });
});
