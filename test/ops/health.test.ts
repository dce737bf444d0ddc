import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inMemoryJournal } from '../../memory/index.js';
import { journalCheck, startOpsServer } from '../../ops/index.js';
import { TroupeError } from '../../protocols/index.js';
import { behavior, createNode, createSystem, natsTransport } from '../../runtime/index.js';
import { NatsServer } from '../harness/nats.js';

async function get(url: string): Promise<{ status: number; body: any; text: string; type: string | null }> {
  const response = await fetch(url);
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, body, text, type: response.headers.get('content-type') };
}

describe('ops server', () => {
  it('serves /healthz, /readyz with extra checks, /metrics through the hook, 404 otherwise', async () => {
    const system = createSystem({ name: 'health' });
    let journalUp = true;
    await using ops = await startOpsServer({
      port: 0,
      system,
      checks: [
        { name: 'journal', check: () => journalUp },
        { name: 'cache', check: () => ({ ok: true }) },
      ],
      metrics: (_request, response) => {
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end('troupe_up 1\n');
      },
    });
    expect((await get(`${ops.url}/healthz`)).status).toBe(200);
    const ready = await get(`${ops.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      ready: true,
      checks: { system: { ok: true }, journal: { ok: true }, cache: { ok: true } },
    });
    journalUp = false;
    const notReady = await get(`${ops.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(notReady.body.checks.journal).toEqual({ ok: false });
    expect((await get(`${ops.url}/metrics`)).text).toBe('troupe_up 1\n');
    expect((await get(`${ops.url}/nothing`)).status).toBe(404);

    await system.close();
    expect((await get(`${ops.url}/healthz`)).status).toBe(503);
    const stopped = await get(`${ops.url}/readyz`);
    expect(stopped.body.checks.system).toEqual({ ok: false, detail: 'system is stopped' });
  });

  it('counts a check that throws or hangs as not ready, with the reason', async () => {
    await using ops = await startOpsServer({
      port: 0,
      checkTimeoutMs: 50,
      checks: [
        {
          name: 'broken',
          check: () => {
            throw new Error('database says no');
          },
        },
        {
          name: 'hangs',
          check: (signal) =>
            new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
        },
      ],
    });
    const readiness = await ops.ready();
    expect(readiness).toEqual({
      ready: false,
      checks: {
        broken: { ok: false, detail: 'database says no' },
        hangs: { ok: false, detail: 'timed out after 50 ms' },
      },
    });
    expect((await get(`${ops.url}/metrics`)).status).toBe(404);
  });

  it('journalCheck asks the journal, and fails once it is closed', async () => {
    const journal = inMemoryJournal();
    const check = journalCheck(journal);
    await using ops = await startOpsServer({ port: 0, checks: [check] });
    expect((await ops.ready()).ready).toBe(true);
    await journal.close();
    expect((await ops.ready()).checks.journal?.ok).toBe(false);
  });

  it('refuses a port in use with ERR_OPS_LISTEN', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const error = await startOpsServer({ port, host: '127.0.0.1' }).catch((e: unknown) => e);
      expect(TroupeError.is(error, 'ERR_OPS_LISTEN')).toBe(true);
      expect((error as TroupeError).details).toMatchObject({ port, reason: 'EADDRINUSE' });
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    await expect(startOpsServer({ port: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });

  describe('readiness of a cluster node over NATS', () => {
    let nats: NatsServer;
    beforeAll(async () => {
      nats = await NatsServer.start();
    });
    afterAll(async () => {
      await nats?.dispose();
    });

    it('is false while NATS is stopped and true again once it is back', async () => {
      const Idle = behavior({ protocols: [], handlers: {} });
      const system = await createNode({
        name: 'ready',
        node: 'n1',
        heartbeatMs: 100,
        kinds: { idle: { behavior: Idle } },
        transport: await natsTransport({
          servers: nats.url,
          connection: { reconnectTimeWait: 50, reconnectJitter: 0 },
        }),
      });
      try {
        await using ops = await startOpsServer({ port: 0, system });
        await expect.poll(async () => (await get(`${ops.url}/readyz`)).status, { timeout: 5000 }).toBe(200);
        const up = await get(`${ops.url}/readyz`);
        expect(up.body.checks).toMatchObject({
          system: { ok: true },
          transport: { ok: true, detail: 'nats' },
          cluster: { ok: true },
        });

        await nats.stop();
        await expect.poll(async () => (await get(`${ops.url}/readyz`)).status, { timeout: 10_000 }).toBe(503);
        const down = await get(`${ops.url}/readyz`);
        expect(down.body.checks.transport).toEqual({ ok: false, detail: 'nats disconnected' });
        expect((await get(`${ops.url}/healthz`)).status).toBe(200);

        await nats.restart();
        await expect.poll(async () => (await get(`${ops.url}/readyz`)).status, { timeout: 15_000 }).toBe(200);
      } finally {
        await system.close();
      }
    }, 40_000);
  });
});
