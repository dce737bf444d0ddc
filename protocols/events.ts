import type { Address } from './address.js';

/**
 * Events of the layers above the kernel (guards, agents). They travel on the system's event stream
 * with the kernel's own (`system.events$`), published with `system.publish`.
 */

/** The states of a circuit breaker. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** A circuit breaker changed state: closed → open → half-open → closed (or open again). */
export interface BreakerTransitionEvent {
  readonly type: 'breaker-transition';
  readonly at: number;
  readonly breaker: string;
  readonly from: BreakerState;
  readonly to: BreakerState;
}

/** One step of an agent run: a model call, or a tool call. */
export interface AgentStepEvent {
  readonly type: 'agent-step';
  readonly at: number;
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
}

/** An agent run began, ended with an answer, or failed. */
export interface AgentRunEvent {
  readonly type: 'agent-run';
  readonly at: number;
  readonly agent: Address;
  readonly run: string;
  readonly phase: 'started' | 'finished' | 'failed';
  /** Model calls so far. */
  readonly steps: number;
  /** For a failed run: the error's code. */
  readonly error?: string;
}

/** The events other layers publish on the system's stream. */
export type ExtensionEvent = BreakerTransitionEvent | AgentStepEvent | AgentRunEvent;

/** An {@link ExtensionEvent} as a publisher gives it: the system stamps `at` with its own clock. */
export type PublishedEvent = ExtensionEvent extends infer E
  ? E extends unknown
    ? Omit<E, 'at'>
    : never
  : never;
