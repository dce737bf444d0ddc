/**
 * The events of the memory layer on the system's stream, declared here by augmenting the runtime's
 * `TroupeEvents`. A persistent actor publishes them with its system's `publish`.
 */
import type { Address, TroupeError } from '../protocols/index.js';
import type { SystemEventOf } from '../runtime/index.js';

declare module '../runtime/index.js' {
  interface TroupeEvents {
    /**
     * A persistent actor's snapshot failed (a state that is not JSON data, a journal outage). Its
     * events are durable, so only its recovery gets longer; it tries again after its next command.
     * Published for the first failure of each incarnation.
     */
    'snapshot-failed': {
      readonly address: Address;
      readonly stream: string;
      /** The stream version the snapshot was for. */
      readonly version: number;
      readonly error: Error;
    };
    /**
     * A journal failed in a way no call of it returns (a PGlite directory's lock was lost). A journal
     * has no system: its `onDefect` option is where to publish this.
     */
    'journal-defect': { readonly error: TroupeError };
  }
}

/** A persistent actor's snapshot failed. */
export type SnapshotFailedEvent = SystemEventOf<'snapshot-failed'>;
