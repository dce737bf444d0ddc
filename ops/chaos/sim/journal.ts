/**
 * The journal as one node sees it in a simulation: the shared in-memory journal behind faults (an
 * outage refuses with `ERR_JOURNAL_UNAVAILABLE`, slowness waits on the node's clock, a restart of
 * the server drops the connections: a call in flight then fails although it may have committed)
 * and a dead node (its calls never answer). Every committed append is recorded for the checkers, with its
 * fence, node and time.
 */

import type { Journal } from '../../../memory/index.js';
import { TroupeError } from '../../../protocols/index.js';
import { sleep } from '../../../runtime/index.js';
import type { LogEntry } from '../history/index.js';
import type { NodeClock } from './scheduler.js';

/** The journal faults in force, shared by every node's view. */
export interface JournalFaults {
  outage: boolean;
  latencyMs: number;
  /** Bumped by each server restart: a call that began before it lost its connection. */
  connections: number;
}

export function simJournal(
  journal: Journal,
  node: string,
  clock: NodeClock,
  faults: JournalFaults,
  record: (entry: LogEntry) => void,
  now: () => number,
): Journal {
  const gate = async <T>(call: () => Promise<T>): Promise<T> => {
    if (clock.state === 'dead') return new Promise<T>(() => {});
    const connection = faults.connections;
    if (faults.latencyMs > 0) await sleep(faults.latencyMs, { clock });
    if (faults.outage)
      throw new TroupeError(
        'ERR_JOURNAL_UNAVAILABLE',
        `the journal is unreachable (simulated outage), seen from ${node}`,
      );
    // A connection the restart dropped: what the call did (if anything) is not known to the caller.
    if (faults.connections !== connection) throw lostConnection(node);
    const result = await call();
    // A node killed while its call was in flight never hears the answer.
    if ((clock.state as string) === 'dead') return new Promise<T>(() => {});
    if (faults.connections !== connection) throw lostConnection(node);
    return result;
  };
  return journalView(journal, {
    gate,
    async append(stream, events, options) {
      const result = await journal.append(stream, events, options);
      if (!result.duplicate) {
        events.forEach((event, i) => {
          record({
            stream,
            version: result.fromVersion + i,
            type: event.type,
            data: event.data,
            ...(options?.messageId === undefined ? {} : { messageId: options.messageId }),
            ...(options?.fence === undefined ? {} : { fence: options.fence }),
            time: now(),
            node,
          });
        });
      }
      return result;
    },
    // The shared journal outlives every node; the simulation closes it.
    closes: false,
  });
}

/** How {@link journalView} sees a journal. */
export interface JournalViewOptions {
  /**
   * Every call goes through it but `subscribe` and the lifecycle: it may wait (a slow journal),
   * refuse (an outage) or never answer (a dead node).
   */
  gate<T>(call: () => Promise<T>): Promise<T>;
  /** The append that goes through the gate (to record or stamp what is appended). Defaults to the journal's. */
  readonly append?: Journal['append'];
  /** Whether closing the view closes the journal (a node process's own) or not (a shared one). */
  readonly closes: boolean;
}

/**
 * A journal as one node of a chaos run sees it, in simulation or in a node process: `journal`
 * behind the run's faults (`gate`).
 */
export function journalView(journal: Journal, options: JournalViewOptions): Journal {
  const { gate, closes } = options;
  const append = options.append ?? ((stream, events, opts) => journal.append(stream, events, opts));
  return {
    append: (stream, events, opts) => gate(() => append(stream, events, opts)),
    readStream: (stream, opts) => gate(() => journal.readStream(stream, opts)),
    streamVersion: (stream) => gate(() => journal.streamVersion(stream)),
    readAll: (opts) => gate(() => journal.readAll(opts)),
    subscribe: (opts) => journal.subscribe(opts),
    saveSnapshot: (stream, version, state) => gate(() => journal.saveSnapshot(stream, version, state)),
    loadSnapshot: (stream) => gate(() => journal.loadSnapshot(stream)),
    pruneToSnapshot: (stream) => gate(() => journal.pruneToSnapshot(stream)),
    loadCheckpoint: (name) => gate(() => journal.loadCheckpoint(name)),
    saveCheckpoint: (name, checkpoint) => gate(() => journal.saveCheckpoint(name, checkpoint)),
    close: closes ? () => journal.close() : async () => {},
    drain: closes ? () => journal.drain() : async () => {},
    closed: () => journal.closed(),
    [Symbol.asyncDispose]: closes ? () => journal.close() : async () => {},
  };
}

function lostConnection(node: string): TroupeError {
  return new TroupeError(
    'ERR_JOURNAL_UNAVAILABLE',
    `the connection to the journal was lost (simulated Postgres restart), seen from ${node}`,
  );
}
