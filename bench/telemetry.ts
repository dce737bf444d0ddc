/**
 * Tracing overhead (issue 14). `ops.tracing.unsampled`: kernel tell throughput to one actor of a
 * traced system (`traceSystem`) with the real OpenTelemetry Node SDK installed and a sampler that
 * never samples, the tells sent from outside any trace, against the same workload on an untraced
 * system in the same process (the SDK installed for both). Goal: ratio >= 0.9. `ops.tracing.sampled`:
 * every message traced (the tells sent inside a sampled span, each handled message a span given to a
 * batch span processor with a discarding exporter), against the same untraced system; reported.
 *
 * The SDK is started for each case and its globals unregistered after, so that its context manager
 * (AsyncLocalStorage, which slows every promise) does not weigh on the other cases.
 */
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  type Sampler,
} from '@opentelemetry/sdk-trace';
import { z } from 'zod';
import { behavior, createSystem, defineProtocol, tell } from '../index.js';
import { traceSystem } from '../ops/index.js';
import type { BenchCase, BenchTools } from './remote.js';

const Load = defineProtocol('bench.traced', { add: tell(z.object({ n: z.number() })) });

async function withSdk<T>(sampler: Sampler, run: () => Promise<T>): Promise<T> {
  const sdk = new NodeSDK({
    sampler,
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} },
      }),
    ],
    instrumentations: [],
    resourceDetectors: [],
    metricReaders: [],
  });
  sdk.start();
  try {
    return await run();
  } finally {
    await sdk.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
    metrics.disable();
  }
}

export function telemetryCases(tools: BenchTools): BenchCase[] {
  const { quick, sideBySide, result } = tools;

  /** A traced and an untraced system with one counter each; `send` runs a round on one of them. */
  async function compare(traced: boolean, inSpan: boolean, total: number, blocks: number) {
    const meter = { seen: 0, target: 0, done: () => {} };
    const counter = behavior({
      protocols: [Load],
      handlers: {
        add: () => {
          if (++meter.seen === meter.target) meter.done();
        },
      },
    });
    const options = { devChecks: false, mailbox: { capacity: 1_000_000 }, deadLetterLog: () => {} } as const;
    const plain = createSystem(options);
    const observed = createSystem(options);
    traceSystem(observed);
    const a = observed.spawn(counter);
    const b = plain.spawn(counter);
    const round = async (ref: typeof a) => {
      const chunk = 10_000;
      const start = performance.now();
      for (let sent = 0; sent < total; sent += chunk) {
        meter.seen = 0;
        meter.target = chunk;
        const done = new Promise<void>((resolve) => {
          meter.done = resolve;
        });
        const send = () => {
          for (let i = sent; i < sent + chunk; i++) ref.tell('add', { n: i });
        };
        if (inSpan) {
          trace.getTracer('bench').startActiveSpan('load', (span) => {
            send();
            span.end();
          });
        } else send();
        await done;
      }
      return total / ((performance.now() - start) / 1000);
    };
    const [t, u, pairs] = await sideBySide(
      () => round(traced ? a : b),
      () => round(b),
      blocks,
    );
    await plain.close();
    await observed.close();
    return { t, u, pairs };
  }

  return [
    {
      name: 'ops.tracing.unsampled',
      unit: 'msg/s',
      goal: 'ratio >= 0.9',
      async run() {
        const { t, u, pairs } = await withSdk(new AlwaysOffSampler(), () =>
          compare(true, false, quick ? 100_000 : 1_000_000, quick ? 1 : 22),
        );
        return result(
          this.name,
          this.unit,
          t,
          'troupe-untraced',
          u,
          true,
          pairs,
          this.goal,
          (r) => r.ratio >= 0.9,
        );
      },
    },
    {
      name: 'ops.tracing.sampled',
      unit: 'msg/s',
      goal: 'reported',
      async run() {
        const { t, u, pairs } = await withSdk(new AlwaysOnSampler(), () =>
          compare(true, true, quick ? 20_000 : 100_000, quick ? 1 : 6),
        );
        return result(this.name, this.unit, t, 'troupe-untraced', u, true, pairs, this.goal, () => true);
      },
    },
  ];
}
