/**
 * The HTML report of a simulated run, opened in headless Chromium (Debian's, driven by
 * playwright-core): it renders without errors, shows a row per node with the fault windows shaded,
 * both uPlot charts and every checker's verdict; a screenshot is saved.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { htmlReport, registerWorkload, simulate, summary } from 'troupe/chaos';
import { afterAll, describe, expect, it } from 'vitest';
import { CHROMIUM, CHROMIUM_ARGS } from '../harness/browser.js';

const dir = mkdtempSync(join(tmpdir(), 'troupe-chaos-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('chaos report', () => {
  it('renders in headless Chromium: timeline per node with faults shaded, latency, throughput, verdicts', async () => {
    const run = await simulate(
      {
        name: 'report',
        seed: 4,
        durationMs: 15_000,
        nodes: ['n1', 'n2', 'n3'],
        workload: { name: 'register' },
        faults: [
          { kind: 'partition', at: 3000, durationMs: 3000, sides: [['n1'], ['n2', 'n3']] },
          { kind: 'crash-node', at: 8000, durationMs: 2000, node: 'n2' },
        ],
      },
      { workload: registerWorkload({ broken: 'stale-read' }) },
    );
    const text = summary(run);
    expect(text).toMatch(/chaos run "report" seed 4: 3 nodes/);
    expect(text).toMatch(/✗ linearizable\(register\): violated/);
    const file = join(dir, 'report.html');
    writeFileSync(file, htmlReport(run));
    // launch() gives the browser a fresh profile directory of its own.
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      // Self-contained: any request but the file itself is a failure.
      page.on('request', (r) => {
        if (!r.url().startsWith('file:')) errors.push(`fetched ${r.url()}`);
      });
      await page.goto(`file://${file}`);
      await expect.poll(() => page.evaluate('document.body.dataset.rendered')).toBe('yes');
      expect(errors).toEqual([]);
      expect(await page.locator('#timeline .node-row').count()).toBe(3);
      // The partition shades every row; the crash of n2 shades its row too.
      expect(await page.locator('#timeline .node-row[data-node="n2"] rect.fault').count()).toBe(2);
      expect(await page.locator('#timeline .node-row[data-node="n1"] rect.fault').count()).toBe(1);
      expect(await page.locator('.uplot canvas').count()).toBe(2);
      expect(await page.locator('#verdicts tr.verdict').count()).toBe(run.verdicts.length);
      expect(await page.locator('#verdicts tr.violated').first().textContent()).toMatch(/linearizable/);
      const shot = join(dir, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(10_000);
      console.log(`chaos report screenshot: ${shot}`);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
