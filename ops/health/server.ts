import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { invalidOption, TroupeError } from '../../protocols/index.js';
import { type ActorSystem, realClock } from '../../runtime/index.js';
import { type CheckResult, type ReadinessCheck, systemChecks } from './checks.js';

/**
 * Serves `/metrics`: the Prometheus exporter's `getMetricsRequestHandler` has this shape, and so
 * does {@link Telemetry.metricsHandler} of `startTelemetry`.
 */
export type MetricsHandler = (request: IncomingMessage, response: ServerResponse) => void;

/** Options of {@link startOpsServer}. */
export interface OpsServerOptions {
  /** The port to listen on; 0 picks a free one (see {@link OpsServer.port}). Defaults to 9464. */
  readonly port?: number;
  /** The interface to listen on. Defaults to every interface (`::`/`0.0.0.0`), for probes from outside. */
  readonly host?: string;
  /**
   * The system whose health is served: `/healthz` fails once it stopped, and `/readyz` runs its
   * own checks (see `systemChecks`: running, transport connected, cluster joined) before `checks`.
   */
  readonly system?: ActorSystem;
  /** More readiness checks, e.g. `journalCheck(journal)`. None by default. */
  readonly checks?: readonly ReadinessCheck[];
  /** Serves `/metrics` (e.g. `telemetry.metricsHandler`). Without it `/metrics` is a 404. */
  readonly metrics?: MetricsHandler | undefined;
  /**
   * Serves more paths (the dashboard: `dashboardRoutes`): called for any path the server does not
   * serve itself, it returns true when it answered. None by default (404).
   */
  readonly routes?: (request: IncomingMessage, response: ServerResponse) => boolean;
  /** How long one readiness check may take before it counts as not ready. Defaults to 2000 ms. */
  readonly checkTimeoutMs?: number;
}

/** The defaults of {@link OpsServerOptions}. */
export const opsServerDefaults = { port: 9464, checkTimeoutMs: 2000 } as const;

/** A running ops HTTP server. */
export interface OpsServer {
  /** The port it listens on (the one picked, for `port: 0`). */
  readonly port: number;
  /** `http://<host>:<port>`, with 127.0.0.1 for an any-interface server. */
  readonly url: string;
  /** Runs the readiness checks, as `/readyz` does. */
  ready(): Promise<Readiness>;
  /** Stops listening and ends open connections. Idempotent. */
  close(): Promise<void>;
  /** Resolves once closed. */
  closed(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** `/readyz`'s answer: ready when every check is. */
export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, CheckResult>>;
}

/**
 * Starts the ops HTTP server of a node: `GET /healthz` (alive: 200 while the system has not stopped,
 * else 503), `GET /readyz` (200 when every readiness check passes, else 503; the JSON body says which
 * failed and why) and `GET /metrics` (the `metrics` handler). Anything else is a 404.
 *
 * @throws TroupeError `ERR_OPS_LISTEN` when the port cannot be listened on (in use, not allowed);
 * `ERR_INVALID_OPTION` for a bad option.
 * @example
 * ```ts
 * const ops = await startOpsServer({ port: 9464, system, checks: [journalCheck(journal)] });
 * // curl localhost:9464/readyz → {"ready":true,"checks":{"system":{"ok":true},...}}
 * await ops.close();
 * ```
 */
export async function startOpsServer(options: OpsServerOptions = {}): Promise<OpsServer> {
  const port = options.port ?? opsServerDefaults.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw invalidOption('port', 'must be an integer from 0 to 65535', port);
  }
  const checkTimeoutMs = options.checkTimeoutMs ?? opsServerDefaults.checkTimeoutMs;
  if (!(checkTimeoutMs > 0)) throw invalidOption('checkTimeoutMs', 'must be a number > 0', checkTimeoutMs);
  if (options.metrics !== undefined && typeof options.metrics !== 'function') {
    throw invalidOption('metrics', 'must be a request handler function', options.metrics);
  }
  const checks = [
    ...(options.system === undefined ? [] : systemChecks(options.system)),
    ...(options.checks ?? []),
  ];
  for (const check of checks) {
    if (typeof check?.name !== 'string' || typeof check.check !== 'function') {
      throw invalidOption('checks', 'each check needs a `name` and a `check` function', check);
    }
  }
  const system = options.system;

