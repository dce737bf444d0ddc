/** The introspection commands: `troupe members`, `tree`, `actors`, `events`, `stop` (and `dashboard`). */
import type { Command } from 'commander';
import { realClock } from '../../runtime/index.js';
import { renderTree } from '../console.js';
import { startDashboardServer } from '../dashboard/routes.js';
import { ClusterView } from '../dashboard/view.js';
import { type ClusterClient, connectCluster, type NodeAnswer } from '../introspection/client.js';
import type { OpsEvent } from '../introspection/protocol.js';
import { type CliIo, describeError, type ExitCode } from './io.js';

/** The options every command against a live cluster takes. */
interface ClusterOptions {
  nats: string;
  cluster?: string;
  prefix?: string;
  user?: string;
  pass?: string;
  token?: string;
  timeout: string;
  json?: boolean;
}

function clusterCommand(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .option(
      '--nats <url>',
      'NATS URL(s), comma-separated (env TROUPE_NATS_URL)',
      process.env.TROUPE_NATS_URL ?? 'nats://127.0.0.1:4222',
    )
    .option('--cluster <name>', 'the cluster name (env TROUPE_CLUSTER)', process.env.TROUPE_CLUSTER)
    .option(
      '--prefix <prefix>',
      'the subject prefix of its nodes (env TROUPE_NATS_PREFIX; default troupe.<cluster>)',
      process.env.TROUPE_NATS_PREFIX,
    )
    .option('--user <user>', 'NATS user (env TROUPE_NATS_USER)', process.env.TROUPE_NATS_USER)
    .option('--pass <pass>', 'NATS password (env TROUPE_NATS_PASS)', process.env.TROUPE_NATS_PASS)
    .option('--token <token>', 'NATS token (env TROUPE_NATS_TOKEN)', process.env.TROUPE_NATS_TOKEN)
    .option('--timeout <ms>', 'how long a node has to answer', '2000');
}

/** Progress on stderr for slow work: in place on a terminal, else a line at most every second. */
function progress(io: CliIo) {
  const started = realClock.now();
  let printed = started;
  let shown = false;
  return {
    update(text: string) {
      const now = realClock.now();
      if (io.errIsTty === true) {
        io.err(`\r\x1b[2K${text}`);
        shown = true;
      } else if (now - printed >= 1000) {
        io.err(`${text}\n`);
        printed = now;
      }
    },
    done() {
      if (shown) io.err('\r\x1b[2K');
    },
  };
}

async function withCluster(
  options: ClusterOptions,
  io: CliIo,
  exit: (code: ExitCode) => void,
  work: (client: ClusterClient) => Promise<ExitCode>,
): Promise<void> {
  if (options.cluster === undefined || options.cluster === '') {
    io.err('troupe: --cluster <name> (or TROUPE_CLUSTER) is required\n');
    exit(2);
    return;
  }
  const timeoutMs = Number(options.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    io.err(`troupe: --timeout must be a positive integer of milliseconds (got "${options.timeout}")\n`);
    exit(2);
    return;
  }
  let client: ClusterClient;
  try {
    client = await connectCluster({
      servers: options.nats.split(',').map((s) => s.trim()),
      cluster: options.cluster,
      timeoutMs,
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
      ...(options.user === undefined ? {} : { user: options.user }),
      ...(options.pass === undefined ? {} : { pass: options.pass }),
      ...(options.token === undefined ? {} : { token: options.token }),
    });
  } catch (error) {
    io.err(`troupe: ${describeError(error)}\n`);
    exit(1);
    return;
  }
  try {
    exit(await work(client));
  } catch (error) {
    io.err(`troupe: ${describeError(error)}\n`);
    exit(1);
  } finally {
    await client.close();
  }
}

