/**
 * Per-key linearizability of registers and counters: the Wing–Gong search with Lowe's memoization
 * (a configuration — the set of operations linearized and the model's state — is explored once).
 * Keys are checked apart (linearizability is compositional). A search that exceeds its budget says
 * `unknown`, never `ok`.
 */
import { type History, type Op, outcome, type Pair, pairs } from '../history/index.js';
import { type Checker, ok, unknown, type Verdict, violated } from './verdict.js';

/**
 * A sequential specification: `step` answers the state after applying an operation with its input
 * and (for an `ok` operation) its output, or `undefined` when the operation could not have returned
 * that output from that state.
 */
export interface Model<S> {
  readonly name: string;
  readonly init: S;
  /** Whether an operation changes the state (reads do not: a read that failed or is unknown is dropped). */
  readonly writes: (f: string) => boolean;
  step(state: S, f: string, input: unknown, output: unknown, known: boolean): S | undefined;
  /** A string or number naming the state, for memoization. */
  stateKey(state: S): string | number;
}

/**
 * A read/write/compare-and-set register. `write` takes the value; `read` returns it; `cas` takes
 * `[expected, next]` and is recorded `ok` only when it swapped (a `fail` cas did nothing).
 */
export function registerModel(init: unknown = null): Model<unknown> {
  return {
    name: 'register',
    init,
    writes: (f) => f !== 'read',
    step(state, f, input, output, known) {
      switch (f) {
        case 'write':
          return input;
        case 'read':
          return !known || same(output, state) ? state : undefined;
        case 'cas': {
          const [expected, next] = input as [unknown, unknown];
          return same(state, expected) ? next : undefined;
        }
        default:
          return undefined;
      }
    },
    stateKey: (s) => JSON.stringify(s) ?? 'undefined',
  };
}

/** A counter: `add` takes an amount; `read` returns the total. */
export function counterModel(init = 0): Model<number> {
  return {
    name: 'counter',
    init,
    writes: (f) => f === 'add',
    step(state, f, input, output, known) {
      if (f === 'add') return state + (input as number);
      if (f === 'read') return !known || output === state ? state : undefined;
      return undefined;
    },
    stateKey: (s) => s,
  };
}

