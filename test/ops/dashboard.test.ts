/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core. Two `troupe node`
 * processes on a private nats-server; the page served by one node's ops HTTP server shows both
 * trees, then a crash injected into the other node and its restart appear live, without a reload.
 * The screenshot goes to .tmp/dashboard.png; with TROUPE_UPDATE_DOCS=1 it also becomes the README's
 * (docs/dashboard.png), so an ordinary run leaves the checkout clean. `troupe dashboard` serves the
 * same page.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ActorSystem, createNode, natsTransport } from '../../index.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../harness/browser.js';
import { NatsServer } from '../harness/nats.js';
import { TroupeProcess } from '../harness/troupe-cli.js';
import { Front, Worker } from './node-config.js';

const CLUSTER = 'dash';
if (!existsSync(CHROMIUM)) {
  console.warn(
    `dashboard test: skipped, because ${CHROMIUM} is missing (scripts/setup.sh installs Debian's chromium)`,
  );
}

describe.skipIf(!existsSync(CHROMIUM))('the dashboard, in headless chromium', () => {
  let server: NatsServer;
  let nodes: TroupeProcess[] = [];
  let client: ActorSystem;
  let browser: BrowserContext;
  let profile: string;
  let opsUrl: string;

  beforeAll(async () => {
    server = await NatsServer.start();
    const env = (node: string) => ({
      TROUPE_NATS_URL: server.url,
      TROUPE_CLUSTER: CLUSTER,
      TROUPE_NODE: node,
      TROUPE_OPS_PORT: '0',
      TROUPE_OPS_HOST: '127.0.0.1',
      TROUPE_HEARTBEAT_MS: '200',
    });
    nodes = ['node-a', 'node-b'].map((node) =>
      TroupeProcess.start(['node', '--config', 'test/ops/node-config.ts'], env(node)),
    );
    const [started] = await Promise.all(nodes.map((n) => n.log('node started')));
    opsUrl = started!.ops as string;
    client = await createNode({
      name: CLUSTER,
      node: 'client',
      transport: await natsTransport({ servers: server.url }),
      deadLetterLog: () => {},
    });
    profile = mkdtempSync(join(tmpdir(), 'troupe-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: [...CHROMIUM_ARGS],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await client?.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await server?.dispose();
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
  });

  it('shows both trees, then a crash and its restart live, and saves the screenshot', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    // Some activity first: a named actor, a dead letter.
    await client.ref(`troupe://${CLUSTER}/node-a/front`, Front).ask('greet', { key: 'ada', n: 1 });
    client.ref(`troupe://${CLUSTER}/node-b/nobody`, Worker).tell('crash', { why: 'lost' });
    await page.goto(`${opsUrl}/dashboard/`);
    const trees = page.locator('#trees');
    await expect.poll(() => trees.innerText(), { timeout: 15_000 }).toContain('troupe://dash/node-b/');
    expect(await trees.innerText()).toContain('troupe://dash/node-a/');
    const members = page.locator('tr[data-node]');
    await expect.poll(() => members.count()).toBe(2);
    await expect.poll(() => page.locator('#dead-letters tr').count()).toBe(1);
    await expect
      .poll(() => page.locator('#dead-letters').innerText(), { timeout: 15_000 })
      .toContain('nobody');
    // A mark on the window: a reload would lose it.
    await page.evaluate(() => Object.assign(globalThis, { troupeTestMark: 1 }));

    client
      .ref(`troupe://${CLUSTER}/node-b/app/worker`, Worker)
      .tell('crash', { why: 'injected by the browser test' });
    const failures = page.locator('#failures');
    await expect
      .poll(() => failures.innerText(), { timeout: 15_000 })
      .toContain('injected by the browser test');
    await expect
      .poll(() => failures.innerText(), { timeout: 15_000 })
      .toMatch(/node-b\s+restarted\s+app\/worker/);
    await expect
      .poll(
        () => page.locator('[data-node="node-b"] li li li').filter({ hasText: 'worker' }).first().innerText(),
        {
          timeout: 15_000,
        },
      )
      .toMatch(/worker\s+worker\s+running\s+restarts=1/);
    // The rates chart shows the crash as a blip: a crash rate above zero, and the crash and restart
    // lines (#ff6b6b, #f5c04a; the restart line covers the crash line when they are equal) drawn on
    // the chart's canvas. A single point used to fall outside the chart's time range.
    const rates = page.locator('#rates');
    await expect
      .poll(async () => Number(await rates.getAttribute('data-crash-peak')), { timeout: 15_000 })
      .toBeGreaterThan(0);
    const ratePixels = async () => {
      await rates.screenshot(); // a headless page paints (and uPlot draws) when a frame is taken
      // A string, evaluated in the page: the test's TypeScript has no DOM types.
      return (await page.evaluate(`(() => {
        const canvas = document.querySelector('#rates canvas');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        const near = (i, [r, g, b]) =>
          Math.abs(pixels[i] - r) < 40 && Math.abs(pixels[i + 1] - g) < 40 && Math.abs(pixels[i + 2] - b) < 40;
        let n = 0;
        for (let i = 0; i < pixels.length; i += 4) if (near(i, [0xff, 0x6b, 0x6b]) || near(i, [0xf5, 0xc0, 0x4a])) n++;
        return n;
      })()`)) as number;
    };
    await expect.poll(ratePixels, { timeout: 15_000 }).toBeGreaterThan(0);
    // Live: the same page, never reloaded.
    expect(await page.evaluate(() => (globalThis as { troupeTestMark?: number }).troupeTestMark)).toBe(1);
    expect(errors).toEqual([]);
    const root = join(import.meta.dirname, '..', '..');
    const shot = join(root, '.tmp', 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    if (process.env.TROUPE_UPDATE_DOCS === '1') copyFileSync(shot, join(root, 'docs', 'dashboard.png'));
    console.log(`dashboard screenshot: ${shot}`);
  });

  it('is served by troupe dashboard too', async () => {
    const dashboard = TroupeProcess.start([
      'dashboard',
      '--nats',
      server.url,
      '--cluster',
      CLUSTER,
      '--port',
      '0',
    ]);
    try {
      await expect
        .poll(() => dashboard.stdout, { timeout: 15_000 })
        .toMatch(/at http:\/\/127\.0\.0\.1:\d+\/dashboard\//);
      const url = /at (http:\S+)/.exec(dashboard.stdout)![1]!;
      const state = (await (await fetch(`${url}state.json`)).json()) as {
        members: { node: string; answered: boolean }[];
      };
      expect(state.members.map((m) => [m.node, m.answered])).toEqual([
        ['node-a', true],
        ['node-b', true],
      ]);
      const page = await browser.newPage();
      await page.goto(url);
      await expect
        .poll(() => page.locator('#trees').innerText(), { timeout: 15_000 })
        .toContain('troupe://dash/node-a/');
      dashboard.signal('SIGINT');
      expect((await dashboard.exited).code).toBe(0);
    } finally {
      await dashboard.stop();
    }
  });
});
