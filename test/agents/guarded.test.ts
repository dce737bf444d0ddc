/**
 * Guarded models and fallback chains: a failing provider is retried, then its breaker opens and the
 * chain moves on to the next provider without calling the open one; a bad request ends the chain.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type ActorSystem,
  agent,
  createSystem,
  exponential,
  fallbackModels,
  guardedModel,
  type ModelPort,
  type SystemEvent,
  scriptedModel,
  TroupeError,
} from '../../index.js';

const systems: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.splice(0).map((s) => s.close()));
});

/** A provider that fails with `status` while `down()` is true, and counts its calls. */
function provider(name: string, status: () => number | undefined): ModelPort & { calls: number } {
  const answer = scriptedModel({ name, steps: [`answer from ${name}`] });
  const port = {
    name,
    calls: 0,
    complete: async (...args: Parameters<ModelPort['complete']>) => {
      port.calls++;
      const failing = status();
      if (failing !== undefined) {
        throw new TroupeError('ERR_MODEL_HTTP', `${name} answered ${failing}`, {
          details: { status: failing },
        });
      }
      return answer.complete(...args);
    },
  };
  return port;
}

const quickRetry = { attempts: 2, backoff: exponential({ baseMs: 1, maxMs: 1 }) };

describe('guarded models', () => {
  it('falls back to the next provider, opens the failing one and publishes its transitions', async () => {
    const system = createSystem({ name: 'fallback' });
    systems.push(system);
    const transitions: string[] = [];
    system.events$.subscribe((e: SystemEvent) => {
      if (e.type === 'breaker-transition') transitions.push(`${e.breaker}:${e.from}>${e.to}`);
    });
    let primaryDown = true;
    const primary = provider('primary', () => (primaryDown ? 503 : undefined));
    const secondary = provider('secondary', () => undefined);
    const model = fallbackModels([
      guardedModel(primary, {
        system,
        retry: quickRetry,
        breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 50 },
      }),
      guardedModel(secondary, { system, retry: quickRetry }),
    ]);
    const a = system.spawn(agent({ model }), { name: 'resilient' });
    expect(await a.ask('run', { input: 'one' })).toMatchObject({ ok: true, output: 'answer from secondary' });
    // Two attempts on the primary (the retry), then its breaker opened.
    expect(primary.calls).toBe(2);
    expect(transitions).toEqual(['primary:closed>open']);
    expect(await a.ask('run', { input: 'two' })).toMatchObject({ ok: true, output: 'answer from secondary' });
    expect(primary.calls).toBe(2);
    // The primary comes back: after the reset timeout one trial call closes its breaker.
    primaryDown = false;
    // opossum's reset timer runs on real time (it takes no clock): wait for the half-open move.
    await vi.waitFor(() => expect(transitions).toContain('primary:open>half-open'));
    expect(await a.ask('run', { input: 'three' })).toMatchObject({ ok: true, output: 'answer from primary' });
    expect(transitions).toEqual([
      'primary:closed>open',
      'primary:open>half-open',
      'primary:half-open>closed',
    ]);
  });

  it('does not retry or fall back on a bad request, and does not count it against the breaker', async () => {
    const bad = provider('strict', () => 400);
    const spare = provider('spare', () => undefined);
    const guarded = guardedModel(bad, {
      retry: quickRetry,
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 0 },
    });
    const model = fallbackModels([guarded, guardedModel(spare)]);
    const error = await model
      .complete({ messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_MODEL_HTTP', details: { status: 400 } });
    expect(bad.calls).toBe(1);
    expect(spare.calls).toBe(0);
    expect(guarded.guard.breaker?.state).toBe('closed');
  });

  it('bounds a pool of agents with its own bulkhead around the shared provider guard', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const inner = scriptedModel({ steps: ['ok'] });
    const slow: ModelPort = {
      name: 'slow',
      complete: async (r, o) => {
        await gate;
        return inner.complete(r, o);
      },
    };
    const provider = guardedModel(slow, { bulkhead: { maxConcurrent: 8 } });
    const poolOf = () =>
      guardedModel(provider, { breaker: false, retry: false, bulkhead: { maxConcurrent: 1, maxQueue: 0 } });
    const researchers = poolOf();
    const writers = poolOf();
    const hello = { messages: [{ role: 'user' as const, content: 'x' }] };
    const running = researchers.complete(hello);
    await expect(researchers.complete(hello)).rejects.toMatchObject({ code: 'ERR_BULKHEAD_FULL' });
    const other = writers.complete(hello);
    expect(provider.guard.bulkhead?.active).toBe(2);
    release();
    await expect(Promise.all([running, other])).resolves.toHaveLength(2);
    provider.guard.breaker?.close();
  });

  it('adds no second breaker or retries around a port that is guarded already', async () => {
    const failing = provider('inner', () => 503);
    const once = guardedModel(failing, { retry: quickRetry });
    const outer = guardedModel(once, { bulkhead: { maxConcurrent: 4 } });
    await expect(outer.complete({ messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      code: 'ERR_MODEL_HTTP',
    });
    expect(failing.calls).toBe(2);
    expect(outer.guard.breaker).toBeUndefined();
    once.guard.breaker?.close();
  });

  it('never tries again, nor falls back, after text was streamed', async () => {
    let calls = 0;
    const overloaded: ModelPort = {
      name: 'overloaded',
      complete: async (_request, options) => {
        calls++;
        options?.onText?.('Hello ');
        throw new TroupeError('ERR_MODEL_HTTP', 'overloaded mid-stream', { details: { status: 529 } });
      },
    };
    const spare = provider('spare', () => undefined);
    const model = fallbackModels([guardedModel(overloaded, { retry: quickRetry }), spare]);
    const heard: string[] = [];
    await expect(
      model.complete({ messages: [{ role: 'user', content: 'x' }] }, { onText: (t) => heard.push(t) }),
    ).rejects.toMatchObject({ details: { status: 529 } });
    expect(heard).toEqual(['Hello ']);
    expect(calls).toBe(1);
    expect(spare.calls).toBe(0);
    // Without onText nothing was said, so the same failure is retried and falls back.
    await expect(model.complete({ messages: [{ role: 'user', content: 'x' }] })).resolves.toMatchObject({
      text: 'answer from spare',
    });
    expect(calls).toBe(3);
  });

  it('throws the last failure when every provider fails', async () => {
    const a = provider('a', () => 500);
    const b = provider('b', () => 429);
    const model = fallbackModels([guardedModel(a, { retry: false }), guardedModel(b, { retry: false })]);
    await expect(model.complete({ messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      code: 'ERR_MODEL_HTTP',
      details: { status: 429 },
    });
    expect(() => fallbackModels([])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
