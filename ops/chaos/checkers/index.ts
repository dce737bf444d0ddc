/**
 * Checkers: functions of a history (its operations and its log) that answer `ok`, `violated` (with
 * the operations or log entries that break it) or `unknown`.
 */
import { type History, type LogEntry, type Op, outcome, pairs } from '../history/index.js';
import { type Checker, ok, unknown, type Verdict, violated } from './verdict.js';

export {
  checkLinearizable,
  counterModel,
  type KeyResult,
  type LinearizableOptions,
  linearizable,
  type Model,
  registerModel,
} from './linearizable.js';
export { type Checker, type Verdict, type VerdictKind, worst } from './verdict.js';

/** Runs every checker over `history`; a checker that throws is `unknown`, with the error. */
export function runCheckers(history: History, checkers: readonly Checker[]): Verdict[] {
  return checkers.map((checker) => {
    try {
      return checker.check(history);
    } catch (error) {
      return unknown(checker.name, `the checker threw: ${(error as Error)?.message ?? String(error)}`);
    }
  });
}

/** Options of {@link noLostWrites}. */
export interface NoLostWritesOptions {
  /** The operations that add an element. Defaults to `['add']`. */
  readonly add?: readonly string[];
  /** The operation that reads every element of a key (its `ok` value an array). Defaults to `read`. */
  readonly read?: string;
}

/**
 * No acknowledged write is lost: every element an `ok` add put into a key is in the last `ok` read of
 * that key invoked after the add completed. Without such a read the key is `unknown`.
 */
export function noLostWrites(options: NoLostWritesOptions = {}): Checker {
  const name = 'noLostWrites';
  const adds = new Set(options.add ?? ['add']);
  const readF = options.read ?? 'read';
  return {
    name,
    check(history) {
      const all = pairs(history.ops);
      const finalRead = new Map<string, { op: Op; value: readonly unknown[]; invokedAt: number }>();
      for (const p of all) {
        if (p.invoke.f !== readF || outcome(p) !== 'ok' || p.invoke.key === undefined) continue;
        const value = p.complete!.value;
        if (!Array.isArray(value)) continue;
        finalRead.set(p.invoke.key, { op: p.complete!, value, invokedAt: p.invoke.index });
      }
      const lost: Op[] = [];
      let unread = 0;
      let acked = 0;
      for (const p of all) {
        if (!adds.has(p.invoke.f) || outcome(p) !== 'ok' || p.invoke.key === undefined) continue;
        acked++;
        const read = finalRead.get(p.invoke.key);
        if (read === undefined || read.invokedAt < p.complete!.index) {
          unread++;
          continue;
        }
        const wanted = JSON.stringify(p.invoke.value);
        if (!read.value.some((v) => JSON.stringify(v) === wanted)) lost.push(p.invoke, p.complete!);
      }
      if (lost.length > 0)
        return violated(name, `${lost.length / 2} of ${acked} acknowledged write(s) lost`, lost);
      if (unread > 0) return unknown(name, `${unread} acknowledged write(s) with no final read after them`);
      return ok(name, `all ${acked} acknowledged write(s) present in the final reads`);
    },
  };
}

/** Options of {@link noDuplicateEffects}. */
export interface NoDuplicateEffectsOptions {
  /**
   * The id of the effect a log entry applies (a transfer id, a command id), or undefined for an
   * entry that applies none. Defaults to the stream and the entry's `messageId`.
   */
  readonly effectOf?: (entry: LogEntry) => string | undefined;
}

/** No effect is applied twice: no two log entries carry the same effect id. */
export function noDuplicateEffects(options: NoDuplicateEffectsOptions = {}): Checker {
  const name = 'noDuplicateEffects';
  const effectOf =
    options.effectOf ??
    ((e: LogEntry) => (e.messageId === undefined ? undefined : `${e.stream}|${e.messageId}`));
  return {
    name,
    check(history) {
      const seen = new Map<string, LogEntry>();
      const twice: LogEntry[] = [];
      for (const entry of history.log) {
        const id = effectOf(entry);
        if (id === undefined) continue;
        const first = seen.get(id);
        if (first === undefined) seen.set(id, entry);
        else twice.push(first, entry);
      }
      if (twice.length > 0)
        return violated(
          name,
          `${twice.length / 2} effect(s) applied twice, first: ${effectOf(twice[0]!)}`,
          [],
          twice,
        );
      return ok(name, `${seen.size} effect(s), each applied once`);
    },
  };
}

