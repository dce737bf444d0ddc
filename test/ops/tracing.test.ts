import { join } from 'node:path';
import { context, ROOT_CONTEXT, SpanKind, TraceFlags, trace } from '@opentelemetry/api';
import { AlwaysOnSampler, ParentBasedSampler, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ask,
  behavior,
  createSystem,
  defineProtocol,
  inMemoryJournal,
  tell,
  workflow,
  workflowEngine,
} from '../../index.js';
import { traceSystem } from '../../ops/index.js';
import { NatsServer } from '../harness/nats.js';
import { NodeProcess } from '../harness/node-process.js';
import { useInMemorySdk } from '../harness/otel.js';

const exporter = useInMemorySdk({ sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }) });

const tracer = () => trace.getTracer('test');
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const byName = (name: string) => exporter.getFinishedSpans().filter((s) => s.name === name);
const one = (name: string) => {
  const spans = byName(name);
  expect(spans, name).toHaveLength(1);
  return spans[0]!;
};

const Front = defineProtocol('t.front', { order: ask(z.object({ item: z.string() }), z.string()) });
const Audit = defineProtocol('t.audit', { record: tell(z.object({ item: z.string() })) });
const Stock = defineProtocol('t.stock', {
  reserve: ask(z.object({ item: z.string() }), z.boolean()),
  fail: ask(z.object({}), z.boolean()),
});

function shop() {
  const system = createSystem({ name: 'shop' });
  const audited: string[] = [];
  const audit = system.spawn(
    behavior({
      protocols: [Audit],
      handlers: { record: ({ item }) => void audited.push(item) },
    }),
  );
  const stock = system.spawn(
    behavior({
      protocols: [Stock],
      handlers: {
        reserve: async () => true,
        fail: () => {
          throw new Error('out of stock');
        },
      },
    }),
  );
  const front = system.spawn(
    behavior({
      protocols: [Front],
      handlers: {
        order: async ({ item }) => {
          audit.tell('record', { item });
          const ok = await stock.ask('reserve', { item });
          return ok ? 'reserved' : 'none';
        },
      },
    }),
  );
  return { system, audit, stock, front, audited };
}

describe('traceSystem', () => {
  it('makes a span per handled message and per ask, parented on the sender, in one trace', async () => {
    const { system, front, audited } = shop();
    traceSystem(system);
    await tracer().startActiveSpan('request', { kind: SpanKind.SERVER }, async (span) => {
      expect(await front.ask('order', { item: 'tea' })).toBe('reserved');
      span.end();
    });
    await expect.poll(() => audited).toEqual(['tea']);
    await expect.poll(() => byName('process record').length).toBe(1);
    const request = one('request');
    const askOrder = one('ask order');
    const processOrder = one('process order');
    const record = one('process record');
    const askReserve = one('ask reserve');
    const processReserve = one('process reserve');
    expect(parentOf(askOrder)).toBe(request.spanContext().spanId);
    expect(askOrder.kind).toBe(SpanKind.CLIENT);
    expect(parentOf(processOrder)).toBe(askOrder.spanContext().spanId);
    expect(processOrder.kind).toBe(SpanKind.SERVER);
    expect(parentOf(record)).toBe(processOrder.spanContext().spanId);
    expect(record.kind).toBe(SpanKind.CONSUMER);
    // The ask after an await: the handler's span is still the active context.
    expect(parentOf(askReserve)).toBe(processOrder.spanContext().spanId);
    expect(parentOf(processReserve)).toBe(askReserve.spanContext().spanId);
    const traceIds = new Set(exporter.getFinishedSpans().map((s) => s.spanContext().traceId));
    expect(traceIds.size).toBe(1);
    expect(processOrder.attributes).toMatchObject({
      'messaging.system': 'troupe',
      'messaging.operation.type': 'process',
      'troupe.message.type': 'order',
      'messaging.destination.name': front.address,
    });
    expect(JSON.stringify(processOrder.attributes)).not.toContain('tea');
    await system.close();
  });

  it('records a crash on the span of the message and the ask', async () => {
    const { system, stock } = shop();
    traceSystem(system);
    await tracer().startActiveSpan('request', async (span) => {
      await expect(stock.ask('fail', {})).rejects.toMatchObject({ code: 'ERR_ACTOR_CRASHED' });
      span.end();
    });
    const failed = one('process fail');
    expect(failed.status).toMatchObject({ code: 2, message: 'out of stock' });
    expect(failed.events.map((e) => e.name)).toContain('exception');
    expect(one('ask fail').attributes['error.type']).toBe('ERR_ACTOR_CRASHED');
    await system.close();
  });

  it('traces nothing outside a trace unless asked to start one (roots)', async () => {
    const { system, front } = shop();
    const stop = traceSystem(system);
    expect(await front.ask('order', { item: 'tea' })).toBe('reserved');
    expect(exporter.getFinishedSpans()).toEqual([]);
    stop();
    traceSystem(system, { roots: true });
    expect(await front.ask('order', { item: 'tea' })).toBe('reserved');
    await expect.poll(() => byName('process record').length).toBe(1);
    expect(parentOf(one('ask order'))).toBeUndefined();
    expect(new Set(exporter.getFinishedSpans().map((s) => s.spanContext().traceId)).size).toBe(1);
    await system.close();
  });

  it('makes no span for an unsampled trace, and carries its context on', async () => {
    const { system, front, audited } = shop();
    traceSystem(system);
    const seen: (string | undefined)[] = [];
    const probe = system.spawn(
      behavior({
        protocols: [Audit],
        handlers: { record: (_body, ctx) => void seen.push(ctx.trace?.traceparent) },
      }),
    );
    // A request that its service's sampler did not sample: flags 00.
    const unsampled = trace.wrapSpanContext({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.NONE,
    });
    await context.with(trace.setSpan(ROOT_CONTEXT, unsampled), async () => {
      expect(await front.ask('order', { item: 'tea' })).toBe('reserved');
      probe.tell('record', { item: 'tea' });
    });
    await expect.poll(() => seen).toEqual(['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00']);
    await expect.poll(() => audited).toEqual(['tea']);
    expect(exporter.getFinishedSpans()).toEqual([]);
    await system.close();
  });

  it('makes spans of workflow steps and of the workflow, in the trace that ran it', async () => {
    const demo = workflow<{ n: number }>({
      name: 'demo',
      input: z.object({ n: z.number() }),
      steps: [
        { name: 'double', run: ({ input }) => input.n * 2 },
        {
          name: 'fail',
          after: ['double'],
          run: () => {
            throw new Error('no');
          },
        },
      ],
    });
    const engine = workflowEngine({ journal: inMemoryJournal(), workflows: [demo] });
    const system = createSystem({ name: 'wf', kinds: { workflow: engine.kind } });
    traceSystem(system);
    const outcome = await tracer().startActiveSpan('request', async (span) => {
      try {
        return await engine.run(system, demo, 'demo-1', { n: 2 });
      } finally {
        span.end();
      }
    });
    expect(outcome.ok).toBe(false);
    const traceId = one('request').spanContext().traceId;
    const double = one('workflow.step double');
    expect(double.attributes).toMatchObject({
      'troupe.workflow.step.status': 'completed',
      'troupe.workflow.id': 'demo-1',
    });
    expect(one('workflow.step fail').status.code).toBe(2);
    expect(one('workflow demo').attributes['troupe.workflow.ok']).toBe(false);
    for (const name of ['workflow.step double', 'workflow.step fail', 'workflow demo']) {
      expect(one(name).spanContext().traceId, name).toBe(traceId);
    }
    await system.drain();
  });

  it('refuses to trace a system twice', () => {
    const system = createSystem();
    traceSystem(system);
    expect(() => traceSystem(system)).toThrow(expect.objectContaining({ code: 'ERR_ILLEGAL_STATE' }));
  });
});

