import { expect, it } from 'vitest';
import { z } from 'zod';
import { agent, scriptedModel, usageLedger } from '../../agents/index.js';
import { startOpsServer, startTelemetry } from '../../ops/index.js';
import { ask, defineProtocol, tell } from '../../protocols/index.js';
import { behavior, createSystem, type SystemEvent } from '../../runtime/index.js';
import { breaker, bulkhead } from '../../supervisors/index.js';

const Work = defineProtocol('m.work', {
  add: tell(z.object({})),
  crash: tell(z.object({})),
  get: ask(z.object({}), z.number()),
});

/** The samples of a Prometheus text exposition, as `name{labels}` → value. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** The value of the one sample of `name` whose labels include every pair of `labels`. */
function sample(
  samples: Map<string, number>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = [...samples].filter(([key]) => {
    if (key !== name && !key.startsWith(`${name}{`)) return false;
    return Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`));
  });
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.[1];
}

it('serves a Prometheus scrape with the right values after a known workload', async () => {
  const system = createSystem({ name: 'metered', deadLetterLog: () => {} });
  const usage = usageLedger({
    prices: { scripted: { inputPerMillion: 1_000_000, outputPerMillion: 2_000_000 } },
  });
  const shed = bulkhead({ name: 'tools', maxConcurrent: 1, maxQueue: 1, system });
  const provider = breaker({ name: 'provider', system, volumeThreshold: 1, errorThresholdPercentage: 1 });
  const telemetry = await startTelemetry({ system, usage, bulkheads: [shed], breakers: [provider] });
  await using ops = await startOpsServer({ port: 0, system, metrics: telemetry.metricsHandler });
  const events: SystemEvent[] = [];
  system.events$.subscribe((e) => events.push(e));

  const worker = system.spawn(
    behavior({
      protocols: [Work],
      initialState: () => 0,
      handlers: {
        add: (_b, ctx) => void ctx.state++,
        crash: () => {
          throw new Error('boom');
        },
        get: (_b, ctx) => ctx.state,
      },
    }),
  );
  for (let i = 0; i < 100; i++) worker.tell('add', {});
  worker.tell('crash', {});
  worker.tell('crash', {});
  expect(await worker.ask('get', {})).toBe(0); // restarted: fresh state
  const ghost = system.ref(`troupe://metered/local/nobody`, Work);
  for (let i = 0; i < 3; i++) ghost.tell('add', {});

  // Hold the bulkhead's slot and queue; a third call is refused.
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const running = [shed.run(() => held), shed.run(() => held)];
  await expect(shed.run(() => 1)).rejects.toMatchObject({ code: 'ERR_BULKHEAD_FULL' });
  await expect(provider.fire(() => Promise.reject(new Error('down')))).rejects.toThrow('down');

  const helper = system.spawn(agent({ model: scriptedModel({ steps: ['Done.'] }) }), { name: 'helper' });
  await helper.ask('run', { input: 'Summarise the tides' });

  const scrape = async () => parse(await (await fetch(`${ops.url}/metrics`)).text());
  const samples = await scrape();
  // 100 adds, 2 crashes, 1 get, 1 run (and the agent's own messages): at least 104 handled.
  expect(sample(samples, 'troupe_messages_handled_total')).toBeGreaterThanOrEqual(104);
  expect(sample(samples, 'troupe_actor_crashes_total')).toBe(2);
  expect(sample(samples, 'troupe_actor_restarts_total')).toBe(2);
  expect(sample(samples, 'troupe_dead_letters_total', { reason: 'no-such-actor' })).toBe(3);
  expect(sample(samples, 'troupe_bulkhead_active', { bulkhead: 'tools' })).toBe(1);
  expect(sample(samples, 'troupe_bulkhead_queued', { bulkhead: 'tools' })).toBe(1);
  expect(sample(samples, 'troupe_bulkhead_rejected_total', { bulkhead: 'tools' })).toBe(1);
  expect(sample(samples, 'troupe_breaker_state', { breaker: 'provider', state: 'open' })).toBe(1);
  expect(sample(samples, 'troupe_breaker_state', { breaker: 'provider', state: 'closed' })).toBe(0);
  expect(sample(samples, 'troupe_breaker_transitions_total', { breaker: 'provider', to: 'open' })).toBe(1);
  // Tokens and cost: what the run's model steps reported, at the ledger's prices.
  const steps = events.filter((e) => e.type === 'agent-step' && e.kind === 'model');
  const input = steps.reduce((n, e) => n + (e.type === 'agent-step' ? (e.usage?.inputTokens ?? 0) : 0), 0);
  const output = steps.reduce((n, e) => n + (e.type === 'agent-step' ? (e.usage?.outputTokens ?? 0) : 0), 0);
  expect(input).toBeGreaterThan(0);
  const agentLabel = { gen_ai_request_model: 'scripted', troupe_agent: helper.address };
  expect(sample(samples, 'troupe_gen_ai_tokens_total', { ...agentLabel, gen_ai_token_type: 'input' })).toBe(
    input,
  );
  expect(sample(samples, 'troupe_gen_ai_tokens_total', { ...agentLabel, gen_ai_token_type: 'output' })).toBe(
    output,
  );
  expect(sample(samples, 'troupe_gen_ai_cost_usd_total', agentLabel)).toBeCloseTo(input + 2 * output, 6);
  expect(sample(samples, 'troupe_agent_runs_total', { outcome: 'finished' })).toBe(1);
  expect(sample(samples, 'troupe_mailbox_depth')).toBe(0);

  release();
  await Promise.all(running);
  expect(sample(await scrape(), 'troupe_bulkhead_active', { bulkhead: 'tools' })).toBe(0);
  await telemetry.shutdown();
  await system.close();
});
