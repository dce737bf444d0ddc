/**
 * Reports of a chaos run: a terminal summary and a self-contained HTML page (uPlot inlined): a
 * timeline per node with the fault windows shaded, latency of every operation by outcome over
 * time, throughput over time, and each checker's verdict with the operations that break it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Verdict } from '../checkers/index.js';
import { faultWindows, type History, outcome, pairs, skippedFaults } from '../history/index.js';

const require = createRequire(import.meta.url);

/** A run as the reports read it. */
export interface RunReport {
  readonly history: History;
  readonly verdicts: readonly Verdict[];
}

const MARK = { ok: '✓', violated: '✗', unknown: '?' } as const;

/**
 * A few lines for a terminal: the run, counts of outcomes, and each checker's verdict.
 * @example
 * ```ts
 * console.log(summary(await simulate(plan, { workload })));
 * ```
 */
export function summary(run: RunReport): string {
  const { history, verdicts } = run;
  const all = pairs(history.ops);
  const count = { ok: 0, fail: 0, info: 0 };
  for (const p of all) count[outcome(p)]++;
  const faults = faultWindows(history).length;
  const lines = [
    `chaos run "${history.plan}" seed ${history.seed}: ${history.nodes.length} nodes, ${(history.durationMs / 1000).toFixed(1)} s, ${faults} fault(s)`,
    `  operations: ${all.length} (${count.ok} ok, ${count.fail} fail, ${count.info} unknown); log entries: ${history.log.length}`,
    ...verdicts.map((v) => `  ${MARK[v.verdict]} ${v.checker}: ${v.verdict}: ${v.message}`),
    ...skippedFaults(history).map(
      (op) =>
        `  ${op.f}${op.node === undefined ? '' : ` on ${op.node}`} @${op.time.toFixed(0)} ms skipped: ${op.error}`,
    ),
  ];
  return lines.join('\n');
}

/** Escapes text for HTML. */
function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Keeps `</script>` and friends out of inlined JSON. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

const COLORS = { ok: '#2e9e4f', fail: '#e69a1c', info: '#d43f3a' } as const;

/**
 * The run as one HTML page that needs nothing else (uPlot and its CSS are inlined).
 */
