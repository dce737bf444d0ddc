import { type Attributes, type BatchObservableCallback, type Meter, metrics } from '@opentelemetry/api';
import type { UsageLedger } from '../../agents/index.js';
import { invalidOption } from '../../protocols/index.js';
import type { ActorSystem, TreeNode } from '../../runtime/index.js';
import { systemStats } from '../../runtime/internal.js';
import type { Breaker, BreakerState, Bulkhead } from '../../supervisors/index.js';
import { INSTRUMENTATION_SCOPE } from './tracing.js';

/** Options of {@link meterSystem}. */
export interface MeterSystemOptions {
  /** Defaults to `metrics.getMeter('troupe')` of the global meter provider. */
  readonly meter?: Meter;
  /** Prices model calls for `troupe.gen_ai.cost` (its `costOf`). Without it no cost is recorded. */
  readonly usage?: UsageLedger;
  /** Bulkheads whose calls in flight and queued are gauges. */
  readonly bulkheads?: readonly Bulkhead[];
  /** Breakers whose state is a gauge from the start (others appear at their first transition). */
  readonly breakers?: readonly Breaker[];
}

const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half-open'];

/**
 * Metrics of a system through the OpenTelemetry metrics API, from its event stream and its tree
 * (read at each collection). Names follow the OTel conventions (dots, units as UCUM); a Prometheus
 * exporter turns them into `troupe_messages_handled_total` and the like.
 *
 * | instrument | kind | attributes |
 * |---|---|---|
 * | `troupe.messages.handled` | counter | |
 * | `troupe.mailbox.depth` | gauge: messages waiting, all actors | |
 * | `troupe.mailbox.depth.max` | gauge: the deepest mailbox | |
 * | `troupe.actors` | gauge: live actors | |
 * | `troupe.actor.crashes`, `troupe.actor.restarts` | counters | |
 * | `troupe.supervisor.escalations` | counter | |
 * | `troupe.dead_letters` | counter | `reason` |
 * | `troupe.breaker.state` | gauge, 1 for the current state | `breaker`, `state` |
 * | `troupe.breaker.transitions` | counter | `breaker`, `to` |
 * | `troupe.bulkhead.active`, `troupe.bulkhead.queued` | gauges | `bulkhead` |
 * | `troupe.bulkhead.rejected` | counter | `bulkhead` |
 * | `troupe.gen_ai.tokens` | counter | `gen_ai.request.model`, `troupe.agent`, `gen_ai.token.type` |
 * | `troupe.gen_ai.cost.usd` | counter (US dollars) | `gen_ai.request.model`, `troupe.agent` |
 * | `troupe.agent.runs` | counter | `troupe.agent`, `outcome` |
 * | `troupe.cluster.members` | gauge | `state` |
 *
 * Journal append latency is `tracedJournal`'s (`troupe.journal.append.duration`). Returns a function
 * that stops recording.
 * @example
 * ```ts
 * const stop = meterSystem(system, { usage });
 * ```
 */
