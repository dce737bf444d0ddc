/**
 * Histories in the style of Jepsen: every client operation is an `invoke` followed by `ok`, `fail`
 * (it certainly did not happen) or `info` (it may or may not have happened: a timeout, a lost
 * reply), each with the time and the node; faults are operations of the `nemesis` process.
 */
import { invalidOption } from '../../../protocols/index.js';

/** What a completed or started operation says of itself. */
export type OpType = 'invoke' | 'ok' | 'fail' | 'info';

/** One line of a history. */
export interface Op {
  /** Position in the history, from 0. */
  readonly index: number;
  readonly type: OpType;
  /** The client that made it (`nemesis` for faults). One client has one operation in flight at a time. */
  readonly process: number | 'nemesis';
  /** What it does: `read`, `write`, `cas`, `add`, `transfer`, a fault's kind... */
  readonly f: string;
  /** The key it touches, for per-key checkers. */
  readonly key?: string;
  /** Its argument on invoke; its result on ok. */
  readonly value?: unknown;
  /** Simulated (or, on real processes, monotonic) time in ms since the run started. */
  readonly time: number;
  /** The node the client went through (for faults: the node the fault hit, if one). */
  readonly node?: string;
  /** Why it failed or is unknown (an error code or message). */
  readonly error?: string;
}

/** A run's record: what was planned and what happened. */
export interface History {
  readonly seed: number;
  /** The plan's name. */
  readonly plan: string;
  /** The workload's name (a built-in one's checkers judge it again on replay). */
  readonly workload?: string;
  readonly nodes: readonly string[];
  /** Length of the run in ms (simulated in a simulation). */
  readonly durationMs: number;
  readonly ops: readonly Op[];
  /** Events of the journal (or another log) the checkers read besides the operations. */
  readonly log: readonly LogEntry[];
}

/** One event of the system's durable log, as checkers see it. */
export interface LogEntry {
  readonly stream: string;
  readonly version: number;
  readonly type: string;
  readonly data: unknown;
  /** The command or message id that caused it, for duplicate checks. */
  readonly messageId?: string;
  /** The fencing token of the activation that wrote it. */
  readonly fence?: number;
  /** When it was written (ms since the run started). */
  readonly time?: number;
  readonly node?: string;
}

/** An invocation with its completion: what most checkers work on. */
export interface Pair {
  readonly invoke: Op;
  /** Undefined when the run ended with the operation in flight (treated as `info`). */
  readonly complete: Op | undefined;
}

/** Records a history as a run goes; `ops` are in the order they were recorded. */
export interface HistoryRecorder {
  /** Records an invocation and returns its completion functions. */
  invoke(
    process: number,
    f: string,
    value: unknown,
    options?: { key?: string; node?: string },
  ): {
    ok(value?: unknown): void;
    fail(error: string): void;
    info(error: string): void;
  };
  /**
   * Records a fault's start (`invoke`) or end (`ok`), or (`info`, with `error` saying why) a fault
   * of the plan that was not applied: a run on real processes that cannot play it.
   */
  nemesis(type: 'invoke' | 'ok' | 'info', f: string, value: unknown, node?: string, error?: string): void;
  /** Appends an entry of the durable log. */
  logged(entry: LogEntry): void;
  readonly ops: readonly Op[];
  readonly log: readonly LogEntry[];
}

/** Makes a {@link HistoryRecorder} reading times from `now` (ms since the run started). */
export function historyRecorder(now: () => number): HistoryRecorder {
  const ops: Op[] = [];
  const log: LogEntry[] = [];
  const push = (op: Omit<Op, 'index'>): void => {
    ops.push(clean({ ...op, index: ops.length }));
  };
  return {
    ops,
    log,
    invoke(process, f, value, options = {}) {
      const base = { process, f, ...(options.key === undefined ? {} : { key: options.key }) };
      const node = options.node === undefined ? {} : { node: options.node };
      push({ ...base, ...node, type: 'invoke', value, time: now() });
      let done = false;
      const end = (type: OpType, extra: { value?: unknown; error?: string }) => {
        if (done) return;
        done = true;
        push({ ...base, ...node, type, ...extra, time: now() });
      };
      return {
        ok: (result) => end('ok', { value: result }),
        fail: (error) => end('fail', { error }),
        info: (error) => end('info', { error }),
      };
    },
    nemesis(type, f, value, node, error) {
      push({
        type,
        process: 'nemesis',
        f,
        value,
        time: now(),
        ...(node === undefined ? {} : { node }),
        ...(error === undefined ? {} : { error }),
      });
    },
    logged(entry) {
      log.push(entry);
    },
  };
}

