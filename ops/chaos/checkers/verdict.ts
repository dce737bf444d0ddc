import type { History, LogEntry, Op } from '../history/index.js';

/** What a checker concluded: `unknown` when it could not decide (never `ok` then). */
export type VerdictKind = 'ok' | 'violated' | 'unknown';

/** A checker's verdict, with the operations and log entries that break it. */
export interface Verdict {
  readonly checker: string;
  readonly verdict: VerdictKind;
  /** One line for a person: what holds, or what broke. */
  readonly message: string;
  /** The operations that break it (empty when it holds). */
  readonly ops: readonly Op[];
  /** The log entries that break it. */
  readonly entries?: readonly LogEntry[];
}

/** A function of the history (operations and log) that says whether a property holds. */
export interface Checker {
  readonly name: string;
  check(history: History): Verdict;
}

export function ok(checker: string, message: string): Verdict {
  return { checker, verdict: 'ok', message, ops: [] };
}

export function violated(
  checker: string,
  message: string,
  ops: readonly Op[],
  entries?: readonly LogEntry[],
): Verdict {
  return { checker, verdict: 'violated', message, ops, ...(entries === undefined ? {} : { entries }) };
}

export function unknown(checker: string, message: string): Verdict {
  return { checker, verdict: 'unknown', message, ops: [] };
}

/** The combined verdict of several: violated if one is, else unknown if one is, else ok. */
export function worst(verdicts: readonly Verdict[]): VerdictKind {
  if (verdicts.some((v) => v.verdict === 'violated')) return 'violated';
  if (verdicts.some((v) => v.verdict === 'unknown')) return 'unknown';
  return 'ok';
}
