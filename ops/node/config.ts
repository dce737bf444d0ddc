/**
 * The configuration of a node started by `troupe node`: a module whose default export is
 * `defineNodeConfig({...})`, every setting of which an environment variable (`TROUPE_*`) can override,
 * so one image serves every node of a cluster.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import type { Journal } from '../../memory/index.js';
import { TroupeError } from '../../protocols/index.js';
import type { ActorSystem, Behavior, KindOptions } from '../../runtime/index.js';

/** The kinds of named actors a node hosts, as `createNode({ kinds })` takes them. */
export type NodeKinds = Readonly<Record<string, Behavior<any, any> | KindOptions>>;

/** What a config's `kinds` and `setup` functions get: the node's settings and its journal. */
export interface NodeContext {
  readonly cluster: string;
  readonly node: string;
  /** The journal of `journal` (opened by the node, closed after it stops); undefined without one. */
  readonly journal: Journal | undefined;
  /** The process environment, for settings of the application's own. */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/**
 * A node's configuration. Every field may be overridden by the environment variable named in its
 * doc; the environment wins over the module.
 */
export interface NodeConfig {
  /** The cluster's name (`TROUPE_CLUSTER`). Required. */
  readonly cluster?: string;
  /** This node's id (`TROUPE_NODE`). Defaults to the host name (a container's id). */
  readonly node?: string;
  /** The kinds of named actors; a function gets the node's journal. Every node registers the same. */
  readonly kinds?: NodeKinds | ((context: NodeContext) => NodeKinds);
  /** Spawns the node's own top-level actors once it has joined. */
  readonly setup?: (system: ActorSystem, context: NodeContext) => void | Promise<void>;
  readonly nats?: {
    /** Server URLs (`TROUPE_NATS_URL`, comma-separated). Defaults to `nats://127.0.0.1:4222`. */
    readonly servers?: string | readonly string[];
    /** Subject prefix (`TROUPE_NATS_PREFIX`). Defaults to `troupe.<cluster>`. */
    readonly prefix?: string;
    /** Credentials (`TROUPE_NATS_USER`, `TROUPE_NATS_PASS`, `TROUPE_NATS_TOKEN`). */
    readonly user?: string;
    readonly pass?: string;
    readonly token?: string;
  };
  /**
   * Where persistent actors keep their events (`TROUPE_JOURNAL`): `memory`, a Postgres URL
   * (`postgres://...`, TimescaleDB too) or `pglite:<dir>`. None by default.
   */
  readonly journal?: string;
  readonly ops?: {
    /** Port of the ops HTTP server: health, metrics, dashboard (`TROUPE_OPS_PORT`); 0 picks one. Defaults to 9464. */
    readonly port?: number;
    /** Address it listens on (`TROUPE_OPS_HOST`). Defaults to `0.0.0.0`. */
    readonly host?: string;
  };
  readonly telemetry?: {
    /** The service name in metrics and traces (`TROUPE_SERVICE_NAME`). Defaults to `troupe`. */
    readonly serviceName?: string;
    /** Prometheus metrics on the ops server's `/metrics` (`TROUPE_METRICS`, `true`/`false`). Defaults to true. */
    readonly metrics?: boolean;
    /** OTLP/HTTP endpoint for traces (`TROUPE_OTLP_URL`). None by default. */
    readonly otlpUrl?: string;
  };
  /** pino level (`TROUPE_LOG_LEVEL`): `fatal`...`trace` or `silent`. Defaults to `info`. */
  readonly logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Heartbeat period (`TROUPE_HEARTBEAT_MS`). Defaults to 1000. */
  readonly heartbeatMs?: number;
  /** Missed heartbeats before a member is down (`TROUPE_DOWN_AFTER_MISSED`). Defaults to 3. */
  readonly downAfterMissed?: number;
  /** Default ask timeout (`TROUPE_ASK_TIMEOUT_MS`). Defaults to 5000. */
  readonly askTimeoutMs?: number;
  /** How long a drain may take on SIGTERM before the tree stops anyway (`TROUPE_DRAIN_TIMEOUT_MS`). Defaults to 10000. */
  readonly drainTimeoutMs?: number;
  /** Recent events each node keeps for `troupe events` and the dashboard (`TROUPE_EVENTS_KEPT`). Defaults to 1000. */
  readonly eventsKept?: number;
}

/**
 * Declares a node's configuration (the default export of the module given to `troupe node --config`).
 * It returns its argument: its use is the type check.
 *
 * @example
 * ```ts
 * export default defineNodeConfig({
 *   cluster: 'shop',
 *   kinds: ({ journal }) => ({ cart: cartBehavior(journal!) }),
 *   journal: 'postgres://troupe@db/troupe',
 * });
 * ```
 */
export function defineNodeConfig(config: NodeConfig): NodeConfig {
  return config;
}

/** A node's configuration with the environment applied and every default filled in. */
export interface ResolvedNodeConfig {
  readonly cluster: string;
  readonly node: string;
  readonly kinds: NodeConfig['kinds'];
  readonly setup: NodeConfig['setup'];
  readonly nats: {
    readonly servers: readonly string[];
    readonly prefix: string | undefined;
    readonly user: string | undefined;
    readonly pass: string | undefined;
    readonly token: string | undefined;
  };
  readonly journal: string | undefined;
  readonly ops: { readonly port: number; readonly host: string };
  readonly telemetry: {
    readonly serviceName: string;
    readonly metrics: boolean;
    readonly otlpUrl: string | undefined;
  };
  readonly logLevel: NonNullable<NodeConfig['logLevel']>;
  readonly heartbeatMs: number;
  readonly downAfterMissed: number;
  readonly askTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly eventsKept: number;
}

/** The defaults of {@link NodeConfig}. */
export const nodeConfigDefaults = {
  servers: ['nats://127.0.0.1:4222'],
  opsPort: 9464,
  opsHost: '0.0.0.0',
  serviceName: 'troupe',
  metrics: true,
  logLevel: 'info',
  heartbeatMs: 1000,
  downAfterMissed: 3,
  askTimeoutMs: 5000,
  drainTimeoutMs: 10_000,
  eventsKept: 1000,
} as const;

/** Each environment variable and the field (dotted path) it sets. */
export const NODE_ENV_VARIABLES = {
  TROUPE_CLUSTER: 'cluster',
  TROUPE_NODE: 'node',
  TROUPE_NATS_URL: 'nats.servers',
  TROUPE_NATS_PREFIX: 'nats.prefix',
  TROUPE_NATS_USER: 'nats.user',
  TROUPE_NATS_PASS: 'nats.pass',
  TROUPE_NATS_TOKEN: 'nats.token',
  TROUPE_JOURNAL: 'journal',
  TROUPE_OPS_PORT: 'ops.port',
  TROUPE_OPS_HOST: 'ops.host',
  TROUPE_SERVICE_NAME: 'telemetry.serviceName',
  TROUPE_METRICS: 'telemetry.metrics',
  TROUPE_OTLP_URL: 'telemetry.otlpUrl',
  TROUPE_LOG_LEVEL: 'logLevel',
  TROUPE_HEARTBEAT_MS: 'heartbeatMs',
  TROUPE_DOWN_AFTER_MISSED: 'downAfterMissed',
  TROUPE_ASK_TIMEOUT_MS: 'askTimeoutMs',
  TROUPE_DRAIN_TIMEOUT_MS: 'drainTimeoutMs',
  TROUPE_EVENTS_KEPT: 'eventsKept',
} as const;

const segment = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]*$/,
    'letters, digits, "_", "-" or "." (starting with a letter or digit)',
  );
