/**
 * Test tools for durable workflows: a journal that fails one append (before or after it commits) to
 * crash a workflow's actor at a chosen point, a journal that forgets completions (a broken engine's
 * memory), and the exactly-once checker, a function of what ran and what the journal holds.
 */
import { type Journal, type StoredEvent, TroupeError } from '../../index.js';

/**
 * Wraps `inner`: the `failAt`-th append that carries events (and that `counts` accepts) fails, after
 * committing when `committed`; only one append fails.
 */
export function crashingJournal(
  inner: Journal,
  plan: {
    failAt: number;
    committed: boolean;
    stream?: string;
    /** Counts only the appends this accepts (default: every append with events). */
    counts?: (events: readonly { type: string; data: unknown }[]) => boolean;
  },
): Journal & { readonly crashed: boolean; readonly appends: number; readonly versionAtCrash: number } {
  let appends = 0;
  let crashed = false;
  let versionAtCrash = 0;
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'crashed') return crashed;
      if (property === 'appends') return appends;
      if (property === 'versionAtCrash') return versionAtCrash;
      if (property === 'append') {
        return async (stream: string, events: readonly unknown[], options?: object) => {
          if (
            events.length === 0 ||
            (plan.stream !== undefined && stream !== plan.stream) ||
            (plan.counts !== undefined && !plan.counts(events as never)) ||
            crashed
          )
            return target.append(stream, events as never, options);
          appends++;
          if (appends !== plan.failAt) return target.append(stream, events as never, options);
          crashed = true;
          if (plan.committed) await target.append(stream, events as never, options);
          versionAtCrash = await target.streamVersion(stream);
          throw new TroupeError('ERR_JOURNAL_UNAVAILABLE', 'injected crash');
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as Journal & { readonly crashed: boolean; readonly appends: number; readonly versionAtCrash: number };
}

/**
 * A journal that forgets the first `step-completed` event of each workflow stream when read: what
 * an engine that lost a completion would recover from.
 */
export function forgetfulJournal(inner: Journal): Journal {
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'readStream') {
        return async (stream: string, options?: { fromVersion?: number; limit?: number }) => {
          const events = await target.readStream(stream, options);
          const first = events.findIndex((e) => e.type === 'step-completed');
          // Keeps the stream's newest event, so appends after recovery still find its version.
          if (first >= 0 && first < events.length - 1) events.splice(first, 1);
          return events;
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** What one crashed run did, for the checker. */
export interface CrashedRun {
  /** Every step name of the workflow. */
  readonly steps: readonly string[];
  /** Each execution of a step's function, in order, and whether it began after the crash. */
  readonly executions: readonly { readonly step: string; readonly afterCrash: boolean }[];
  /** The instance's stream, in version order, after it ended. */
  readonly events: readonly StoredEvent[];
  /** The stream's version once the crash had happened (what the journal held then). */
  readonly versionAtCrash: number;
  readonly results: Readonly<Record<string, unknown>>;
  readonly output: unknown;
}

/** What an uninterrupted run of the same workflow gave. */
export interface Reference {
  readonly results: Readonly<Record<string, unknown>>;
  readonly output: unknown;
}

/**
 * The exactly-once checker. A step whose completion the journal held at the crash must not run
 * again; a step that ran before the crash without a recorded completion was in flight and may run
 * once more; every other step runs exactly once. Every step is recorded done exactly once, and the
 * results and output equal the uninterrupted run's. Returns the violations (none: ok).
 */
export function checkExactlyOnce(run: CrashedRun, reference: Reference): string[] {
  const violations: string[] = [];
  const recordedAtCrash = new Set(
    run.events
      .filter(
        (e) => e.version <= run.versionAtCrash && (e.type === 'step-completed' || e.type === 'step-skipped'),
      )
      .map((e) => (e.data as { step: string }).step),
  );
  const doneEvents = new Map<string, number>();
  for (const e of run.events) {
    if (e.type !== 'step-completed' && e.type !== 'step-skipped') continue;
    const step = (e.data as { step: string }).step;
    doneEvents.set(step, (doneEvents.get(step) ?? 0) + 1);
  }
  for (const step of run.steps) {
    const before = run.executions.filter((x) => x.step === step && !x.afterCrash).length;
    const after = run.executions.filter((x) => x.step === step && x.afterCrash).length;
    const recorded = doneEvents.get(step) ?? 0;
    if (recorded !== 1) violations.push(`step ${step} is recorded done ${recorded} times`);
    if (recordedAtCrash.has(step) && after > 0)
      violations.push(`step ${step} ran again after the crash though its completion was recorded`);
    if (before > 1) violations.push(`step ${step} ran ${before} times before the crash`);
    const inFlight = before === 1 && !recordedAtCrash.has(step);
    if (!inFlight && before + after > 1) violations.push(`step ${step} ran ${before + after} times`);
    if (inFlight && after > 1)
      violations.push(`step ${step}, in flight at the crash, ran ${after} times after it`);
  }
  if (JSON.stringify(run.results) !== JSON.stringify(reference.results))
    violations.push(`results differ: ${JSON.stringify(run.results)} vs ${JSON.stringify(reference.results)}`);
  if (JSON.stringify(run.output) !== JSON.stringify(reference.output))
    violations.push(`output differs: ${JSON.stringify(run.output)} vs ${JSON.stringify(reference.output)}`);
  return violations;
}
