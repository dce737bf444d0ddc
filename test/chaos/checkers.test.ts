/**
 * Each checker passes a correct system and catches a deliberately broken one. The systems are small
 * event-driven models run from a seed: operations take effect at a random moment between their
 * invocation and completion (the atomic ones), or not (the broken ones).
 */
import fc from 'fast-check';
import {
  checkLinearizable,
  counterModel,
  type History,
  historyRecorder,
  invariant,
  type LogEntry,
  linearizable,
  livenessAfterHeal,
  noDuplicateEffects,
  noLostWrites,
  runCheckers,
  sagaAtomicity,
  singleActivation,
  workflowStepsOnce,
} from 'troupe/chaos';
import { seededRandom } from 'troupe/runtime';
import { describe, expect, it } from 'vitest';
import { propertySeed, seeded } from '../harness/fast-check.js';

const SEED = propertySeed(20261206);

function history(ops: History['ops'], log: LogEntry[] = []): History {
  return { seed: 1, plan: 't', nodes: ['n1'], durationMs: 1000, ops, log };
}

/**
 * Clients run operations on a register; each is invoked, takes effect at `apply` (a tick between
 * invocation and completion), then completes. `stale` makes reads answer from a lagging replica.
 */
function registerRun(
  seed: number,
  options: { clients: number; ops: number; stale?: boolean; keys?: number; lostUpdate?: boolean },
) {
  const random = seededRandom(seed);
  let time = 0;
  const rec = historyRecorder(() => time);
  const values = new Map<string, number>();
  const replica = new Map<string, number>();
  type Pending = {
    applyAt: number;
    doneAt: number;
    run: () => unknown;
    done?: (v: unknown) => void;
    applied?: boolean;
    result?: unknown;
  };
  const inFlight = new Map<number, Pending>();
  let issued = 0;
  let nextValue = 1;
  while (issued < options.ops || inFlight.size > 0) {
    time++;
    for (let c = 0; c < options.clients; c++) {
      const p = inFlight.get(c);
      if (p === undefined) {
        if (issued >= options.ops || random() < 0.5) continue;
        issued++;
        const key = `k${Math.floor(random() * (options.keys ?? 1))}`;
        const kind = random();
        const applyAt = time + 1 + Math.floor(random() * 3);
        const doneAt = applyAt + Math.floor(random() * 3);
        if (options.lostUpdate === true) {
          // A counter: read, then write the sum later; another add in between is lost.
          const handle = rec.invoke(c, kind < 0.7 ? 'add' : 'read', kind < 0.7 ? 1 : null, { key });
          let seen = 0;
          const pending: Pending = {
            applyAt,
            doneAt,
            run: () => {
              if (kind >= 0.7) return values.get(key) ?? 0;
              values.set(key, seen + 1);
              return undefined;
            },
            done: (v) => handle.ok(v),
          };
          seen = values.get(key) ?? 0;
          inFlight.set(c, pending);
          continue;
        }
        if (kind < 0.5) {
          const v = nextValue++;
          const handle = rec.invoke(c, 'write', v, { key });
          inFlight.set(c, {
            applyAt,
            doneAt,
            run: () => {
              values.set(key, v);
              return undefined;
            },
            done: () => handle.ok(),
          });
        } else {
          const handle = rec.invoke(c, 'read', null, { key });
          inFlight.set(c, {
            applyAt,
            doneAt,
            run: () => (options.stale === true ? (replica.get(key) ?? null) : (values.get(key) ?? null)),
            done: (v) => handle.ok(v),
          });
        }
      } else {
        if (!p.applied && time >= p.applyAt) {
          p.applied = true;
          p.result = p.run();
        }
        if (p.applied && time >= p.doneAt) {
          p.done?.(p.result);
          inFlight.delete(c);
        }
      }
    }
    // The replica catches up now and then.
    if (random() < 0.2) for (const [k, v] of values) replica.set(k, v);
  }
  return history(rec.ops);
}