function same(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** Options of {@link linearizable}. */
export interface LinearizableOptions<S> {
  /** The sequential specification. Defaults to {@link registerModel}. */
  readonly model?: Model<S>;
  /** Only operations with these `f` (others are ignored). Defaults to every operation with a key. */
  readonly fs?: readonly string[];
  /** Most search steps over all keys before the answer is `unknown`. Defaults to 5,000,000. */
  readonly budget?: number;
}

/** What {@link checkLinearizable} found for one key. */
export interface KeyResult {
  readonly key: string;
  readonly verdict: 'ok' | 'violated' | 'unknown';
  /** For a violation: the operation that could not be linearized and those linearized before it. */
  readonly ops: readonly Op[];
  readonly steps: number;
}

/**
 * Checks that each key's operations are linearizable against `model`. Completed `ok` operations must
 * take effect between their invocation and completion; `info` (unknown) writes may take effect any
 * time after their invocation, or never; `fail` operations never happened.
 */
export function checkLinearizable<S>(
  history: Pick<History, 'ops'>,
  options: LinearizableOptions<S> = {},
): KeyResult[] {
  const model = (options.model ?? registerModel()) as Model<S>;
  const fs = options.fs === undefined ? undefined : new Set(options.fs);
  const byKey = new Map<string, Pair[]>();
  for (const pair of pairs(history.ops)) {
    const { key, f } = pair.invoke;
    if (key === undefined || (fs !== undefined && !fs.has(f))) continue;
    let list = byKey.get(key);
    if (list === undefined) {
      list = [];
      byKey.set(key, list);
    }
    list.push(pair);
  }
  let budget = options.budget ?? 5_000_000;
  const results: KeyResult[] = [];
  for (const key of [...byKey.keys()].sort()) {
    const result = searchKey(key, byKey.get(key)!, model, budget);
    budget -= result.steps;
    results.push(result);
  }
  return results;
}

/** A checker of {@link checkLinearizable}. */
export function linearizable<S>(options: LinearizableOptions<S> = {}): Checker {
  const name = `linearizable(${(options.model ?? registerModel()).name})`;
  return {
    name,
    check(history): Verdict {
      const results = checkLinearizable(history, options);
      const bad = results.find((r) => r.verdict === 'violated');
      if (bad !== undefined) {
        const op = bad.ops[bad.ops.length - 1]!;
        return violated(
          name,
          `key ${bad.key}: ${op.f} ${JSON.stringify(op.value)} (op ${op.index}) cannot be linearized`,
          bad.ops,
        );
      }
      const undecided = results.filter((r) => r.verdict === 'unknown');
      if (undecided.length > 0)
        return unknown(name, `search budget exhausted on ${undecided.length} key(s): ${undecided[0]!.key}`);
      return ok(name, `${results.length} key(s) linearizable`);
    },
  };
}

interface Call {
  readonly invoke: Op;
  readonly output: unknown;
  /** Whether the output is known (an `ok` operation). */
  readonly known: boolean;
  /** Must be linearized (`ok`); an `info` one may be left out. */
  readonly required: boolean;
}

const END = -1;

function searchKey<S>(key: string, list: readonly Pair[], model: Model<S>, budget: number): KeyResult {
  const calls: Call[] = [];
  // Events: [history index, call number, is-return].
  const events: [number, number, boolean][] = [];
  for (const pair of list) {
    const kind = outcome(pair);
    if (kind === 'fail') continue;
    if (kind === 'info' && !model.writes(pair.invoke.f)) continue;
    const n = calls.length;
    calls.push({
      invoke: pair.invoke,
      output: pair.complete?.value,
      known: kind === 'ok',
      required: kind === 'ok',
    });
    events.push([pair.invoke.index, n, false]);
    if (kind === 'ok') events.push([pair.complete!.index, n, true]);
  }
  events.sort((a, b) => a[0] - b[0]);
  const m = events.length;
  // A doubly linked list of events; slot 0 is the head, events are 1..m.
  const next = new Int32Array(m + 1);
  const prev = new Int32Array(m + 1);
  const callOf = new Int32Array(m + 1);
  const isReturn = new Uint8Array(m + 1);
  const callEvent = new Int32Array(calls.length);
  const returnEvent = new Int32Array(calls.length).fill(END);
  for (let i = 0; i < m; i++) {
    const [, call, ret] = events[i]!;
    const e = i + 1;
    callOf[e] = call;
    isReturn[e] = ret ? 1 : 0;
    if (ret) returnEvent[call] = e;
    else callEvent[call] = e;
    prev[e] = i;
    next[i] = e;
  }
  next[m] = END;
  const lift = (call: number) => {
    for (const e of [callEvent[call]!, returnEvent[call]!]) {
      if (e === END) continue;
      next[prev[e]!] = next[e]!;
      if (next[e] !== END) prev[next[e]!] = prev[e]!;
    }
  };
  const unlift = (call: number) => {
    for (const e of [returnEvent[call]!, callEvent[call]!]) {
      if (e === END) continue;
      next[prev[e]!] = e;
      if (next[e] !== END) prev[next[e]!] = e;
    }
  };
  // The linearized set as a bitset, hashed incrementally (two 32-bit Zobrist words) for the memo.
  const words = (calls.length + 31) >>> 5;
  const bits = new Uint32Array(words);
  const zobrist = new Int32Array(calls.length * 2);
  let z = 0x9e3779b9 | 0;
  for (let i = 0; i < zobrist.length; i++) {
    z = (z + 0x6d2b79f5) | 0;
    let t = Math.imul(z ^ (z >>> 15), 1 | z);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    zobrist[i] = t ^ (t >>> 14);
  }
  let h1 = 0;
  let h2 = 0;
  const seen = new Map<string, Uint32Array[]>();
  const remember = (state: S): boolean => {
    const k = `${h1}:${h2}:${model.stateKey(state)}`;
    const found = seen.get(k);
    if (found !== undefined) {
      for (const b of found) if (equalBits(b, bits)) return false;
      found.push(bits.slice());
    } else seen.set(k, [bits.slice()]);
    return true;
  };
  const toggle = (call: number) => {
    bits[call >>> 5]! ^= 1 << (call & 31);
    h1 ^= zobrist[call * 2]!;
    h2 ^= zobrist[call * 2 + 1]!;
  };
  let required = calls.filter((c) => c.required).length;
  const stack: { call: number; state: S }[] = [];
  let state = model.init;
  let e = next[0]!;
  let steps = 0;
  let deepest = -1;
  let blocker = -1;
  while (required > 0) {
    if (++steps > budget) return { key, verdict: 'unknown', ops: [], steps };
    if (e !== END && isReturn[e] === 0) {
      const call = callOf[e]!;
      const c = calls[call]!;
      const after = model.step(state, c.invoke.f, c.invoke.value, c.output, c.known);
      if (after !== undefined) {
        toggle(call);
        if (remember(after)) {
          stack.push({ call, state });
          state = after;
          lift(call);
          if (c.required) required--;
          e = next[0]!;
          continue;
        }
        toggle(call);
      }
      e = next[e]!;
    } else {
      if (stack.length > deepest && e !== END) {
        deepest = stack.length;
        blocker = callOf[e]!;
      }
      const top = stack.pop();
      if (top === undefined) {
        const prefix = (best: number) => (best < 0 ? [] : [calls[best]!.invoke]);
        return { key, verdict: 'violated', ops: prefix(blocker), steps };
      }
      state = top.state;
      toggle(top.call);
      unlift(top.call);
      if (calls[top.call]!.required) required++;
      e = next[callEvent[top.call]!]!;
    }
  }
  return { key, verdict: 'ok', ops: [], steps };
}

function equalBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
