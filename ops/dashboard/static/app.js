// The troupe dashboard: a live view of a cluster, fed by server-sent events (`snapshot` every poll,
// `event` for each new event). preact + htm for the view, uPlot for the rates; no bundler.
import htm from 'htm';
import { h, render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';

const html = htm.bind(h);
const WINDOW = 120;

function sum(members, pick) {
  return members.reduce((total, m) => total + (m.info ? pick(m.info) : 0), 0);
}

function useCluster() {
  const [state, setState] = useState({
    snapshot: undefined,
    events: [],
    series: [[], [], [], [], []],
    connected: false,
  });
  useEffect(() => {
    const source = new EventSource('./events');
    let previous;
    source.onopen = () => setState((s) => ({ ...s, connected: true }));
    source.onerror = () => setState((s) => ({ ...s, connected: false }));
    source.addEventListener('snapshot', (message) => {
      const snapshot = JSON.parse(message.data);
      const members = snapshot.members;
      const now = {
        at: snapshot.at / 1000,
        crashes: sum(members, (i) => i.counters.crashes),
        restarts: sum(members, (i) => i.counters.restarts),
        deadLetters: sum(members, (i) => i.counters.deadLetters),
        mailboxes: sum(members, (i) => i.mailboxes),
      };
      // The point is computed here, once per snapshot, so the state updater below stays pure.
      let point;
      if (previous !== undefined) {
        const seconds = Math.max(0.001, now.at - previous.at);
        point = [
          now.at,
          (now.crashes - previous.crashes) / seconds,
          (now.restarts - previous.restarts) / seconds,
          (now.deadLetters - previous.deadLetters) / seconds,
          now.mailboxes,
        ];
      }
      previous = now;
      setState((s) => ({
        ...s,
        snapshot,
        connected: true,
        series:
          point === undefined
            ? s.series
            : s.series.map((column, i) => [...column.slice(-WINDOW + 1), point[i]]),
      }));
    });
    source.addEventListener('event', (message) => {
      const event = JSON.parse(message.data);
      // After a reconnect the server sends its recent events again: keep each once.
      setState((s) =>
        s.events.some((e) => e.node === event.node && e.seq === event.seq)
          ? s
          : { ...s, events: [...s.events.slice(-299), event] },
      );
    });
    return () => source.close();
  }, []);
  return state;
}

function Chart({ series }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    plot.current = new uPlot(
      {
        width: Math.max(300, box.current.clientWidth - 8),
        height: 170,
        scales: {
          x: {
            time: true,
            // The last WINDOW seconds up to the newest point. From the data, not from uPlot's max:
            // with a single point uPlot widens a time scale by a day, which hid the first points.
            range: (u) => {
              const xs = u.data[0];
              const last = xs.length > 0 ? xs[xs.length - 1] : Date.now() / 1000;
              return [last - WINDOW, last];
            },
          },
        },
        series: [
          {},
          { label: 'crashes/s', stroke: '#ff6b6b', width: 1.5 },
          { label: 'restarts/s', stroke: '#f5c04a', width: 1.5 },
          { label: 'dead letters/s', stroke: '#d98cff', width: 1.5 },
          { label: 'mailboxes', stroke: '#6cb6ff', width: 1.5, scale: 'depth' },
        ],
        axes: [
          // Times of day in UTC, like every other time on the page.
          {
            stroke: '#7d8a98',
            values: (_u, splits) => splits.map((t) => new Date(t * 1000).toISOString().slice(11, 19)),
          },
          { stroke: '#7d8a98' },
          { side: 1, scale: 'depth', stroke: '#6cb6ff' },
        ],
      },
      series,
      box.current,
    );
    return () => plot.current.destroy();
  }, []);
  useEffect(() => {
    plot.current?.setData(series);
  }, [series]);
  // The number of points and the highest crash rate in the window, for a test (and a reader of
  // the DOM) to check.
  const peak = Math.max(0, ...series[1]);
  return html`<div ref=${box} id="rates" data-points=${series[0].length} data-crash-peak=${peak}></div>`;
}

