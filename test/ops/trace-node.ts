/**
 * One node of the cross-process tracing test, in its own process with the real OpenTelemetry Node
 * SDK and an in-memory span exporter. `node --import tsx trace-node.ts <nats url> <cluster> <node>
 * <heartbeatMs>`; driven over IPC (test/harness/node-process.ts). Each node has a `relay` actor:
 * `hop` asks the relay of the next node in `route` and answers with the path it took.
 */
import { SpanKind, trace } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { z } from 'zod';
import { ask, behavior, createNode, defineProtocol, natsTransport } from '../../index.js';
import { traceSystem } from '../../ops/index.js';

const [url, cluster, node] = process.argv.slice(2) as [string, string, string];

const exporter = new InMemorySpanExporter();
const sdk = new NodeSDK({
  serviceName: `troupe-${node}`,
  sampler: new AlwaysOnSampler(),
  spanProcessors: [new SimpleSpanProcessor({ exporter })],
  instrumentations: [],
  resourceDetectors: [],
  metricReaders: [],
});
sdk.start();

const Relay = defineProtocol('trace.relay', {
  hop: ask(z.object({ route: z.array(z.string()) }), z.array(z.string())),
});

const system = await createNode({
  name: cluster,
  node,
  transport: await natsTransport({ servers: url }),
});
traceSystem(system);

system.spawn(
  behavior({
    protocols: [Relay],
    handlers: {
      hop: async ({ route }, ctx) => {
        const [next, ...rest] = route;
        if (next === undefined) return [ctx.system.node];
        const relay = ctx.system.ref(`troupe://${cluster}/${next}/relay`, Relay);
        return [ctx.system.node, ...(await relay.ask('hop', { route: rest }))];
      },
    },
  }),
  { name: 'relay' },
);

type Command = { id: number; cmd: 'request'; route: string[] } | { id: number; cmd: 'spans' };

process.on('message', async (message: Command) => {
  try {
    if (message.cmd === 'request') {
      const tracer = trace.getTracer('test');
      const path = await tracer.startActiveSpan('request', { kind: SpanKind.SERVER }, async (span) => {
        try {
          const [first, ...rest] = message.route;
          return await system.ref(`troupe://${cluster}/${first}/relay`, Relay).ask('hop', { route: rest });
        } finally {
          span.end();
        }
      });
      process.send?.({ id: message.id, ok: true, value: path });
    } else {
      const spans = exporter.getFinishedSpans().map((s) => ({
        name: s.name,
        kind: s.kind,
        traceId: s.spanContext().traceId,
        spanId: s.spanContext().spanId,
        parentSpanId: s.parentSpanContext?.spanId,
        node,
        attributes: s.attributes,
      }));
      process.send?.({ id: message.id, ok: true, value: spans });
    }
  } catch (error) {
    process.send?.({ id: message.id, ok: false, error: String(error) });
  }
});

process.on('SIGTERM', async () => {
  await system.drain();
  await sdk.shutdown();
  process.exit(0);
});
process.send?.({ ready: true });
