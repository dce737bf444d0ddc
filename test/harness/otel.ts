/**
 * The real OpenTelemetry Node SDK for a test file, with spans kept in memory: started before the
 * file's tests, shut down after them, emptied after each test (unless told not to).
 */
import { NodeSDK, type NodeSDKConfiguration } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { afterAll, afterEach, beforeAll } from 'vitest';

export function useInMemorySdk(
  options: Pick<Partial<NodeSDKConfiguration>, 'sampler'> & { readonly resetAfterEach?: boolean } = {},
): InMemorySpanExporter {
  const { resetAfterEach = true, ...config } = options;
  const exporter = new InMemorySpanExporter();
  let sdk: NodeSDK | undefined;
  beforeAll(() => {
    sdk = new NodeSDK({
      ...config,
      spanProcessors: [new SimpleSpanProcessor({ exporter })],
      instrumentations: [],
      resourceDetectors: [],
      metricReaders: [],
    });
    sdk.start();
  });
  afterAll(async () => {
    await sdk?.shutdown();
  });
  if (resetAfterEach) afterEach(() => exporter.reset());
  return exporter;
}