  const ready = async (): Promise<Readiness> => {
    const results = await Promise.all(checks.map((check) => runCheck(check, checkTimeoutMs)));
    const byName: Record<string, CheckResult> = {};
    checks.forEach((check, i) => {
      byName[check.name] = results[i]!;
    });
    return { ready: results.every((r) => r.ok), checks: byName };
  };

  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      send(response, 405, { error: 'method not allowed' });
      return;
    }
    if (path === '/healthz') {
      const status = system?.status.tag ?? 'running';
      const alive = status !== 'stopped' && status !== 'failed';
      send(response, alive ? 200 : 503, { status: alive ? 'ok' : status });
    } else if (path === '/readyz') {
      ready().then(
        (readiness) => send(response, readiness.ready ? 200 : 503, readiness),
        (error: unknown) => send(response, 500, { ready: false, error: String(error) }),
      );
    } else if (path === '/metrics' && options.metrics !== undefined) {
      try {
        options.metrics(request, response);
      } catch (error) {
        if (!response.headersSent) send(response, 500, { error: String(error) });
      }
    } else if (options.routes === undefined || !options.routes(request, response)) {
      send(response, 404, { error: 'not found' });
    }
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (cause: Error & { code?: string }) => {
      reject(
        new TroupeError(
          'ERR_OPS_LISTEN',
          `the ops server could not listen on ${options.host ?? '*'}:${port}: ${cause.code ?? cause.message}`,
          { cause, details: { port, host: options.host, reason: cause.code } },
        ),
      );
    };
    server.once('error', onError);
    server.listen({ port, ...(options.host === undefined ? {} : { host: options.host }) }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return new OpsServerImpl(server, options.host, ready);
}

/** Runs one check within the time limit; anything but a pass is a failure with a reason. */
async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  const controller = new AbortController();
  let timer: { cancel(): void } | undefined;
  // Probes are answered in real time, whatever clock the system runs on.
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = realClock.setTimeout(() => {
      controller.abort(new Error(`timed out after ${timeoutMs} ms`));
      resolve({ ok: false, detail: `timed out after ${timeoutMs} ms` });
    }, timeoutMs);
  });
  const run = (async (): Promise<CheckResult> => {
    try {
      const result = await check.check(controller.signal);
      if (typeof result === 'boolean') return { ok: result };
      if (typeof result === 'object' && result !== null && typeof result.ok === 'boolean') return result;
      return { ok: false, detail: 'the check returned neither a boolean nor { ok }' };
    } catch (error) {
      return { ok: false, detail: error instanceof Error ? error.message : String(error) };
    }
  })();
  try {
    return await Promise.race([run, timeout]);
  } finally {
    timer?.cancel();
  }
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  response.end(text);
}

class OpsServerImpl implements OpsServer {
  readonly port: number;
  readonly url: string;
  private closing: Promise<void> | undefined;
  private resolveClosed!: () => void;
  private readonly closedPromise = new Promise<void>((resolve) => {
    this.resolveClosed = resolve;
  });

  constructor(
    private readonly server: Server,
    host: string | undefined,
    readonly ready: () => Promise<Readiness>,
  ) {
    this.port = (server.address() as AddressInfo).port;
    const shown = host === undefined || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    this.url = `http://${shown.includes(':') ? `[${shown}]` : shown}:${this.port}`;
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    }).then(() => this.resolveClosed());
    return this.closing;
  }

  closed(): Promise<void> {
    return this.closedPromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