function Tree({ node }) {
  return html`<li>
    <span class=${node.kind === 'worker' ? '' : 'bold'}>${node.kind === 'guardian' ? node.address : node.name}</span>
    ${' '}<span class="dim">${node.kind === 'worker' ? 'worker' : `${node.kind} ${node.strategy}`}</span>
    ${' '}<span class=${`status-${node.status}`} data-status=${node.status}>${node.status}</span>
    ${' '}<span class=${node.restarts > 0 ? 'restarts' : 'dim'}>restarts=${node.restarts}</span>
    ${' '}<span class=${node.mailboxSize > 0 ? 'mailbox' : 'dim'}>mailbox=${node.mailboxSize}</span>
    ${node.children.length > 0 && html`<ul>${node.children.map((child) => html`<${Tree} key=${child.address} node=${child} />`)}</ul>`}
  </li>`;
}

function Members({ members }) {
  return html`<table>
    <tr><th>node</th><th>state</th><th>heartbeat</th><th>answers</th><th>actors</th><th>mailboxes</th><th>crashes</th><th>restarts</th><th>view</th></tr>
    ${members.map(
      (m) => html`<tr key=${m.node} data-node=${m.node}>
        <td>${m.node}</td>
        <td class=${`state-${m.state}`}>${m.state}</td>
        <td class="dim">${(Math.max(0, m.heartbeatAgeMs) / 1000).toFixed(1)}s ago</td>
        <td class=${m.answered ? 'state-up' : 'ev-crashed'}>${m.answered ? 'yes' : `no (${m.error})`}</td>
        <td>${m.info?.actors ?? '-'}</td>
        <td>${m.info?.mailboxes ?? '-'}</td>
        <td>${m.info?.counters.crashes ?? '-'}</td>
        <td>${m.info?.counters.restarts ?? '-'}</td>
        <td class="dim">${(m.info?.members ?? []).map((v) => `${v.node}:${v.state}`).join(' ')}</td>
      </tr>`,
    )}
  </table>`;
}

function Events({ events, filter, empty }) {
  const shown = events.filter(filter).slice(-150).reverse();
  if (shown.length === 0) return html`<div class="dim">${empty}</div>`;
  return html`<table class="events">
    ${shown.map(
      (e) => html`<tr key=${`${e.node}#${e.seq}`} class=${`ev-${e.kind}`} data-type=${e.type}>
        <td class="dim">${new Date(e.at).toISOString().slice(11, 23)}</td>
        <td>${e.node}</td><td>${e.kind}</td><td>${e.subject}</td><td class="dim">${e.detail}</td>
      </tr>`,
    )}
  </table>`;
}

function Breakers({ members }) {
  const rows = members.flatMap((m) => (m.breakers ?? []).map((b) => ({ ...b, node: m.node })));
  if (rows.length === 0) return html`<div class="dim">no breaker has changed state</div>`;
  return html`<table>
    <tr><th>node</th><th>breaker</th><th>state</th><th>since</th><th>transitions</th></tr>
    ${rows.map(
      (b) => html`<tr key=${`${b.node}/${b.name}`}><td>${b.node}</td><td>${b.name}</td>
        <td class=${`state-${b.state}`}>${b.state}</td><td class="dim">${new Date(b.since).toISOString().slice(11, 19)}</td><td>${b.transitions}</td></tr>`,
    )}
  </table>`;
}