/**
 * At most one activation of a named actor writes at a time: in each stream the fencing tokens of
 * the writes never go down (a write with an older fence after a newer one came from a stale
 * activation), and one fence is one node's.
 */
export function singleActivation(): Checker {
  const name = 'singleActivation';
  return {
    name,
    check(history) {
      const last = new Map<string, LogEntry>();
      const owner = new Map<string, string>();
      const bad: LogEntry[] = [];
      let fenced = 0;
      for (const entry of history.log) {
        if (entry.fence === undefined) continue;
        fenced++;
        const before = last.get(entry.stream);
        if (before !== undefined && entry.fence < before.fence!) bad.push(before, entry);
        const fenceKey = `${entry.stream}|${entry.fence}`;
        const node = owner.get(fenceKey);
        if (entry.node !== undefined) {
          if (node !== undefined && node !== entry.node) bad.push(entry);
          owner.set(fenceKey, entry.node);
        }
        if (before === undefined || entry.fence >= before.fence!) last.set(entry.stream, entry);
      }
      if (bad.length > 0)
        return violated(name, `stream ${bad[0]!.stream}: a write with a stale or shared fence`, [], bad);
      return ok(name, `${fenced} fenced write(s) in ${last.size} stream(s), fences never went back`);
    },
  };
}

/** Options of the workflow checkers. */
export interface WorkflowCheckOptions {
  /** Which streams are workflow (or saga) instances. Defaults to those with a `workflow-started` event. */
  readonly streams?: (stream: string) => boolean;
  /** Whether an instance still running at the end is acceptable. Defaults to false: it is `unknown`. */
  readonly allowRunning?: boolean;
}

interface Instance {
  readonly stream: string;
  readonly completed: Map<string, LogEntry[]>;
  readonly compensated: Set<string>;
  failedStep: string | undefined;
  end: 'completed' | 'failed' | undefined;
}

function instances(log: readonly LogEntry[], options: WorkflowCheckOptions): Map<string, Instance> {
  const started = new Set(log.filter((e) => e.type === 'workflow-started').map((e) => e.stream));
  const isWorkflow = options.streams ?? ((s: string) => started.has(s));
  const out = new Map<string, Instance>();
  for (const e of log) {
    if (!isWorkflow(e.stream)) continue;
    let inst = out.get(e.stream);
    if (inst === undefined) {
      inst = {
        stream: e.stream,
        completed: new Map(),
        compensated: new Set(),
        failedStep: undefined,
        end: undefined,
      };
      out.set(e.stream, inst);
    }
    const step = (e.data as { step?: string } | null)?.step;
    if (e.type === 'step-completed' && step !== undefined) {
      const list = inst.completed.get(step) ?? [];
      list.push(e);
      inst.completed.set(step, list);
    } else if (e.type === 'step-compensated' && step !== undefined) inst.compensated.add(step);
    else if (e.type === 'step-failed' && step !== undefined) inst.failedStep = step;
    else if (e.type === 'workflow-completed') inst.end = 'completed';
    else if (e.type === 'workflow-failed') inst.end = 'failed';
  }
  return out;
}

/**
 * Saga atomicity: every saga that ended failed has compensated every step it completed, and every
 * one that ended completed compensated none; a saga still running at the end is `unknown` (unless
 * `allowRunning`).
 */
export function sagaAtomicity(options: WorkflowCheckOptions = {}): Checker {
  const name = 'sagaAtomicity';
  return {
    name,
    check(history) {
      const bad: LogEntry[] = [];
      let running = 0;
      let count = 0;
      for (const inst of instances(history.log, options).values()) {
        count++;
        if (inst.end === undefined) {
          running++;
          continue;
        }
        for (const [step, entries] of inst.completed) {
          const undone = inst.compensated.has(step);
          if (inst.end === 'failed' && !undone) bad.push(entries[0]!);
          if (inst.end === 'completed' && undone) bad.push(entries[0]!);
        }
      }
      if (bad.length > 0)
        return violated(
          name,
          `${bad.length} step(s) left half done, first: ${bad[0]!.stream} step ${(bad[0]!.data as { step: string }).step}`,
          [],
          bad,
        );
      if (running > 0 && options.allowRunning !== true)
        return unknown(name, `${running} of ${count} saga(s) still running at the end`);
      return ok(name, `${count} saga(s): all or nothing`);
    },
  };
}

