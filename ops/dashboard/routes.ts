/**
 * The dashboard's HTTP side: the page and its scripts (preact, htm and uPlot served from their
 * packages, no bundler), a JSON snapshot, and a server-sent-events stream of snapshots and events.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TroupeError } from '../../protocols/index.js';
import type { ClusterView } from './view.js';

const STATIC = join(dirname(fileURLToPath(import.meta.url)), 'static');

/** The directory of an installed package. */
function packageDir(name: string): string {
  const require = createRequire(import.meta.url);
  let dir = dirname(require.resolve(name));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (
      existsSync(manifest) &&
      (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === name
    )
      return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the package directory of ${name}`);
    dir = parent;
  }
}

/** The files the page loads: path under /dashboard/ → file and type. */
function files(): Map<string, { file: string; type: string }> {
  const js = 'text/javascript; charset=utf-8';
  const preact = packageDir('preact');
  const uplot = packageDir('uplot');
  return new Map([
    ['', { file: join(STATIC, 'index.html'), type: 'text/html; charset=utf-8' }],
    ['app.js', { file: join(STATIC, 'app.js'), type: js }],
    ['style.css', { file: join(STATIC, 'style.css'), type: 'text/css; charset=utf-8' }],
    ['vendor/preact.mjs', { file: join(preact, 'dist', 'preact.mjs'), type: js }],
    ['vendor/hooks.mjs', { file: join(preact, 'hooks', 'dist', 'hooks.mjs'), type: js }],
    ['vendor/htm.mjs', { file: join(packageDir('htm'), 'dist', 'htm.mjs'), type: js }],
    ['vendor/uPlot.esm.js', { file: join(uplot, 'dist', 'uPlot.esm.js'), type: js }],
    ['vendor/uPlot.min.css', { file: join(uplot, 'dist', 'uPlot.min.css'), type: 'text/css; charset=utf-8' }],
  ]);
}

/**
 * The dashboard's request handler for an HTTP server: answers `/dashboard/...` and returns true,
 * or returns false for any other path. Give it to `startOpsServer({ routes })`.
 */
export function dashboardRoutes(
  view: ClusterView,
): (request: IncomingMessage, response: ServerResponse) => boolean {
  const served = files();
  return (request, response) => {
    const path = (request.url ?? '/').split('?')[0]!;
    if (path === '/' || path === '/dashboard') {
      response.writeHead(302, { location: '/dashboard/' });
      response.end();
      return true;
    }
    if (!path.startsWith('/dashboard/')) return false;
    const rest = path.slice('/dashboard/'.length);
    if (rest === 'events') {
      stream(view, request, response);
      return true;
    }
    if (rest === 'state.json') {
      view.snapshot().then(
        (snapshot) => {
          response.writeHead(200, {
            'content-type': 'application/json; charset=utf-8',
            'cache-control': 'no-store',
          });
          response.end(JSON.stringify(snapshot));
        },
        (error: unknown) => {
          response.writeHead(502, { 'content-type': 'application/json; charset=utf-8' });
          response.end(JSON.stringify({ error: String(error) }));
        },
      );
      return true;
    }
    const file = served.get(rest);
    if (file === undefined) return false;
    const body = readFileSync(file.file);
    response.writeHead(200, {
      'content-type': file.type,
      'content-length': body.length,
      'cache-control': 'no-cache',
    });
    response.end(request.method === 'HEAD' ? undefined : body);
    return true;
  };
}

/** Server-sent events: `snapshot` every poll, `event` for each new event of any node. */
function stream(view: ClusterView, request: IncomingMessage, response: ServerResponse): void {
  response.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
  });
  response.write(': troupe dashboard\n\n');
  const send = (name: string, data: unknown) =>
    response.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  const unsubscribe = view.subscribe({
    snapshot: (snapshot) => send('snapshot', snapshot),
    event: (event) => send('event', event),
  });
  request.on('close', unsubscribe);
}

/** A standalone dashboard server (`troupe dashboard`). */
export interface DashboardServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves the dashboard on its own HTTP server (what `troupe dashboard` runs).
 * @throws TroupeError `ERR_OPS_LISTEN` when the port cannot be listened on.
 */
export async function startDashboardServer(
  view: ClusterView,
  options: { readonly port?: number; readonly host?: string } = {},
): Promise<DashboardServer> {
  const routes = dashboardRoutes(view);
  const server = createServer((request, response) => {
    if (!routes(request, response)) {
      response.writeHead(404, { 'content-type': 'text/plain' });
      response.end('not found\n');
    }
  });
  const port = options.port ?? 8080;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause: Error & { code?: string }) =>
      reject(
        new TroupeError(
          'ERR_OPS_LISTEN',
          `the dashboard could not listen on port ${port}: ${cause.code ?? cause.message}`,
          {
            cause,
            details: { port, host: options.host },
          },
        ),
      ),
    );
    server.listen({ port, ...(options.host === undefined ? {} : { host: options.host }) }, resolve);
  });
  const address = server.address() as AddressInfo;
  const host =
    options.host === undefined || options.host === '0.0.0.0' || options.host === '::'
      ? '127.0.0.1'
      : options.host;
  return {
    url: `http://${host}:${address.port}/dashboard/`,
    close: () =>
      new Promise<void>((resolve) => {
        view.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