describe('linearizability (Wing–Gong with memoization)', () => {
  it('passes atomic registers and catches stale reads, per key', () => {
    const good = registerRun(1, { clients: 5, ops: 400, keys: 3 });
    expect(linearizable().check(good).verdict).toBe('ok');
    const bad = registerRun(1, { clients: 5, ops: 400, keys: 3, stale: true });
    const verdict = linearizable().check(bad);
    expect(verdict.verdict).toBe('violated');
    expect(verdict.ops.length).toBeGreaterThan(0);
    expect(verdict.message).toMatch(/cannot be linearized/);
  });

  it('catches a counter that loses concurrent adds (read-modify-write)', () => {
    const bad = registerRun(3, { clients: 4, ops: 200, lostUpdate: true });
    expect(linearizable({ model: counterModel() }).check(bad).verdict).toBe('violated');
  });

  it('says unknown, never ok, when the budget runs out', () => {
    const h = registerRun(2, { clients: 8, ops: 300 });
    const results = checkLinearizable(h, { budget: 20 });
    expect(results.some((r) => r.verdict === 'unknown')).toBe(true);
    expect(linearizable({ budget: 20 }).check(h).verdict).toBe('unknown');
  });

  it('lets an unknown (info) write take effect or not; drops failed operations', () => {
    const rec = historyRecorder(() => 0);
    rec.invoke(0, 'write', 1, { key: 'x' }).ok();
    rec.invoke(1, 'write', 2, { key: 'x' }).info('timeout');
    rec.invoke(2, 'write', 3, { key: 'x' }).fail('refused');
    rec.invoke(0, 'read', null, { key: 'x' }).ok(2);
    rec.invoke(0, 'read', null, { key: 'x' }).ok(2);
    expect(linearizable().check(history(rec.ops)).verdict).toBe('ok');
    rec.invoke(0, 'read', null, { key: 'x' }).ok(3);
    expect(linearizable().check(history(rec.ops)).verdict).toBe('violated');
  });

  it('property: every history of an atomic register is linearizable', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 30 }), fc.integer({ min: 1, max: 6 }), (seed, clients) => {
        expect(linearizable().check(registerRun(seed, { clients, ops: 60, keys: 2 })).verdict).toBe('ok');
      }),
      seeded('atomic register', SEED, 60),
    );
  });
});

/** A set service that acknowledges adds before they are durable, and a crash loses what was buffered. */
function setService(ackBeforeDurable: boolean) {
  const rec = historyRecorder(() => 0);
  const durable: number[] = [];
  const buffer: number[] = [];
  for (let i = 0; i < 20; i++) {
    const h = rec.invoke(i % 3, 'add', i, { key: 's' });
    if (ackBeforeDurable) buffer.push(i);
    else durable.push(i);
    h.ok();
    if (i === 12) buffer.length = 0; // a crash
    if (i % 5 === 4) durable.push(...buffer.splice(0));
  }
  durable.push(...buffer.splice(0));
  rec.invoke(0, 'read', null, { key: 's' }).ok([...durable]);
  return history(rec.ops);
}

describe('noLostWrites', () => {
  it('passes a set that persists before it acknowledges; catches one that acknowledges first', () => {
    expect(noLostWrites().check(setService(false)).verdict).toBe('ok');
    const v = noLostWrites().check(setService(true));
    expect(v.verdict).toBe('violated');
    expect(v.ops.map((op) => op.value)).toContain(10);
  });
  it('is unknown without a final read', () => {
    const rec = historyRecorder(() => 0);
    rec.invoke(0, 'add', 1, { key: 's' }).ok();
    expect(noLostWrites().check(history(rec.ops)).verdict).toBe('unknown');
  });
});

/** A consumer that applies redelivered messages; `dedupe` skips ids it has seen. */
function consumer(dedupe: boolean): LogEntry[] {
  const log: LogEntry[] = [];
  const seen = new Set<string>();
  const deliveries = ['m1', 'm2', 'm2', 'm3', 'm1'];
  for (const id of deliveries) {
    if (dedupe && seen.has(id)) continue;
    seen.add(id);
    log.push({ stream: 'acct-1', version: log.length + 1, type: 'credited', data: { id }, messageId: id });
  }
  return log;
}

describe('noDuplicateEffects', () => {
  it('passes a consumer that dedupes by message id; catches one that does not', () => {
    expect(noDuplicateEffects().check(history([], consumer(true))).verdict).toBe('ok');
    const v = noDuplicateEffects().check(history([], consumer(false)));
    expect(v.verdict).toBe('violated');
    expect(v.entries?.map((e) => e.messageId)).toEqual(['m2', 'm2', 'm1', 'm1']);
  });
});

/** Two activations of one key across a partition; the journal checks fences or not. */
function activations(checkFences: boolean): LogEntry[] {
  const log: LogEntry[] = [];
  let highest = 0;
  const write = (node: string, fence: number) => {
    if (checkFences && fence < highest) return;
    highest = Math.max(highest, fence);
    log.push({ stream: 'acct-7', version: log.length + 1, type: 'set', data: {}, fence, node });
  };
  write('a', 1);
  write('b', 2); // b took the lease over while a was cut off
  write('a', 1); // a, stale, still writes
  write('b', 2);
  return log;
}

