/**
 * How an OTP trace and a Troupe trace of the same scenario are compared: token by token, in order,
 * after two mappings, each for a documented reason (README, "Supervision semantics"):
 *
 * 1. Troupe runs `postStop` on an actor whose `preStart` threw (so it can release what it acquired
 *    before throwing); OTP calls no `terminate` after a failed `init`. The Troupe stop that follows a
 *    failed start of the same worker is dropped.
 * 2. OTP stops a `simple_one_for_one` supervisor's children all at once, in no defined order; Troupe
 *    stops a dynamic supervisor's children last started first, one of OTP's possible orders. A run of
 *    consecutive shutdown stops of one dynamic supervisor's children is sorted, on both sides.
 */
import { dynamicParent } from './scenario.js';

/** Mapping 1, on a Troupe trace. */
export function withoutStopsAfterFailedStarts(trace: readonly string[]): string[] {
  const failed = new Set<string>();
  const out: string[] = [];
  for (const token of trace) {
    if (token.startsWith('+')) {
      const name = token.endsWith('!') ? token.slice(1, -1) : token.slice(1);
      if (token.endsWith('!')) failed.add(name);
      else failed.delete(name);
    } else if (token.startsWith('-')) {
      const name = token.endsWith('!') ? token.slice(1, -1) : token.slice(1);
      if (failed.delete(name)) continue;
    }
    out.push(token);
  }
  return out;
}

/** Mapping 2, on either trace. */
export function withDynamicStopsSorted(trace: readonly string[]): string[] {
  const out = [...trace];
  let i = 0;
  while (i < out.length) {
    const parent = dynamicShutdown(out[i]!);
    let j = i + 1;
    if (parent !== undefined) while (j < out.length && dynamicShutdown(out[j]!) === parent) j++;
    if (j - i > 1) out.splice(i, j - i, ...out.slice(i, j).sort());
    i = j;
  }
  return out;
}

/** The dynamic supervisor of a worker its supervisor stopped (`-N`), else undefined. */
function dynamicShutdown(token: string): string | undefined {
  return token.startsWith('-') && !token.endsWith('!') ? dynamicParent(token.slice(1)) : undefined;
}

export function canonicalOtp(trace: readonly string[]): string[] {
  return withDynamicStopsSorted(trace);
}

export function canonicalTroupe(trace: readonly string[]): string[] {
  return withDynamicStopsSorted(withoutStopsAfterFailedStarts(trace));
}

/** The index of the first token where the mapped traces differ, or -1 when they agree. */
export function firstDifference(otp: readonly string[], troupe: readonly string[]): number {
  const a = canonicalOtp(otp);
  const b = canonicalTroupe(troupe);
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** The two mapped traces in two columns, one token a row, the first difference marked. */
export function sideBySide(otp: readonly string[], troupe: readonly string[]): string {
  const a = canonicalOtp(otp);
  const b = canonicalTroupe(troupe);
  const first = firstDifference(otp, troupe);
  const width = Math.max(12, ...a.map((t) => t.length)) + 2;
  const rows = [`    ${'Erlang/OTP'.padEnd(width)}Troupe`];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const mark = i === first ? '>>' : a[i] === b[i] ? '  ' : ' ≠';
    rows.push(`${mark}  ${(a[i] ?? '').padEnd(width)}${b[i] ?? ''}`);
  }
  return rows.join('\n');
}