export function htmlReport(run: RunReport): string {
  const { history, verdicts } = run;
  const all = pairs(history.ops);
  const end = Math.max(history.durationMs, 1);
  const windows = faultWindows(history);
  // Timeline: one row per node; each operation a bar from invoke to completion, by outcome.
  const rowH = 26;
  const width = 1100;
  const left = 70;
  const x = (t: number) => left + ((width - left - 10) * t) / end;
  const rows = history.nodes.map((node, i) => {
    const y = 10 + i * rowH;
    const shaded = windows
      .filter((w) => w.node === undefined || w.node === node || involves(w.value, node))
      .map(
        (w) =>
          `<rect class="fault" x="${x(w.start).toFixed(1)}" y="${y}" width="${Math.max(1, x(w.end) - x(w.start)).toFixed(1)}" height="${rowH - 4}" fill="#f3c4c4" opacity="0.6"><title>${esc(`${w.f} ${JSON.stringify(w.value)} ${w.start}–${w.end} ms`)}</title></rect>`,
      )
      .join('');
    const bars = all
      .filter((p) => p.invoke.node === node)
      .map((p, k) => {
        const o = outcome(p);
        const t1 = p.complete?.time ?? end;
        const lane = y + 3 + (k % 4) * 4;
        return `<line x1="${x(p.invoke.time).toFixed(1)}" x2="${Math.max(x(t1), x(p.invoke.time) + 1).toFixed(1)}" y1="${lane}" y2="${lane}" stroke="${COLORS[o]}" stroke-width="3"/>`;
      })
      .join('');
    return `<g class="node-row" data-node="${esc(node)}"><text x="4" y="${y + 15}" font-size="12">${esc(node)}</text>${shaded}${bars}</g>`;
  });
  const height = 20 + history.nodes.length * rowH;
  const ticks = Array.from({ length: 11 }, (_, i) => (end * i) / 10)
    .map(
      (t) =>
        `<text x="${x(t).toFixed(1)}" y="${height + 4}" font-size="10" text-anchor="middle">${(t / 1000).toFixed(1)}s</text>`,
    )
    .join('');
  const timeline = `<svg id="timeline" width="${width}" height="${height + 10}" xmlns="http://www.w3.org/2000/svg">${rows.join('')}${ticks}</svg>`;

  // Latency by outcome: x the invocation time (s), one series per outcome (points only).
  const points = all
    .filter((p) => p.complete !== undefined)
    .map((p) => ({ t: p.invoke.time / 1000, ms: p.complete!.time - p.invoke.time, o: outcome(p) }))
    .sort((a, b) => a.t - b.t);
  const latency = [
    points.map((p) => p.t),
    ...(['ok', 'fail', 'info'] as const).map((o) => points.map((p) => (p.o === o ? p.ms : null))),
  ];
  // Throughput: completions per second, by outcome.
  const seconds = Math.ceil(end / 1000);
  const buckets = {
    ok: new Array(seconds).fill(0),
    fail: new Array(seconds).fill(0),
    info: new Array(seconds).fill(0),
  };
  for (const p of all) {
    if (p.complete === undefined) continue;
    const s = Math.min(seconds - 1, Math.floor(p.complete.time / 1000));
    buckets[outcome(p)][s]++;
  }
  const throughput = [Array.from({ length: seconds }, (_, i) => i), buckets.ok, buckets.fail, buckets.info];
  const faultSpans = windows.map((w) => [w.start / 1000, w.end / 1000, w.f]);

  const verdictRows = verdicts
    .map(
      (v) =>
        `<tr class="verdict ${v.verdict}"><td>${MARK[v.verdict]} ${esc(v.checker)}</td><td>${v.verdict}</td><td>${esc(v.message)}${
          v.ops.length + (v.entries?.length ?? 0) > 0
            ? `<details><summary>${v.ops.length} operation(s), ${v.entries?.length ?? 0} log entr(ies)</summary><pre>${esc(
                [...v.ops.slice(0, 20), ...(v.entries ?? []).slice(0, 20)]
                  .map((o) => JSON.stringify(o))
                  .join('\n'),
              )}</pre></details>`
            : ''
        }</td></tr>`,
    )
    .join('');
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const s = summary(run);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chaos: ${esc(history.plan)} seed ${history.seed}</title>
<style>${uplotCss}
body{font:14px system-ui,sans-serif;margin:20px;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
tr.ok td:nth-child(2){color:${COLORS.ok}}tr.violated td:nth-child(2){color:${COLORS.info};font-weight:bold}tr.unknown td:nth-child(2){color:${COLORS.fail}}
pre{white-space:pre-wrap;font-size:11px;max-width:900px}.legend span{margin-right:14px}
</style></head><body>
<h1>Chaos run “${esc(history.plan)}”, seed ${history.seed}</h1>
<pre id="summary">${esc(s)}</pre>
<h2>Verdicts</h2>
<table id="verdicts"><tr><th>checker</th><th>verdict</th><th>why</th></tr>${verdictRows}</table>
<h2>Timeline per node</h2>
<p class="legend"><span style="color:${COLORS.ok}">■ ok</span><span style="color:${COLORS.fail}">■ fail</span><span style="color:${COLORS.info}">■ unknown</span><span style="color:#e08a8a">■ fault window</span></p>
${timeline}
<h2>Latency by outcome</h2><div id="latency"></div>
<h2>Throughput (completions per second)</h2><div id="throughput"></div>
<script>${uplotJs}</script>
<script>
const latency = ${scriptJson(latency)};
const throughput = ${scriptJson(throughput)};
const faults = ${scriptJson(faultSpans)};
const shade = (u) => {
  const ctx = u.ctx;
  ctx.save();
  ctx.fillStyle = 'rgba(230,80,80,0.12)';
  for (const [a, b] of faults) {
    const x0 = u.valToPos(a, 'x', true), x1 = u.valToPos(b, 'x', true);
    ctx.fillRect(x0, u.bbox.top, Math.max(1, x1 - x0), u.bbox.height);
  }
  ctx.restore();
};
const series = (points) => [
  { label: 's' },
  { label: 'ok', stroke: '${COLORS.ok}', ...(points ? { paths: () => null, points: { show: true, size: 4, fill: '${COLORS.ok}' } } : {}) },
  { label: 'fail', stroke: '${COLORS.fail}', ...(points ? { paths: () => null, points: { show: true, size: 4, fill: '${COLORS.fail}' } } : {}) },
  { label: 'unknown', stroke: '${COLORS.info}', ...(points ? { paths: () => null, points: { show: true, size: 4, fill: '${COLORS.info}' } } : {}) },
];
new uPlot({ width: 1100, height: 280, scales: { x: { time: false } }, series: series(true), axes: [{ label: 'invoked at (s)' }, { label: 'latency (ms)' }], hooks: { drawClear: [shade] } }, latency, document.getElementById('latency'));
new uPlot({ width: 1100, height: 240, scales: { x: { time: false } }, series: series(false), axes: [{ label: 'time (s)' }, { label: 'ops/s' }], hooks: { drawClear: [shade] } }, throughput, document.getElementById('throughput'));
document.body.dataset.rendered = 'yes';
</script>
</body></html>
`;
}

/** Whether a fault's description names `node` (a partition's sides, a network fault's ends). */
function involves(value: unknown, node: string): boolean {
  return JSON.stringify(value).includes(`"${node}"`);
}
