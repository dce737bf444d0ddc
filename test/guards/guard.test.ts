/**
 * Guards compose retries, a bulkhead, a breaker and a deadline; budgets refuse a call before it is
 * sent, per agent and per subtree.
 */
import { describe, expect, it, vi } from 'vitest';
import { createBudgets, exponential, guard, TroupeError } from '../../index.js';
import { SimulatedClock } from '../../runtime/testkit/index.js';

const fast = { attempts: 3, backoff: exponential({ baseMs: 1, maxMs: 1 }) };

describe('guard', () => {
  it('aborts an attempt past its deadline with ERR_CALL_TIMEOUT, and the signal reaches the call', async () => {
    const g = guard({ name: 'slow-tool', timeoutMs: 30, retry: false });
    let seen: AbortSignal | undefined;
    const error = await g
      .call(
        (signal) =>
          new Promise((_, reject) => {
            seen = signal;
            signal.addEventListener('abort', () => reject(new Error('request aborted')));
          }),
      )
      .catch((e: unknown) => e);
    expect(TroupeError.is(error, 'ERR_CALL_TIMEOUT')).toBe(true);
    expect((error as TroupeError).details).toEqual({ call: 'slow-tool', timeoutMs: 30 });
    expect(seen?.aborted).toBe(true);
    expect(TroupeError.is(seen?.reason, 'ERR_CALL_TIMEOUT')).toBe(true);
  });

  it('ends the wait at the deadline even for a call that ignores its signal', async () => {
    const g = guard({ name: 'deaf', timeoutMs: 20, retry: false, breaker: false });
    await expect(g.call(() => new Promise(() => {}))).rejects.toMatchObject({ code: 'ERR_CALL_TIMEOUT' });
  });

  it('retries an idempotent call, and a call that is not only when nothing was sent', async () => {
    const g = guard({ name: 'flaky', retry: fast, breaker: false });
    let calls = 0;
    await expect(
      g.call(
        async () => {
          if (++calls < 3) throw new Error('503');
          return 'ok';
        },
        { idempotent: true },
      ),
    ).resolves.toBe('ok');
    expect(calls).toBe(3);

    calls = 0;
    await expect(
      g.call(async () => {
        calls++;
        throw new Error('may have acted');
      }),
    ).rejects.toThrow('may have acted');
    expect(calls).toBe(1);

    calls = 0;
    await expect(
      g.call(async () => {
        if (++calls < 2)
          throw new TroupeError('ERR_MODEL_UNREACHABLE', 'refused', { details: { notSent: true } });
        return 'sent once';
      }),
    ).resolves.toBe('sent once');
    expect(calls).toBe(2);
  });

  it('refuses at once past its bulkhead, and does not retry the refusal', async () => {
    const g = guard({ name: 'pool', bulkhead: { maxConcurrent: 1, maxQueue: 1 }, retry: fast });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    const running = g.call(async () => {
      calls++;
      await gate;
    });
    const queued = g.call(async () => {
      calls++;
    });
    const started = performance.now();
    const refused = await g.call(async () => 'never', { idempotent: true }).catch((e: unknown) => e);
    expect(TroupeError.is(refused, 'ERR_BULKHEAD_FULL')).toBe(true);
    expect(performance.now() - started).toBeLessThan(50);
    expect(g.bulkhead?.active).toBe(1);
    expect(g.bulkhead?.queued).toBe(1);
    release();
    await Promise.all([running, queued]);
    expect(calls).toBe(2);
  });

  it('stops retrying once its breaker opens, without calling again', async () => {
    const g = guard({
      name: 'provider',
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 0 },
      retry: { attempts: 5, backoff: exponential({ baseMs: 1, maxMs: 1 }) },
    });
    let calls = 0;
    const error = await g
      .call(
        async () => {
          calls++;
          throw new Error('down');
        },
        { idempotent: true },
      )
      .catch((e: unknown) => e);
    expect(TroupeError.is(error, 'ERR_CIRCUIT_OPEN')).toBe(true);
    expect(calls).toBe(1);
    expect(g.breaker?.state).toBe('open');
    g.breaker?.close();
  });

  it("stops at the caller's abort: the attempt's signal aborts and no retry follows", async () => {
    const g = guard({ name: 'aborted', retry: fast, breaker: false });
    const controller = new AbortController();
    let calls = 0;
    const call = g.call(
      (signal) =>
        new Promise((_, reject) => {
          calls++;
          signal.addEventListener('abort', () => reject(signal.reason));
        }),
      { signal: controller.signal, idempotent: true },
    );
    await vi.waitFor(() => expect(calls).toBe(1));
    const reason = new Error('user cancelled');
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
    expect(calls).toBe(0 + 1);
  });

  it('turns a call that throws instead of rejecting into a rejection, deadline or not, and leaves no timer', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const clock = new SimulatedClock();
    try {
      for (const g of [
        guard({ name: 'sync', timeoutMs: 20, retry: false, breaker: false, clock }),
        guard({ name: 'sync-bare', retry: false, breaker: false, clock }),
        guard({ name: 'sync-full', timeoutMs: 20, bulkhead: { maxConcurrent: 1 }, clock }),
      ]) {
        await expect(
          g.call(() => {
            throw new Error('thrown, not rejected');
          }),
        ).rejects.toThrow('thrown, not rejected');
        g.breaker?.close();
      }
      expect(clock.pendingTimers).toBe(0);
      // Past the deadlines: a deadline left behind would fire now and reject unheard.
      await clock.advance(40);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('waits what Retry-After asks between attempts, and gives up at once on a wait past maxRetryAfterMs', async () => {
    const at: number[] = [];
    const limited = () =>
      new TroupeError('ERR_MODEL_HTTP', 'slow down', { details: { status: 429, retryAfterMs: 150 } });
    const clock = new SimulatedClock();
    const g = guard({
      name: 'rate-limited',
      breaker: false,
      retry: { attempts: 2, backoff: exponential({ baseMs: 1, maxMs: 1 }) },
      clock,
    });
    const answer = g.call(
      async () => {
        at.push(clock.now());
        if (at.length === 1) throw limited();
        return 'ok';
      },
      { idempotent: true },
    );
    await clock.advance(149);
    expect(at).toEqual([0]);
    await clock.advance(1);
    await expect(answer).resolves.toBe('ok');
    expect(at).toEqual([0, 150]);

    let calls = 0;
    const impatient = guard({
      name: 'impatient',
      breaker: false,
      retry: { attempts: 3, maxRetryAfterMs: 100 },
    });
    await expect(
      impatient.call(
        async () => {
          calls++;
          throw limited();
        },
        { idempotent: true },
      ),
    ).rejects.toMatchObject({ code: 'ERR_MODEL_HTTP' });
    expect(calls).toBe(1);
  });

  it("does not count the caller's abort (any reason) against the breaker", async () => {
    const g = guard({
      name: 'shared-tool',
      retry: false,
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 0 },
    });
    for (let i = 0; i < 3; i++) {
      const controller = new AbortController();
      const call = g.call(
        (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
        { signal: controller.signal },
      );
      controller.abort(new TroupeError('ERR_ACTOR_STOPPED', 'the agent stopped'));
      await expect(call).rejects.toMatchObject({ code: 'ERR_ACTOR_STOPPED' });
    }
    expect(g.breaker?.state).toBe('closed');
    g.breaker?.close();
  });

  it('refuses bad options with ERR_INVALID_OPTION', () => {
    expect(() => guard({ name: '' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => guard({ name: 'x', timeoutMs: -1 })).toThrow(/timeoutMs/);
  });
});

describe('budgets', () => {
  const team = 'troupe://app/local/user/team';
  const researcher = `${team}/researcher`;
  const writer = `${team}/writer`;

  it('refuses a call that would exceed an agent budget before it is sent, naming the limit', () => {
    const budgets = createBudgets();
    budgets.limit(researcher, { tokens: 1000, calls: 2 });
    budgets.reserve(researcher, { tokens: 400, costUsd: 0 }).settle({ tokens: 700, costUsd: 0.01 });
    expect(budgets.spent(researcher)).toEqual({ tokens: 700, costUsd: 0.01, calls: 1 });
    let error: unknown;
    try {
      budgets.reserve(researcher, { tokens: 400, costUsd: 0 });
    } catch (e) {
      error = e;
    }
    expect(TroupeError.is(error, 'ERR_BUDGET_EXCEEDED')).toBe(true);
    expect((error as TroupeError).details).toMatchObject({
      scope: researcher,
      limit: 'tokens',
      max: 1000,
      used: 700,
      needed: 400,
    });
    // The refused call reserved nothing, and other agents are not bound by this budget.
    expect(budgets.spent(researcher).tokens).toBe(700);
    expect(() => budgets.reserve(writer, { tokens: 5000, costUsd: 0 })).not.toThrow();
  });

  it('charges every subtree above an agent, and a subtree budget binds all of its agents', () => {
    const budgets = createBudgets();
    budgets.limit(team, { costUsd: 1 });
    budgets.limit(researcher, { calls: 10 });
    budgets.reserve(researcher, { tokens: 10, costUsd: 0.2 }).settle({ tokens: 10, costUsd: 0.6 });
    budgets.reserve(writer, { tokens: 10, costUsd: 0.2 }).settle({ tokens: 10, costUsd: 0.3 });
    expect(budgets.spent(team)).toMatchObject({ tokens: 20, calls: 2 });
    expect(budgets.spent(team).costUsd).toBeCloseTo(0.9);
    expect(() => budgets.reserve(writer, { tokens: 1, costUsd: 0.2 })).toThrow(
      /costUsd budget of troupe:\/\/app\/local\/user\/team /,
    );
    // A sibling whose name starts the same is not inside the subtree.
    expect(() => budgets.reserve(`${team}-2/agent`, { tokens: 1, costUsd: 5 })).not.toThrow();
  });

  it('counts estimates of calls in flight, and forgets a released one', () => {
    const budgets = createBudgets();
    budgets.limit(researcher, { calls: 1 });
    const first = budgets.reserve(researcher, { tokens: 1, costUsd: 0 });
    expect(() => budgets.reserve(researcher, { tokens: 1, costUsd: 0 })).toThrow(/calls budget/);
    first.release();
    expect(budgets.spent(researcher).calls).toBe(0);
    budgets.reserve(researcher, { tokens: 1, costUsd: 0 }).settle({ tokens: 3, costUsd: 0 });
    budgets.reset(researcher);
    expect(budgets.spent(researcher)).toEqual({ tokens: 0, costUsd: 0, calls: 0 });
  });

  it('refuses bad limits with ERR_INVALID_OPTION', () => {
    const budgets = createBudgets();
    expect(() => budgets.limit(researcher, { tokens: -1 })).toThrow(/limits.tokens/);
    expect(() => budgets.limit('', {})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