/** Workflow steps exactly once: no step of an instance is recorded completed twice. */
export function workflowStepsOnce(options: WorkflowCheckOptions = {}): Checker {
  const name = 'workflowStepsOnce';
  return {
    name,
    check(history) {
      const bad: LogEntry[] = [];
      let running = 0;
      let steps = 0;
      const all = instances(history.log, options);
      for (const inst of all.values()) {
        if (inst.end === undefined) running++;
        for (const entries of inst.completed.values()) {
          steps++;
          if (entries.length > 1) bad.push(...entries);
        }
      }
      if (bad.length > 0)
        return violated(
          name,
          `${bad[0]!.stream}: step ${(bad[0]!.data as { step: string }).step} completed more than once`,
          [],
          bad,
        );
      if (running > 0 && options.allowRunning !== true)
        return unknown(name, `${running} of ${all.size} workflow(s) still running at the end`);
      return ok(name, `${steps} step(s) of ${all.size} workflow(s), each completed once`);
    },
  };
}

/** Options of {@link livenessAfterHeal}. */
export interface LivenessOptions {
  /** Every key must answer an operation invoked after the heal within this. Defaults to 5000 ms. */
  readonly withinMs?: number;
  /** The keys that must answer. Defaults to every key in the history. */
  readonly keys?: readonly string[];
}

/**
 * Liveness after the faults heal: after the last fault ended, each key answers (`ok`) some operation
 * within `withinMs` of that moment. A key with no operation after the heal is a violation too.
 */
export function livenessAfterHeal(options: LivenessOptions = {}): Checker {
  const name = 'livenessAfterHeal';
  const within = options.withinMs ?? 5000;
  return {
    name,
    check(history) {
      let heal = 0;
      for (const op of history.ops)
        if (op.process === 'nemesis' && op.type === 'ok') heal = Math.max(heal, op.time);
      const all = pairs(history.ops);
      const keys = options.keys ?? [
        ...new Set(all.flatMap((p) => (p.invoke.key === undefined ? [] : [p.invoke.key]))),
      ];
      const stuck: Op[] = [];
      const missing: string[] = [];
      for (const key of keys) {
        const after = all.filter((p) => p.invoke.key === key && p.invoke.time >= heal);
        const answered = after.some((p) => outcome(p) === 'ok' && p.complete!.time <= heal + within);
        if (answered) continue;
        if (after.length === 0) missing.push(key);
        else
          stuck.push(...after.slice(0, 3).flatMap((p) => (p.complete ? [p.invoke, p.complete] : [p.invoke])));
      }
      if (stuck.length > 0 || missing.length > 0)
        return violated(
          name,
          `${stuck.length > 0 ? 'keys did not answer' : 'keys had no operation'} within ${within} ms of the heal at ${heal} ms${missing.length > 0 ? `: ${missing.slice(0, 5).join(', ')}` : ''}`,
          stuck,
        );
      return ok(name, `${keys.length} key(s) answered within ${within} ms of the heal at ${heal} ms`);
    },
  };
}

/**
 * A user's invariant over the history: `holds` returns true, or the operations or log entries that
 * break it (or a message). It throwing is `unknown`.
 * @example
 * ```ts
 * const totalKept = invariant('total constant', (h) => sum(h.log) === 1000 || 'money appeared or vanished');
 * ```
 */
export function invariant(
  name: string,
  holds: (
    history: History,
  ) => boolean | string | { ops?: readonly Op[]; entries?: readonly LogEntry[]; message?: string },
): Checker {
  return {
    name,
    check(history) {
      const result = holds(history);
      if (result === true) return ok(name, 'holds');
      if (result === false) return violated(name, 'does not hold', []);
      if (typeof result === 'string') return violated(name, result, []);
      return violated(name, result.message ?? 'does not hold', result.ops ?? [], result.entries);
    },
  };
}
