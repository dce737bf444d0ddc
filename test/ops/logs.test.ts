import { Writable } from 'node:stream';
import { trace } from '@opentelemetry/api';
import { expect, it } from 'vitest';
import { z } from 'zod';
import { logSystem, scrubSecrets, traceSystem, troupeLogger } from '../../ops/index.js';
import { ask, defineProtocol, tell } from '../../protocols/index.js';
import { behavior, createSystem } from '../../runtime/index.js';
import { useInMemorySdk } from '../harness/otel.js';

const exporter = useInMemorySdk({ resetAfterEach: false });

/** A pino destination that keeps the parsed lines. */
function lines(): { stream: Writable; lines: Record<string, any>[] } {
  const out: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line !== '') out.push(JSON.parse(line));
      done();
    },
  });
  return { stream, lines: out };
}

const Payments = defineProtocol('l.payments', {
  charge: ask(z.object({ card: z.string(), apiKey: z.string() }), z.boolean()),
  note: tell(z.object({ text: z.string() })),
});

it('logs a crash with the trace and span of its message, at error, with secrets redacted', async () => {
  const system = createSystem({ name: 'logged' });
  traceSystem(system);
  const { stream, lines: out } = lines();
  logSystem(system, { logger: troupeLogger({ destination: stream }), bodies: true });
  const payments = system.spawn(
    behavior({
      protocols: [Payments],
      handlers: {
        charge: async ({ apiKey }) => {
          await Promise.resolve();
          throw new Error(`provider refused key ${apiKey} with Bearer abcdefgh12345678`);
        },
        note: () => {},
      },
    }),
    { name: 'payments' },
  );
  const traceId = await trace.getTracer('test').startActiveSpan('checkout', async (span) => {
    await expect(
      payments.ask('charge', { card: '4111-1111-1111-1111', apiKey: 'sk-live-0123456789abcdef' }),
    ).rejects.toMatchObject({ code: 'ERR_ACTOR_CRASHED' });
    span.end();
    return span.spanContext().traceId;
  });
  await expect.poll(() => out.filter((l) => l.event === 'actor-restarted').length).toBe(1);
  const crash = out.find((l) => l.event === 'actor-crashed')!;
  expect(crash).toMatchObject({
    level: 50,
    system: 'logged',
    node: 'local',
    address: payments.address,
    messageType: 'charge',
    trace_id: traceId,
    trace_flags: '01',
    msg: `${payments.address} crashed handling "charge"`,
  });
  const handling = exporter.getFinishedSpans().find((s) => s.name === 'process charge')!;
  expect(crash.span_id).toBe(handling.spanContext().spanId);
  // Redacted: the body's key by path, the error text's key and token by pattern.
  expect(crash.body).toEqual({ card: '4111-1111-1111-1111', apiKey: '[redacted]' });
  expect(crash.err.message).toBe('provider refused key sk-[redacted] with Bearer [redacted]');
  expect(JSON.stringify(out)).not.toContain('0123456789abcdef');
  expect(out.find((l) => l.event === 'actor-restarted')).toMatchObject({
    level: 40,
    address: payments.address,
  });

  system.ref('troupe://logged/local/nobody', Payments).tell('note', { text: 'hi' });
  await expect
    .poll(() => out.find((l) => l.event === 'dead-letter'))
    .toMatchObject({
      level: 40,
      reason: 'no-such-actor',
      messageType: 'note',
      code: 'ERR_NO_SUCH_ACTOR',
    });
  // Lifecycle noise stays below the default level.
  expect(out.some((l) => l.event === 'actor-started')).toBe(false);
  await system.close();
  await expect.poll(() => out.at(-1)).toMatchObject({ event: 'system-stopped', level: 30 });
});

it('scrubs keys, bearer tokens and URL passwords from text', () => {
  expect(scrubSecrets('key sk-proj-abcdefghijk, Bearer eyJhbGciOiJI.x, postgres://app:hunter22@db/x')).toBe(
    'key sk-[redacted], Bearer [redacted], postgres://app:[redacted]@db/x',
  );
});
