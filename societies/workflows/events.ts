/**
 * The events of durable workflows (and sagas, built on them) on the system's stream, declared by
 * augmenting the runtime's `TroupeEvents`. A workflow's actor publishes them after the journal holds
 * what they report.
 */
import type { SystemEventOf } from '../../runtime/index.js';

declare module '../../runtime/index.js' {
  interface TroupeEvents {
    /** A step of a workflow instance completed, was skipped, failed, or was compensated (or not). */
    'workflow-step': {
      /** The instance's id. */
      readonly workflow: string;
      /** The definition's name. */
      readonly definition: string;
      readonly step: string;
      readonly status: 'completed' | 'skipped' | 'failed' | 'compensated' | 'compensation-failed';
      /** For a failure: its code and message. */
      readonly error?: { readonly code: string; readonly message: string };
    };
    /** A workflow instance ended: completed (`ok`), or failed with its error (after compensations). */
    'workflow-ended': {
      readonly workflow: string;
      readonly definition: string;
      readonly ok: boolean;
      readonly error?: { readonly code: string; readonly message: string };
    };
  }
}

/** A step of a workflow instance changed state. */
export type WorkflowStepEvent = SystemEventOf<'workflow-step'>;
/** A workflow instance ended. */
export type WorkflowEndedEvent = SystemEventOf<'workflow-ended'>;