describe('singleActivation', () => {
  it('passes a journal that refuses stale fences; catches one that does not', () => {
    expect(singleActivation().check(history([], activations(true))).verdict).toBe('ok');
    const v = singleActivation().check(history([], activations(false)));
    expect(v.verdict).toBe('violated');
    expect(v.entries?.some((e) => e.node === 'a' && e.fence === 1)).toBe(true);
  });
  it('catches two nodes writing under one fence', () => {
    const log: LogEntry[] = [
      { stream: 's', version: 1, type: 'x', data: {}, fence: 3, node: 'a' },
      { stream: 's', version: 2, type: 'x', data: {}, fence: 3, node: 'b' },
    ];
    expect(singleActivation().check(history([], log)).verdict).toBe('violated');
  });
});

/** A saga runner: the second step fails; `compensates` says whether it undoes the first. */
function sagaLog(compensates: boolean, ends = true): LogEntry[] {
  const log: LogEntry[] = [];
  const e = (type: string, data: unknown = {}) =>
    log.push({ stream: 'workflow-t1', version: log.length + 1, type, data });
  e('workflow-started', { definition: 'transfer' });
  e('step-completed', { step: 'debit' });
  e('step-failed', { step: 'credit' });
  e('compensation-started');
  if (compensates) e('step-compensated', { step: 'debit' });
  if (ends) e('workflow-failed', { error: 'credit refused' });
  return log;
}

describe('sagaAtomicity', () => {
  it('passes a saga that compensates; catches one that leaves a step done', () => {
    expect(sagaAtomicity().check(history([], sagaLog(true))).verdict).toBe('ok');
    const v = sagaAtomicity().check(history([], sagaLog(false)));
    expect(v.verdict).toBe('violated');
    expect(v.message).toMatch(/debit/);
  });
  it('is unknown for a saga still running at the end', () => {
    expect(sagaAtomicity().check(history([], sagaLog(true, false))).verdict).toBe('unknown');
  });
});

/** A workflow engine restarted mid-run; `replays` says whether it reads its log or runs every step again. */
function workflowLog(replays: boolean): LogEntry[] {
  const log: LogEntry[] = [];
  const e = (type: string, data: unknown = {}) =>
    log.push({ stream: 'workflow-w', version: log.length + 1, type, data });
  e('workflow-started', {});
  const steps = ['a', 'b', 'c'];
  const done = new Set<string>();
  for (const s of steps.slice(0, 2)) {
    e('step-completed', { step: s });
    done.add(s);
  }
  // crash, restart
  for (const s of steps) {
    if (replays && done.has(s)) continue;
    e('step-completed', { step: s });
  }
  e('workflow-completed', {});
  return log;
}

describe('workflowStepsOnce', () => {
  it('passes an engine that recovers from its log; catches one that runs completed steps again', () => {
    expect(workflowStepsOnce().check(history([], workflowLog(true))).verdict).toBe('ok');
    const v = workflowStepsOnce().check(history([], workflowLog(false)));
    expect(v.verdict).toBe('violated');
    expect(v.entries?.length).toBe(4);
  });
});

/** A service whose keys recover after a partition heals, or one whose key `b` stays stuck. */
function healRun(stuck: boolean): History {
  let time = 0;
  const rec = historyRecorder(() => time);
  rec.nemesis('invoke', 'partition', { sides: [['n1'], ['n2']] });
  time = 1000;
  rec.nemesis('ok', 'partition', { sides: [['n1'], ['n2']] });
  for (const key of ['a', 'b']) {
    time += 10;
    const h = rec.invoke(key === 'a' ? 0 : 1, 'read', null, { key });
    time += 100;
    if (stuck && key === 'b') h.info('ERR_ASK_TIMEOUT');
    else h.ok(0);
  }
  return { ...history(rec.ops), durationMs: 5000 };
}

describe('livenessAfterHeal', () => {
  it('passes a system that recovers; catches a key that stays stuck', () => {
    expect(livenessAfterHeal({ withinMs: 2000 }).check(healRun(false)).verdict).toBe('ok');
    const v = livenessAfterHeal({ withinMs: 2000 }).check(healRun(true));
    expect(v.verdict).toBe('violated');
    expect(v.ops.every((op) => op.key === 'b')).toBe(true);
  });
});

describe('user invariants', () => {
  it('run beside the built-in checkers; a throwing checker is unknown', () => {
    const log = consumer(false);
    const verdicts = runCheckers(history([], log), [
      invariant('three credits', (h) => h.log.length === 3 || `${h.log.length} credits`),
      invariant('throws', () => {
        throw new Error('boom');
      }),
    ]);
    expect(verdicts.map((v) => v.verdict)).toEqual(['violated', 'unknown']);
    expect(verdicts[0]!.message).toBe('5 credits');
  });
});
