/**
 * The events of agents on the system's stream, declared here by augmenting the runtime's
 * `TroupeEvents` so that no lower layer knows about agents. An agent publishes them with
 * `system.publish`.
 */
import type { Address } from '../protocols/index.js';
import type { SystemEventOf } from '../runtime/index.js';

declare module '../runtime/index.js' {
  interface TroupeEvents {
    /** One step of an agent run: a model call, or a tool call. */
    'agent-step': {
      readonly agent: Address;
      /** The run's id: every step of one `run` shares it. */
      readonly run: string;
      /** 1 for the first model call of the run; a tool call has the number of the model call that asked for it. */
      readonly step: number;
      readonly kind: 'model' | 'tool';
      /** The model (`openai:gpt-4o-mini`) or the tool. */
      readonly name: string;
      readonly ms: number;
      /** For a model step: the tokens it used. */
      readonly usage?: { readonly inputTokens: number; readonly outputTokens: number };
      /** For a model step: the tools it asked for. */
      readonly toolCalls?: readonly string[];
      /** The error's code, for a step that failed (a tool's error goes back to the model). */
      readonly error?: string;
    };
    /** An agent run began, ended with an answer, or failed. */
    'agent-run': {
      readonly agent: Address;
      readonly run: string;
      readonly phase: 'started' | 'finished' | 'failed';
      /** Model calls so far. */
      readonly steps: number;
      /** For a failed run: the error's code. */
      readonly error?: string;
    };
  }
}

/** One step of an agent run: a model call, or a tool call. */
export type AgentStepEvent = SystemEventOf<'agent-step'>;
/** An agent run began, ended with an answer, or failed. */
export type AgentRunEvent = SystemEventOf<'agent-run'>;