const natsUrl = z.string().regex(/^(nats|tls|ws|wss):\/\/\S+$/, 'a NATS URL such as nats://127.0.0.1:4222');
/** Numbers from the environment arrive as text. */
const integer = (min: number) => z.coerce.number().int().min(min);
const flag = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
]);

const schema = z.strictObject({
  cluster: segment,
  node: segment.refine((n) => !n.startsWith('@'), 'must not start with "@"'),
  kinds: z
    .union([
      z.record(
        z.string(),
        z.custom<Behavior<any, any> | KindOptions>(
          (v) => typeof v === 'object' && v !== null,
          'a behaviour or kind options',
        ),
      ),
      z.function(),
    ])
    .optional(),
  setup: z.function().optional(),
  nats: z.strictObject({
    servers: z
      .union([natsUrl, z.array(natsUrl).min(1)])
      .transform((v) => (typeof v === 'string' ? v.split(',') : v)),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'NATS subject tokens joined by "."')
      .optional(),
    user: z.string().optional(),
    pass: z.string().optional(),
    token: z.string().optional(),
  }),
  journal: z
    .string()
    .regex(/^(memory|postgres(ql)?:\/\/.+|pglite:.+)$/, '`memory`, a postgres:// URL or pglite:<dir>')
    .optional(),
  ops: z.strictObject({ port: integer(0).max(65_535), host: z.string().min(1) }),
  telemetry: z.strictObject({
    serviceName: z.string().min(1),
    metrics: flag,
    otlpUrl: z.url().optional(),
  }),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  heartbeatMs: integer(1),
  downAfterMissed: integer(1),
  askTimeoutMs: integer(1),
  drainTimeoutMs: integer(0),
  eventsKept: integer(0),
});

