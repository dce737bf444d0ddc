/** Plans: checked with typed errors, defaults applied, random schedules drawn from the seed. */

import { describeFault, parsePlan, schedule } from 'troupe/chaos';
import { TroupeError } from 'troupe/protocols';
import { describe, expect, it } from 'vitest';

const base = {
  name: 'p',
  seed: 7,
  durationMs: 60_000,
  nodes: ['a', 'b', 'c'],
  workload: { name: 'register' },
};

describe('plans', () => {
  it('applies defaults and sorts a fixed schedule', () => {
    const plan = parsePlan({
      ...base,
      faults: [
        { kind: 'partition', at: 9000, durationMs: 1000, sides: [['a'], ['b', 'c']] },
        { kind: 'crash-node', at: 2000, durationMs: 500, node: 'b' },
        { kind: 'model', at: 100, durationMs: 100, mode: '429' },
      ],
    });
    expect(plan.healMs).toBe(5000);
    const s = schedule(plan);
    expect(s.map((f) => f.kind)).toEqual(['model', 'crash-node', 'partition']);
    expect(s[1]).toMatchObject({ signal: 'kill' });
    expect(s[0]).toMatchObject({ retryAfterMs: 1000, probability: 1 });
    expect(describeFault(s[2]!)).toBe('@9000 partition a | b,c for 1000 ms');
  });

  it('accepts JSON text', () => {
    expect(parsePlan(JSON.stringify(base)).nodes).toEqual(['a', 'b', 'c']);
  });

  it('refuses a bad plan with ERR_INVALID_OPTION naming the field', () => {
    const bad = (input: unknown, field: RegExp) => {
      try {
        parsePlan(input);
        expect.unreachable();
      } catch (error) {
        expect(TroupeError.is(error) && error.code).toBe('ERR_INVALID_OPTION');
        expect((error as Error).message).toMatch(field);
      }
    };
    bad({ ...base, durationMs: -1 }, /plan\.durationMs/);
    bad({ ...base, faults: [{ kind: 'melt', at: 1 }] }, /plan\.faults\.0\.kind/);
    bad(
      { ...base, faults: [{ kind: 'pause-node', at: 1, durationMs: 5, node: 'z' }] },
      /node "z" not in plan\.nodes/,
    );
    bad({ ...base, nodes: ['a', 'a'] }, /plan\.nodes/);
    bad('{nope', /not JSON/);
  });

  it('draws the same random schedule from the same seed, another from another', () => {
    const random = { count: 12, kinds: ['crash-node', 'partition', 'network', 'pause-node', 'clock-skew'] };
    const one = schedule(parsePlan({ ...base, faults: random }));
    expect(schedule(parsePlan({ ...base, faults: random }))).toEqual(one);
    expect(schedule(parsePlan({ ...base, seed: 8, faults: random }))).not.toEqual(one);
    expect(one).toHaveLength(12);
    for (const f of one) {
      expect(f.at).toBeGreaterThanOrEqual(1000);
      expect(f.at).toBeLessThan(55_000);
    }
  });
});