/** Rows as an aligned table with a header. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

function ago(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m`;
  return `${Math.floor(ms / 3_600_000)}h`;
}

function json(io: CliIo, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** Registers the commands that look into (and act on) a live cluster. */
export function registerIntrospection(program: Command, io: CliIo, exit: (code: ExitCode) => void): void {
  clusterCommand(
    program,
    'members',
    "every node in the cluster's membership, whether it answers, and its view",
  )
    .option('--json', 'print JSON')
    .action((options: ClusterOptions) =>
      withCluster(options, io, exit, async (client) => {
        const members = await client.members();
        const show = progress(io);
        show.update(`asking ${members.length} node(s)...`);
        const infos = await Promise.all(members.map((m) => client.info(m.node)));
        show.done();
        const now = realClock.wallNow();
        if (options.json === true) {
          json(
            io,
            members.map((m, i) => {
              const answer = infos[i]!;
              return {
                node: m.node,
                state: m.state,
                heartbeatAgeMs: now - m.heartbeatAt,
                answered: answer.ok,
                ...(answer.ok ? { info: answer.value } : { error: answer.error }),
              };
            }),
          );
          return 0;
        }
        if (members.length === 0) {
          io.out(`cluster "${client.cluster}" has no members\n`);
          return 0;
        }
        io.out(
          table(
            ['NODE', 'STATE', 'HEARTBEAT', 'ANSWERS', 'UPTIME', 'ACTORS', 'MAILBOXES', 'VIEW'],
            members.map((m, i) => {
              const answer = infos[i]!;
              if (!answer.ok) {
                return [
                  m.node,
                  m.state,
                  `${ago(now - m.heartbeatAt)} ago`,
                  `no (${answer.error})`,
                  '-',
                  '-',
                  '-',
                  '-',
                ];
              }
              const info = answer.value;
              return [
                m.node,
                m.state,
                `${ago(now - m.heartbeatAt)} ago`,
                'yes',
                ago(now - info.startedAt),
                String(info.actors),
                String(info.mailboxes),
                info.members.map((v) => `${v.node}:${v.state}`).join(' '),
              ];
            }),
          ),
        );
        return 0;
      }),
    );

  clusterCommand(
    program,
    'tree',
    'the supervision tree of every node (or one), with restarts and mailbox sizes',
  )
    .option('--node <node>', 'only this node')
    .option('--json', 'print JSON')
    .action((options: ClusterOptions & { node?: string }) =>
      withCluster(options, io, exit, async (client) => {
        const nodes =
          options.node === undefined ? (await client.members()).map((m) => m.node) : [options.node];
        const show = progress(io);
        const received = new Map<string, string>();
        const trees = await Promise.all(
          nodes.map((node) =>
            client.tree(node, (n, got, total) => {
              received.set(n, `${n} ${got}/${total}`);
              show.update(`tree: ${[...received.values()].join(', ')} actors`);
            }),
          ),
        );
        show.done();
        if (options.json === true) {
          json(
            io,
            trees.map((t) => (t.ok ? { node: t.node, tree: t.value } : { node: t.node, error: t.error })),
          );
          return 0;
        }
        if (nodes.length === 0) io.out(`cluster "${client.cluster}" has no members\n`);
        for (const t of trees) {
          io.out(
            t.ok
              ? `${renderTree(t.value, { color: io.errIsTty === true })}\n\n`
              : `node ${t.node}: ${t.error}\n\n`,
          );
        }
        return trees.every((t) => t.ok) ? 0 : 1;
      }),
    );

  clusterCommand(program, 'actors', 'the named actors (activations) of every node, with their state')
    .option('--json', 'print JSON')
    .action((options: ClusterOptions) =>
      withCluster(options, io, exit, async (client) => {
        const nodes = (await client.members()).map((m) => m.node);
        const answers = await Promise.all(nodes.map((node) => client.activations(node)));
        if (options.json === true) {
          json(
            io,
            answers.map((a) =>
              a.ok ? { node: a.node, activations: a.value } : { node: a.node, error: a.error },
            ),
          );
          return 0;
        }
        const rows = answers.flatMap((a) =>
          a.ok
            ? a.value.map((v) => [v.address, a.node, v.status, String(v.restarts), String(v.mailboxSize)])
            : [[`(node ${a.node}: ${a.error})`, a.node, '-', '-', '-']],
        );
        io.out(table(['ADDRESS', 'NODE', 'STATUS', 'RESTARTS', 'MAILBOX'], rows));
        return 0;
      }),
    );

  clusterCommand(
    program,
    'events',
    'the recent events of every node (crashes, restarts, dead letters, members...)',
  )
    .option('--node <node>', 'only this node')
    .option('-f, --follow', 'keep printing new events until interrupted')
    .option('--interval <ms>', 'how often --follow asks for new events', '500')
    .option('--json', 'print one JSON object a line')
    .action((options: ClusterOptions & { node?: string; follow?: boolean; interval: string }) =>
      withCluster(options, io, exit, async (client) => {
        const print = (event: OpsEvent) => {
          if (options.json === true) io.out(`${JSON.stringify(event)}\n`);
          else {
            const time = new Date(event.at).toISOString().slice(11, 23);
            io.out(
              `${time}  ${event.node.padEnd(10)}  ${event.kind.padEnd(11)}  ${event.subject}${event.detail === '' ? '' : `  ${event.detail}`}\n`,
            );
          }
        };
        const cursors = new Map<string, number>();
        const silent = new Set<string>();
        const round = async () => {
          const nodes =
            options.node === undefined ? (await client.members()).map((m) => m.node) : [options.node];
          const answers = await Promise.all(nodes.map((node) => client.events(node, cursors.get(node) ?? 0)));
          const fresh: OpsEvent[] = [];
          for (const answer of answers as NodeAnswer<{ events: OpsEvent[]; next: number }>[]) {
            if (!answer.ok) {
              if (!silent.has(answer.node)) io.err(`troupe: node ${answer.node}: ${answer.error}\n`);
              silent.add(answer.node);
              continue;
            }
            silent.delete(answer.node);
            cursors.set(answer.node, answer.value.next);
            fresh.push(...answer.value.events);
          }
          fresh.sort((a, b) => a.at - b.at || a.seq - b.seq);
          for (const event of fresh) print(event);
        };
        await round();
        if (options.follow !== true) return 0;
        const intervalMs = Math.max(50, Number(options.interval) || 500);
        let stop!: () => void;
        const stopped = new Promise<void>((resolve) => {
          stop = resolve;
        });
        const onSignal = () => stop();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          for (;;) {
            const tick = new Promise<'tick'>((resolve) =>
              realClock.setTimeout(() => resolve('tick'), intervalMs),
            );
            if ((await Promise.race([tick, stopped.then(() => 'stop' as const)])) === 'stop') return 0;
            await round();
          }
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }),
    );

  clusterCommand(program, 'stop', 'stop an actor by address, at any depth, as its parent would (no restart)')
    .argument('<address>', 'troupe://<cluster>/<node>/<path>')
    .option('--json', 'print JSON')
    .action((address: string, options: ClusterOptions) =>
      withCluster(options, io, exit, async (client) => {
        const answers = await client.stop(address);
        if (options.json === true) json(io, answers);
        const done = answers.find((a) => a.ok && a.value.stopped);
        if (done?.ok) {
          if (options.json !== true) io.out(`${done.value.detail}\n`);
          return 0;
        }
        if (options.json !== true) {
          for (const a of answers) io.err(`troupe: node ${a.node}: ${a.ok ? a.value.detail : a.error}\n`);
        }
        return 1;
      }),
    );

  clusterCommand(program, 'dashboard', 'serve the live web dashboard of a cluster (until interrupted)')
    .option('--port <port>', 'HTTP port (0 picks one)', '8080')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .action((options: ClusterOptions & { port: string; host: string }) =>
      withCluster(options, io, exit, async (client) => {
        const server = await startDashboardServer(new ClusterView(client), {
          port: Number(options.port),
          host: options.host,
        });
        io.out(`dashboard of cluster "${client.cluster}" at ${server.url}\n`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
        await server.close();
        return 0;
      }),
    );
}