/**
 * Applies the environment to a config and checks it.
 * @throws TroupeError `ERR_INVALID_CONFIG` naming the first bad field (and the environment variable
 * that set it, if one did); `details.field` is its dotted path.
 */
export function resolveNodeConfig(
  config: unknown,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ResolvedNodeConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new TroupeError(
      'ERR_INVALID_CONFIG',
      'the config module must export (as default) an object made with defineNodeConfig({...})',
      { details: { field: '' } },
    );
  }
  const given = config as NodeConfig;
  const merged: Record<string, unknown> = {
    ...given,
    node: given.node ?? sanitize(hostname()),
    nats: { servers: nodeConfigDefaults.servers, ...given.nats },
    ops: { port: nodeConfigDefaults.opsPort, host: nodeConfigDefaults.opsHost, ...given.ops },
    telemetry: {
      serviceName: nodeConfigDefaults.serviceName,
      metrics: nodeConfigDefaults.metrics,
      ...given.telemetry,
    },
    logLevel: given.logLevel ?? nodeConfigDefaults.logLevel,
    heartbeatMs: given.heartbeatMs ?? nodeConfigDefaults.heartbeatMs,
    downAfterMissed: given.downAfterMissed ?? nodeConfigDefaults.downAfterMissed,
    askTimeoutMs: given.askTimeoutMs ?? nodeConfigDefaults.askTimeoutMs,
    drainTimeoutMs: given.drainTimeoutMs ?? nodeConfigDefaults.drainTimeoutMs,
    eventsKept: given.eventsKept ?? nodeConfigDefaults.eventsKept,
  };
  const fromEnv = new Map<string, string>();
  for (const [variable, field] of Object.entries(NODE_ENV_VARIABLES)) {
    const value = env[variable];
    if (value === undefined || value === '') continue;
    setPath(merged, field, field === 'nats.servers' ? value.split(',').map((v) => v.trim()) : value);
    fromEnv.set(field, variable);
  }
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join('.');
    // An issue inside a field set from the environment (nats.servers.1) names its variable.
    const variable = [...fromEnv].find(([f]) => field === f || field.startsWith(`${f}.`))?.[1];
    const problem =
      issue.code === 'unrecognized_keys'
        ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
        : issue.message;
    const name = issue.code === 'unrecognized_keys' ? (field === '' ? 'config' : field) : field;
    throw new TroupeError(
      'ERR_INVALID_CONFIG',
      `invalid config: ${name}${variable === undefined ? '' : ` (from ${variable})`}: ${problem}`,
      { details: { field: name, ...(variable === undefined ? {} : { variable }) } },
    );
  }
  const value = parsed.data;
  return {
    ...value,
    kinds: value.kinds as NodeConfig['kinds'],
    setup: value.setup as NodeConfig['setup'],
    nats: {
      servers: value.nats.servers,
      prefix: value.nats.prefix,
      user: value.nats.user,
      pass: value.nats.pass,
      token: value.nats.token,
    },
    journal: value.journal,
    telemetry: { ...value.telemetry, otlpUrl: value.telemetry.otlpUrl },
  };
}

/** A host name as a node id: characters addresses do not allow become "-". */
function sanitize(name: string): string {
  const id = name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return id === '' ? 'node' : id;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let at = target;
  for (const key of keys.slice(0, -1)) {
    const next = at[key];
    at[key] = typeof next === 'object' && next !== null ? { ...(next as object) } : {};
    at = at[key] as Record<string, unknown>;
  }
  at[keys.at(-1)!] = value;
}