describe('one trace across three node processes over NATS', () => {
  let nats: NatsServer;
  const nodes: NodeProcess[] = [];
  beforeAll(async () => {
    nats = await NatsServer.start();
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await nats?.dispose();
  });

  it('links process → ask → process from node to node', async () => {
    const script = join(import.meta.dirname, 'trace-node.ts');
    nodes.push(
      ...(await Promise.all(
        ['n1', 'n2', 'n3'].map((id) => NodeProcess.start(nats.url, 'tr', id, 1000, undefined, script)),
      )),
    );
    const [n1] = nodes;
    expect(await n1!.call({ cmd: 'request', route: ['n1', 'n2', 'n3'] })).toEqual(['n1', 'n2', 'n3']);
    type Exported = {
      name: string;
      kind: number;
      traceId: string;
      spanId: string;
      parentSpanId?: string;
      node: string;
    };
    const collect = async () =>
      (await Promise.all(nodes.map((n) => n.call<Exported[]>({ cmd: 'spans' })))).flat();
    await expect.poll(async () => (await collect()).length, { timeout: 5000 }).toBe(7);
    const spans = await collect();
    const find = (name: string, node: string) => {
      const found = spans.filter((s) => s.name === name && s.node === node);
      expect(found, `${name} on ${node}`).toHaveLength(1);
      return found[0]!;
    };
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
    const request = find('request', 'n1');
    const hop1 = spans.find((s) => s.name === 'process hop' && s.node === 'n1')!;
    // n1: request → ask hop (to its own relay) → process hop → ask hop (to n2)
    const asksOnN1 = spans.filter((s) => s.name === 'ask hop' && s.node === 'n1');
    expect(asksOnN1).toHaveLength(2);
    const first = asksOnN1.find((s) => s.parentSpanId === request.spanId)!;
    expect(hop1.parentSpanId).toBe(first.spanId);
    const toN2 = asksOnN1.find((s) => s.parentSpanId === hop1.spanId)!;
    const hop2 = find('process hop', 'n2');
    expect(hop2.parentSpanId).toBe(toN2.spanId);
    const toN3 = find('ask hop', 'n2');
    expect(toN3.parentSpanId).toBe(hop2.spanId);
    const hop3 = find('process hop', 'n3');
    expect(hop3.parentSpanId).toBe(toN3.spanId);
  }, 60_000);
});