export function meterSystem(system: ActorSystem, options: MeterSystemOptions = {}): () => void {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const meter = options.meter ?? metrics.getMeter(INSTRUMENTATION_SCOPE);
  const base: Attributes = { 'troupe.system': system.name, 'troupe.node': system.node };
  const counter = (name: string, unit: string, description: string) =>
    meter.createCounter(name, { unit, description });
  const crashes = counter(
    'troupe.actor.crashes',
    '{crash}',
    'Actors that crashed handling a message or starting.',
  );
  const restarts = counter('troupe.actor.restarts', '{restart}', 'Actors restarted by their supervisor.');
  const escalations = counter(
    'troupe.supervisor.escalations',
    '{escalation}',
    'Supervisors that gave up and failed upward.',
  );
  const deadLetters = counter('troupe.dead_letters', '{message}', 'Messages not delivered, by reason.');
  const transitions = counter('troupe.breaker.transitions', '{transition}', 'Circuit breaker state changes.');
  const rejected = counter('troupe.bulkhead.rejected', '{call}', 'Calls a full bulkhead refused.');
  const tokens = counter('troupe.gen_ai.tokens', '{token}', 'Model tokens used, by model, agent and type.');
  const cost = counter(
    'troupe.gen_ai.cost.usd',
    '{USD}',
    'Model cost, by model and agent, at the ledger prices.',
  );
  const runs = counter('troupe.agent.runs', '{run}', 'Agent runs ended, by outcome.');

  const breakerStates = new Map<string, BreakerState>();
  for (const b of options.breakers ?? []) breakerStates.set(b.name, b.state);
  const bulkheads = options.bulkheads ?? [];
  const breakers = options.breakers ?? [];

  const subscription = system.events$.subscribe((event) => {
    switch (event.type) {
      case 'actor-crashed':
        crashes.add(1, base);
        return;
      case 'actor-restarted':
        restarts.add(1, base);
        return;
      case 'supervisor-escalated':
        escalations.add(1, base);
        return;
      case 'dead-letter':
        deadLetters.add(1, { ...base, reason: event.reason });
        return;
      case 'breaker-transition':
        breakerStates.set(event.breaker, event.to);
        transitions.add(1, { ...base, breaker: event.breaker, to: event.to });
        return;
      case 'bulkhead-rejected':
        rejected.add(1, { ...base, bulkhead: event.bulkhead });
        return;
      case 'agent-step': {
        if (event.kind !== 'model' || event.usage === undefined) return;
        const attributes = { ...base, 'gen_ai.request.model': event.name, 'troupe.agent': event.agent };
        tokens.add(event.usage.inputTokens, { ...attributes, 'gen_ai.token.type': 'input' });
        tokens.add(event.usage.outputTokens, { ...attributes, 'gen_ai.token.type': 'output' });
        if (options.usage !== undefined) cost.add(options.usage.costOf(event.name, event.usage), attributes);
        return;
      }
      case 'agent-run':
        if (event.phase !== 'started')
          runs.add(1, { ...base, 'troupe.agent': event.agent, outcome: event.phase });
        return;
      default:
        return;
    }
  });

  const handled = meter.createObservableCounter('troupe.messages.handled', {
    unit: '{message}',
    description: 'User messages taken from mailboxes to be handled.',
  });
  const depth = meter.createObservableGauge('troupe.mailbox.depth', {
    unit: '{message}',
    description: 'Messages waiting in all mailboxes.',
  });
  const deepest = meter.createObservableGauge('troupe.mailbox.depth.max', {
    unit: '{message}',
    description: 'Messages waiting in the fullest mailbox.',
  });
  const actors = meter.createObservableGauge('troupe.actors', {
    unit: '{actor}',
    description: 'Live actors.',
  });
  const breakerState = meter.createObservableGauge('troupe.breaker.state', {
    unit: '1',
    description: 'Circuit breaker state: 1 for the current state, 0 for the others.',
  });
  const active = meter.createObservableGauge('troupe.bulkhead.active', {
    unit: '{call}',
    description: 'Calls running in a bulkhead.',
  });
  const queued = meter.createObservableGauge('troupe.bulkhead.queued', {
    unit: '{call}',
    description: 'Calls waiting for a bulkhead slot.',
  });
  const members = meter.createObservableGauge('troupe.cluster.members', {
    unit: '{member}',
    description: "Cluster members in this node's view, by state.",
  });
  const observables = [handled, depth, deepest, actors, breakerState, active, queued, members];
  const observe: BatchObservableCallback = (result) => {
    if (system.status.tag === 'stopped' || system.status.tag === 'failed') return;
    result.observe(handled, systemStats(system).messagesHandled, base);
    let total = 0;
    let max = 0;
    let count = 0;
    const walk = (node: TreeNode) => {
      if (node.kind !== 'guardian') {
        count++;
        total += node.mailboxSize;
        if (node.mailboxSize > max) max = node.mailboxSize;
      }
      for (const child of node.children) walk(child);
    };
    walk(system.tree());
    result.observe(depth, total, base);
    result.observe(deepest, max, base);
    result.observe(actors, count, base);
    for (const b of breakers) breakerStates.set(b.name, b.state);
    for (const [name, state] of breakerStates) {
      for (const s of BREAKER_STATES)
        result.observe(breakerState, s === state ? 1 : 0, { ...base, breaker: name, state: s });
    }
    for (const b of bulkheads) {
      result.observe(active, b.active, { ...base, bulkhead: b.name });
      result.observe(queued, b.queued, { ...base, bulkhead: b.name });
    }
    const byState = { up: 0, suspect: 0, leaving: 0 };
    for (const member of system.members()) byState[member.state]++;
    for (const [state, n] of Object.entries(byState)) result.observe(members, n, { ...base, state });
  };
  meter.addBatchObservableCallback(observe, observables);
  return () => {
    subscription.unsubscribe();
    meter.removeBatchObservableCallback(observe, observables);
  };
}
