/** The supervisor's decisions as pure functions: restart types, strategies' groups, the window. */
import { describe, expect, it } from 'vitest';
import { decideExit, restartGroup } from '../../runtime/kernel/supervision/decide.js';
import { restartPolicyDefaults } from '../../runtime/kernel/supervision/policy.js';

const policy = { ...restartPolicyDefaults, intensity: 2, periodMs: 1000 };
const facts = { restart: 'permanent' as const, normal: false, index: 1, count: 4 };

describe('decideExit', () => {
  it('retires temporary children, and transient ones that exited normally, without counting them', () => {
    const log: number[] = [];
    expect(decideExit({ ...facts, restart: 'temporary' }, policy, log, 0, Math.random)).toEqual({
      action: 'retire',
    });
    expect(decideExit({ ...facts, restart: 'transient', normal: true }, policy, log, 0, Math.random)).toEqual(
      {
        action: 'retire',
      },
    );
    expect(log).toEqual([]);
  });

  it('restarts within the intensity, gives up past it, and forgets restarts older than the period', () => {
    const log: number[] = [];
    expect(decideExit(facts, policy, log, 0, Math.random)).toMatchObject({ action: 'restart', group: [1] });
    expect(decideExit({ ...facts, restart: 'transient' }, policy, log, 10, Math.random).action).toBe(
      'restart',
    );
    expect(decideExit(facts, policy, log, 20, Math.random)).toEqual({ action: 'give-up' });
    const fresh: number[] = [0, 10];
    expect(decideExit(facts, policy, fresh, 1011, Math.random).action).toBe('restart');
  });

  it('waits the backoff of the restart count within the window', () => {
    const backoff = { baseMs: 100, maxMs: 1000, jitter: 0 };
    const log: number[] = [];
    const delays = [0, 1, 2].map(
      (t) =>
        (decideExit(facts, { ...policy, intensity: 5, backoff }, log, t, Math.random) as { delayMs: number })
          .delayMs,
    );
    expect(delays).toEqual([100, 200, 400]);
  });
});

describe('restartGroup', () => {
  it('is the child for one_for_one, everyone for one_for_all, and the child and later ones for rest_for_one', () => {
    expect(restartGroup('one_for_one', 2, 5)).toEqual([2]);
    expect(restartGroup('one_for_all', 2, 5)).toEqual([0, 1, 2, 3, 4]);
    expect(restartGroup('rest_for_one', 2, 5)).toEqual([2, 3, 4]);
    expect(restartGroup('rest_for_one', 4, 5)).toEqual([4]);
  });
});