function Activity({ members }) {
  const runs = members.flatMap((m) =>
    (m.info?.activity.agentRuns ?? []).map((r) => ({ ...r, node: m.node })),
  );
  const flows = members.flatMap((m) =>
    (m.info?.activity.workflows ?? []).map((w) => ({ ...w, node: m.node })),
  );
  const chats = members.flatMap((m) => (m.info?.activity.chats ?? []).map((c) => ({ ...c, node: m.node })));
  const tokensIn = sum(members, (i) => i.counters.inputTokens);
  const tokensOut = sum(members, (i) => i.counters.outputTokens);
  const cost = sum(members, (i) => i.counters.costUsd);
  return html`<div>
    <div class="counters">
      <span>runs ${sum(members, (i) => i.counters.agentRuns)}</span>
      <span>failed ${sum(members, (i) => i.counters.agentRunsFailed)}</span>
      <span>tokens ${tokensIn + tokensOut} (${tokensIn} in, ${tokensOut} out)</span>
      <span>cost $${cost.toFixed(4)}</span>
      <span>workflows ended ${sum(members, (i) => i.counters.workflowsEnded)}</span>
      <span>chats ended ${sum(members, (i) => i.counters.chatsEnded)}</span>
    </div>
    <table>
      <tr><th>in flight</th><th>node</th><th>what</th><th>progress</th><th>tokens</th><th>cost</th></tr>
      ${runs.map((r) => html`<tr key=${r.run}><td>agent run</td><td>${r.node}</td><td>${r.agent} ${r.run}</td><td>step ${r.steps}</td><td>${r.inputTokens + r.outputTokens}</td><td>$${r.costUsd.toFixed(4)}</td></tr>`)}
      ${flows.map((w) => html`<tr key=${w.workflow}><td>workflow</td><td>${w.node}</td><td>${w.definition} ${w.workflow}</td><td>${w.steps} steps</td><td></td><td></td></tr>`)}
      ${chats.map((c) => html`<tr key=${c.chat}><td>group chat</td><td>${c.node}</td><td>${c.chat}</td><td>turn ${c.turns}</td><td></td><td></td></tr>`)}
      ${runs.length + flows.length + chats.length === 0 && html`<tr><td class="dim" colspan="6">nothing in flight</td></tr>`}
    </table>
  </div>`;
}

function App() {
  const { snapshot, events, series, connected } = useCluster();
  if (snapshot === undefined)
    return html`<header><h1>troupe</h1><span class="dim">connecting…</span></header>`;
  const members = snapshot.members;
  return html`
    <header>
      <h1>troupe · ${snapshot.cluster}</h1>
      <span class=${connected ? 'live' : 'down'}>${connected ? '● live' : '● reconnecting'}</span>
      <span class="dim">${members.length} members · ${sum(members, (i) => i.actors)} actors · updated ${new Date(snapshot.at).toISOString().slice(11, 19)}</span>
    </header>
    <main>
      <section class="wide"><h2>Members</h2><${Members} members=${members} /></section>
      <section><h2>Supervision trees</h2>
        <div class="tree" id="trees">
          ${members.map(
            (m) => html`<div class="node-tree" key=${m.node} data-node=${m.node}>
              ${m.tree ? html`<ul><${Tree} node=${m.tree} /></ul>` : html`<div class="dim">${m.node}: ${m.error ?? m.treeNote}</div>`}
            </div>`,
          )}
        </div>
      </section>
      <section><h2>Rates</h2><${Chart} series=${series} />
        <h2>Crashes and restarts</h2>
        <div id="failures"><${Events} events=${events} filter=${(e) => ['actor-crashed', 'actor-restarted', 'supervisor-escalated', 'activation-failed'].includes(e.type)} empty="no crash yet" /></div>
      </section>
      <section><h2>Dead letters</h2><div id="dead-letters"><${Events} events=${events} filter=${(e) => e.type === 'dead-letter'} empty="no dead letter" /></div></section>
      <section><h2>Breakers</h2><${Breakers} members=${members} /></section>
      <section class="wide"><h2>Agents, workflows and societies</h2><${Activity} members=${members} /></section>
      <section class="wide"><h2>Events</h2><div id="events"><${Events} events=${events} filter=${() => true} empty="no event yet" /></div></section>
    </main>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