/** Drops `undefined` fields, so a history serializes the same however it was built. */
function clean(op: Op): Op {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(op)) if (v !== undefined) out[k] = v;
  return out as unknown as Op;
}

/**
 * Pairs each client invocation with its completion (the next op of the same process). Nemesis
 * operations are left out. An invocation without a completion gets `complete: undefined`.
 */
export function pairs(ops: readonly Op[]): Pair[] {
  const open = new Map<number, number>();
  const out: { invoke: Op; complete: Op | undefined }[] = [];
  for (const op of ops) {
    if (op.process === 'nemesis') continue;
    if (op.type === 'invoke') {
      open.set(op.process, out.length);
      out.push({ invoke: op, complete: undefined });
    } else {
      const at = open.get(op.process);
      if (at === undefined) continue;
      out[at]!.complete = op;
      open.delete(op.process);
    }
  }
  return out;
}

/** The outcome of a pair: `info` for one still in flight at the end. */
export function outcome(pair: Pair): 'ok' | 'fail' | 'info' {
  return pair.complete === undefined ? 'info' : (pair.complete.type as 'ok' | 'fail' | 'info');
}

/** The faults of the plan that were not applied (nemesis `info` operations), with why. */
export function skippedFaults(history: Pick<History, 'ops'>): Op[] {
  return history.ops.filter((op) => op.process === 'nemesis' && op.type === 'info');
}

/** The fault windows of a history: each nemesis start with its end (or the end of the run). */
export function faultWindows(history: Pick<History, 'ops' | 'durationMs'>): FaultWindow[] {
  const open = new Map<string, Op[]>();
  const windows: FaultWindow[] = [];
  for (const op of history.ops) {
    // A skipped fault (`info`) had no window.
    if (op.process !== 'nemesis' || op.type === 'info') continue;
    const id = faultId(op);
    if (op.type === 'invoke') {
      const list = open.get(id) ?? [];
      list.push(op);
      open.set(id, list);
    } else {
      const start = open.get(id)?.shift();
      if (start !== undefined) windows.push(window(start, op.time));
    }
  }
  for (const list of open.values())
    for (const start of list) windows.push(window(start, Math.max(start.time, history.durationMs)));
  return windows.sort((a, b) => a.start - b.start);
}

/** A fault from its start to its end. */
export interface FaultWindow {
  readonly f: string;
  readonly start: number;
  readonly end: number;
  readonly node?: string;
  readonly value: unknown;
}

function faultId(op: Op): string {
  return `${op.f}|${op.node ?? ''}|${JSON.stringify(op.value)}`;
}

function window(start: Op, end: number): FaultWindow {
  return {
    f: start.f,
    start: start.time,
    end,
    value: start.value,
    ...(start.node === undefined ? {} : { node: start.node }),
  };
}

/**
 * The history as JSON, keys in a fixed order: the same run gives the same bytes.
 */
export function historyJson(history: History): string {
  return `${JSON.stringify(history, null, 1)}\n`;
}

/**
 * Reads a history written by {@link historyJson}.
 * @throws TroupeError `ERR_INVALID_OPTION` when the text is not one.
 */
export function parseHistory(text: string): History {
  const value = JSON.parse(text) as History;
  if (typeof value !== 'object' || value === null || !Array.isArray(value.ops) || !Array.isArray(value.log))
    throw invalidOption('history', 'not a chaos history: expected an object with `ops` and `log` arrays');
  return value;
}
