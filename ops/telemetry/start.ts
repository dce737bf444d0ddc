import { metrics, trace } from '@opentelemetry/api';
import type { UsageLedger } from '../../agents/index.js';
import { invalidOption, TroupeError } from '../../protocols/index.js';
import type { ActorSystem } from '../../runtime/index.js';
import type { Breaker, Bulkhead } from '../../supervisors/index.js';
import type { MetricsHandler } from '../health/index.js';
import { meterSystem } from './metrics.js';
import { INSTRUMENTATION_SCOPE, traceSystem } from './tracing.js';

/** Options of {@link startTelemetry}. */
export interface StartTelemetryOptions {
  /** `service.name` of the resource. Defaults to `OTEL_SERVICE_NAME`, else the system's name, else `troupe`. */
  readonly serviceName?: string;
  /**
   * Serve metrics for Prometheus: a `PrometheusExporter` (from `@opentelemetry/exporter-prometheus`)
   * that starts no server of its own; give {@link Telemetry.metricsHandler} to `startOpsServer`.
   * Defaults to true.
   */
  readonly prometheus?: boolean;
  /** A system to trace (`traceSystem`) and meter (`meterSystem`) with the SDK's providers. */
  readonly system?: ActorSystem;
  /** For `meterSystem`: prices of model calls. */
  readonly usage?: UsageLedger;
  /** For `meterSystem`: bulkheads and breakers to report. */
  readonly bulkheads?: readonly Bulkhead[];
  readonly breakers?: readonly Breaker[];
  /**
   * More `NodeSDK` configuration (`spanProcessors`, `sampler`, `metricReaders`, `instrumentations`,
   * `resource`...), merged over the defaults. Without `spanProcessors` the SDK reads the standard
   * `OTEL_TRACES_EXPORTER` / `OTEL_EXPORTER_OTLP_*` variables.
   */
  readonly sdk?: Readonly<Record<string, unknown>>;
}

/** The running OpenTelemetry SDK. */
export interface Telemetry {
  /** Serves the Prometheus scrape (undefined with `prometheus: false`); give it to `startOpsServer`. */
  readonly metricsHandler: MetricsHandler | undefined;
  /**
   * Stops tracing and metering the system, flushes what is buffered and shuts the SDK down. Resolves,
   * never rejects: with the error of a last export that failed (a collector that cannot be reached),
   * else undefined. Idempotent.
   */
  shutdown(): Promise<Error | undefined>;
}

/**
 * Sets up the OpenTelemetry Node SDK with defaults in one call: loads `@opentelemetry/sdk-node` (and
 * `@opentelemetry/exporter-prometheus`), optional peer dependencies that the application installs,
 * starts it, and traces and meters `system`. A library-only user needs neither: `traceSystem` and
 * `meterSystem` work with any SDK the application sets up.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` when a package it needs is not installed (the message says
 * which to add) or an option is wrong.
 * @example
 * ```ts
 * const telemetry = await startTelemetry({ system });
 * const ops = await startOpsServer({ port: 9464, system, metrics: telemetry.metricsHandler });
 * ```
 */
export async function startTelemetry(options: StartTelemetryOptions = {}): Promise<Telemetry> {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const { NodeSDK } = await load<typeof import('@opentelemetry/sdk-node')>('@opentelemetry/sdk-node');
  let prometheus: import('@opentelemetry/exporter-prometheus').PrometheusExporter | undefined;
  if (options.prometheus ?? true) {
    const { PrometheusExporter } = await load<typeof import('@opentelemetry/exporter-prometheus')>(
      '@opentelemetry/exporter-prometheus',
    );
    prometheus = new PrometheusExporter({ preventServerStart: true });
  }
  const extra = (options.sdk ?? {}) as Record<string, unknown>;
  const readers = [
    ...(prometheus === undefined ? [] : [prometheus]),
    ...((extra.metricReaders as unknown[]) ?? []),
  ];
  const sdk = new NodeSDK({
    serviceName: options.serviceName ?? process.env.OTEL_SERVICE_NAME ?? options.system?.name ?? 'troupe',
    instrumentations: [],
    ...extra,
    metricReaders: readers as never,
  });
  sdk.start();
  const stops: (() => void)[] = [];
  if (options.system !== undefined) {
    stops.push(traceSystem(options.system, { tracer: trace.getTracer(INSTRUMENTATION_SCOPE) }));
    stops.push(
      meterSystem(options.system, {
        meter: metrics.getMeter(INSTRUMENTATION_SCOPE),
        ...(options.usage === undefined ? {} : { usage: options.usage }),
        ...(options.bulkheads === undefined ? {} : { bulkheads: options.bulkheads }),
        ...(options.breakers === undefined ? {} : { breakers: options.breakers }),
      }),
    );
  }
  let shutdown: Promise<Error | undefined> | undefined;
  return {
    metricsHandler:
      prometheus === undefined
        ? undefined
        : (request, response) => prometheus.getMetricsRequestHandler(request, response),
    shutdown() {
      shutdown ??= (async () => {
        for (const stop of stops.reverse()) stop();
        try {
          await sdk.shutdown();
          return undefined;
        } catch (error) {
          return error instanceof Error ? error : new Error(String(error));
        }
      })();
      return shutdown;
    },
  };
}

async function load<T>(name: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (cause) {
    throw new TroupeError(
      'ERR_INVALID_OPTION',
      `startTelemetry needs the package ${name}: install it (npm install ${name}), or set up the OpenTelemetry SDK yourself and call traceSystem/meterSystem`,
      { cause, details: { option: 'package', value: name } },
    );
  }
}
