/**
 * Isolated actors: an actor (and the subtree it spawns) that runs in a worker thread or a child
 * process, under the supervision of the parent system. The parent holds a proxy actor with the
 * isolated actor's protocols: its ref is a local ref, it sits in the parent's tree (the host's
 * actors under it), and a crash of the host is a crash of the proxy, which its supervisor restarts
 * (with a fresh host) under its policy.
 */
import { pathToFileURL } from 'node:url';
import {
  type AnyProtocol,
  assertPlainData,
  formatAddress,
  invalidOption,
  type MessageSpec,
  parseAddress,
  TroupeError,
} from '../../protocols/index.js';
import type { ActorContext, ActorRef, ActorSystem, Behavior, SpawnOptions } from '../kernel/api.js';
import { behavior, withSendCheck } from '../kernel/behavior.js';
import { cellOf } from '../kernel/cell.js';
import { crashActor, detachReply } from '../kernel/hooks.js';
import type { ActorSystemImpl } from '../kernel/system.js';
import type { ProcessPermissions } from './launcher.js';
import { HostLink, type LinkSettings } from './link.js';

/** What to run in the host: a behaviour named by its module and export, and its protocols. */
export interface IsolatedSpec<P extends AnyProtocol> {
  /** The protocols the behaviour speaks (the parent needs them for types and wire names). */
  readonly protocols: readonly P[];
  /**
   * The module that exports the behaviour: a `file:` URL (`new URL('./calc.ts', import.meta.url)`)
   * or an absolute path. The host imports it; it must not depend on state of the parent.
   */
  readonly module: string | URL;
  /** The export that holds the behaviour (made with `behavior()`). Defaults to `default`. */
  readonly export?: string;
  /** Spawn options of the actor inside its host (mailbox, supervision of its children, validation). */
  readonly spawn?: Pick<SpawnOptions, 'mailbox' | 'supervision' | 'validate'>;
}

/** How isolated actors are hosted. */
export interface IsolationOptions {
  /** A worker thread (`worker`, the default) or a child process (`process`). */
  readonly host?: 'worker' | 'process';
  /**
   * How long a handler may block its host's thread before the host is terminated (a crash,
   * `ERR_CPU_BUDGET`). Defaults to 1000.
   */
  readonly cpuBudgetMs?: number;
  /** The host's heap limit (`ERR_MEMORY_LIMIT` past it). Defaults to Node's own limit. */
  readonly memoryLimitMb?: number;
  /**
   * Process hosts only: run under Node's permission model with these grants (file system reads
   * and writes, child processes, workers). Undefined (the default): no restrictions.
   */
  readonly permissions?: ProcessPermissions;
  /**
   * Keep one spare host started ahead (runtime and modules loaded), so a restart takes it instead
   * of waiting for a host to start. Defaults to true.
   */
  readonly standby?: boolean;
  /** How long a host may take to start. Defaults to 30000 (TypeScript sources load slowly). */
  readonly startTimeoutMs?: number;
  /** How long a stopping host may drain before it is terminated. Defaults to 1000. */
  readonly stopTimeoutMs?: number;
}

/** The resolved {@link IsolationOptions}. */
export interface ResolvedIsolationOptions {
  readonly host: 'worker' | 'process';
  readonly cpuBudgetMs: number;
  readonly memoryLimitMb: number | undefined;
  readonly permissions: ProcessPermissions | undefined;
  readonly standby: boolean;
  readonly startTimeoutMs: number;
  readonly stopTimeoutMs: number;
}

/** The defaults of {@link IsolationOptions}. */
export const isolatedDefaults: ResolvedIsolationOptions = {
  host: 'worker',
  cpuBudgetMs: 1000,
  memoryLimitMb: undefined,
  permissions: undefined,
  standby: true,
  startTimeoutMs: 30_000,
  stopTimeoutMs: 1000,
};

/** @throws TroupeError `ERR_INVALID_OPTION` naming the first bad option. */
export function resolveIsolationOptions(options: IsolationOptions | undefined): ResolvedIsolationOptions {
  if (options === undefined) return isolatedDefaults;
  if (typeof options !== 'object' || options === null)
    throw invalidOption('isolation', 'must be an object', options);
  const o = { ...isolatedDefaults, ...stripUndefined(options) };
  if (o.host !== 'worker' && o.host !== 'process')
    throw invalidOption('host', "must be 'worker' or 'process'", o.host);
  for (const name of ['cpuBudgetMs', 'startTimeoutMs', 'stopTimeoutMs'] as const) {
    if (!(typeof o[name] === 'number' && o[name] > 0))
      throw invalidOption(name, 'must be a number > 0', o[name]);
  }
  if (o.memoryLimitMb !== undefined && !(Number.isInteger(o.memoryLimitMb) && o.memoryLimitMb >= 8)) {
    throw invalidOption('memoryLimitMb', 'must be an integer >= 8', o.memoryLimitMb);
  }
  if (o.permissions !== undefined && o.host !== 'process') {
    throw invalidOption(
      'permissions',
      "the permission model applies to process hosts (host: 'process')",
      o.permissions,
    );
  }
  if (typeof o.standby !== 'boolean') throw invalidOption('standby', 'must be a boolean', o.standby);
  return o;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The module as the host imports it: a `file:` URL string. */
function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (typeof module !== 'string' || module === '')
    throw invalidOption('module', 'must be a file URL or an absolute path', module);
  if (module.startsWith('file:')) return module;
  if (module.startsWith('/')) return pathToFileURL(module).href;
  throw invalidOption(
    'module',
    'must be a file URL or an absolute path (the host resolves nothing relative)',
    module,
  );
}

/**
 * The node id of the host behind the proxy at `address`: the parent's node and the proxy's path
 * (`local.calc`, `local.pool.host-0`), so a restarted host keeps its addresses.
 */
export function hostNode(system: ActorSystem, address: string): string {
  const path = parseAddress(address)
    .path.split('/')
    .map((segment) => segment.replace(/[^A-Za-z0-9_-]/g, '_'))
    .join('.');
  return `${system.node}.${path}`;
}

/** A proxy's state: its host link, and a ref per message to the actor in the host. */
interface ProxyState {
  link: HostLink | undefined;
  targets: Record<string, ActorRef<any>>;
}

/** The spec resolved once: module URL, export, messages. */
export interface Resolved<P extends AnyProtocol> {
  readonly spec: IsolatedSpec<P>;
  readonly module: string;
  readonly exportName: string;
  readonly options: ResolvedIsolationOptions;
  readonly messages: readonly { name: string; protocol: AnyProtocol; spec: MessageSpec }[];
}

export function resolveSpec<P extends AnyProtocol>(
  spec: IsolatedSpec<P>,
  options: IsolationOptions | undefined,
): Resolved<P> {
  if (typeof spec !== 'object' || spec === null) throw invalidOption('isolated', 'must be an object', spec);
  if (!Array.isArray(spec.protocols) || spec.protocols.length === 0) {
    throw invalidOption('protocols', 'must list the protocols the behaviour speaks', spec.protocols);
  }
  const exportName = spec.export ?? 'default';
  if (typeof exportName !== 'string' || exportName === '')
    throw invalidOption('export', 'must be a name', exportName);
  const messages: { name: string; protocol: AnyProtocol; spec: MessageSpec }[] = [];
  for (const protocol of spec.protocols) {
    for (const [name, message] of Object.entries(protocol.messages)) {
      messages.push({ name, protocol, spec: message as MessageSpec });
    }
  }
  return {
    spec,
    module: moduleUrl(spec.module),
    exportName,
    options: resolveIsolationOptions(options),
    messages,
  };
}

export function linkSettings(options: ResolvedIsolationOptions): LinkSettings {
  return {
    cpuBudgetMs: options.cpuBudgetMs,
    memoryLimitMb: options.memoryLimitMb,
    startTimeoutMs: options.startTimeoutMs,
  };
}

/** Starts a host for the proxy at `address` and spawns the actor `name` in it. */
async function startHost(
  system: ActorSystemImpl,
  resolved: Resolved<any>,
  address: string,
  name: string,
): Promise<{ link: HostLink; targets: Record<string, ActorRef<any>> }> {
  const { options } = resolved;
  const link = new HostLink(
    system,
    hostNode(system, address),
    linkSettings(options),
    {
      kind: options.host,
      memoryLimitMb: options.memoryLimitMb,
      permissions: options.permissions,
      modules: [resolved.module],
    },
    options.standby,
  );
  try {
    await link.ready();
    const hosted = await link.spawn(resolved.module, resolved.exportName, name, resolved.spec.spawn, false);
    link.watch();
    return { link, targets: targetsFor(link, hosted, resolved) };
  } catch (error) {
    await link.close(0);
    throw error;
  }
}

function targetsFor(link: HostLink, address: string, resolved: Resolved<any>): Record<string, ActorRef<any>> {
  const byProtocol = new Map<AnyProtocol, ActorRef<any>>();
  const targets: Record<string, ActorRef<any>> = Object.create(null);
  for (const { name, protocol } of resolved.messages) {
    let ref = byProtocol.get(protocol);
    if (ref === undefined) {
      ref = link.refFor(address, protocol);
      byProtocol.set(protocol, ref);
    }
    targets[name] = ref;
  }
  return targets;
}

/**
 * The fast form of `assertPlainData`, on every message to a host: no allocation, cycles caught by
 * depth. False sends the body through `assertPlainData` for the error that names the bad value.
 */
function isPlain(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (depth > 64) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!isPlain(value[i], depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        if (!isPlain((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** The proxy's send check: a body that cannot cross to the host is refused at `tell` and `ask`. */
const checkSend = (type: string, body: unknown, to: ActorRef<any>): void =>
  checkCloneable(body, type, to.address);

/** Checks that a body can cross to a host. @throws TroupeError `ERR_NOT_CLONEABLE`. */
export function checkCloneable(body: unknown, type: string, to: string): void {
  if (isPlain(body, 0)) return;
  try {
    assertPlainData(body);
  } catch (cause) {
    throw new TroupeError(
      'ERR_NOT_CLONEABLE',
      `"${type}" to ${to} cannot cross to its host: ${(cause as Error).message}`,
      {
        cause,
        details: { to, type, ...((cause as TroupeError).details ?? {}) },
      },
    );
  }
}

/**
 * The proxy behaviour: forwards each message to the actor in the host, and the replies back. What
 * cannot cross to the host is refused at the send (its send check), so the handlers only forward.
 */
function proxyBehavior<P extends AnyProtocol>(
  resolved: Resolved<P>,
  adopt: () => { link: HostLink; targets: Record<string, ActorRef<any>> } | undefined,
): Behavior<P, ProxyState> {
  const handlers: Record<string, (body: unknown, ctx: ActorContext<ProxyState, P>) => void> = {};
  for (const { name, spec } of resolved.messages) {
    handlers[name] =
      spec.kind === 'tell'
        ? (body, ctx) => {
            const target = ctx.state.targets[name]!;
            const sender = ctx.sender;
            try {
              if (sender === undefined) target.tell(name, body);
              else target.tell(name, body, { from: sender });
            } catch (error) {
              // The router refused it (too large for the wire): a dead letter, not a crash of the proxy.
              const system = ctx.system as unknown as ActorSystemImpl;
              const refused = TroupeError.is(error)
                ? error
                : new TroupeError('ERR_NOT_DELIVERED', `"${name}" could not go to its host`, {
                    cause: error,
                  });
              system.deadLetter(ctx.self.address, sender?.address, name, body, 'malformed', refused);
            }
          }
        : (body, ctx) => {
            const reply = detachReply(ctx);
            const target = ctx.state.targets[name]!;
            const timeoutMs = Math.max(1, reply.deadline - ctx.system.clock.now());
            target.ask(name, body, { timeoutMs }).then(reply.resolve, reply.reject);
          };
  }
  const start = async (ctx: ActorContext<ProxyState, P>) => {
    const system = ctx.system as unknown as ActorSystemImpl;
    const started =
      adopt() ??
      (await startHost(
        system,
        resolved,
        ctx.self.address,
        parseAddress(ctx.self.address).path.split('/').pop()!,
      ));
    ctx.state.link = started.link;
    ctx.state.targets = started.targets;
    const self = ctx.self;
    cellOf(ctx).setTreeExtension(() => started.link.children);
    started.link.onDeath((error) => crashActor(self, error));
  };
  const stop = async (ctx: ActorContext<ProxyState, P>) => {
    const link = ctx.state.link;
    ctx.state.link = undefined;
    await link?.close(resolved.options.stopTimeoutMs);
  };
  return withSendCheck(
    behavior<P, ProxyState>({
      protocols: resolved.spec.protocols,
      initialState: () => ({ link: undefined, targets: Object.create(null) }),
      handlers: handlers as never,
      preStart: start,
      postStop: stop,
      preRestart: stop,
    }),
    checkSend,
  );
}

/**
 * An isolated actor, as a behaviour to spawn or to put in a child spec: the behaviour exported as
 * `spec.export` of `spec.module` runs in its own worker thread (or child process), and what is
 * spawned here is its proxy. The proxy's ref has the isolated actor's protocols; messages go to
 * the host batched per turn, are checked there as any message from another node, and replies come
 * back. When the host dies (it crashed, blocked past `cpuBudgetMs`, or ran past `memoryLimitMb`)
 * the proxy crashes with `ERR_HOST_CRASHED`, `ERR_CPU_BUDGET` or `ERR_MEMORY_LIMIT`, asks in flight
 * reject with it and tells in flight become dead letters; its supervisor restarts it on a new host.
 *
 * The start happens in the proxy's `preStart`: a module that cannot be loaded, a missing export or
 * an export that is not a behaviour fail the start (`ERR_START_FAILED` with the cause
 * `ERR_MODULE_NOT_FOUND`, `ERR_EXPORT_NOT_FOUND` or `ERR_NOT_A_BEHAVIOR`). {@link startIsolated}
 * reports them directly.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` for a bad spec or option.
 * @example
 * ```ts
 * const calc = system.spawn(
 *   isolated({ protocols: [Calc], module: new URL('./calc.ts', import.meta.url), export: 'calculator' }),
 *   { name: 'calc' },
 * );
 * console.log(await calc.ask('fib', { n: 30 }));
 * ```
 */
export function isolated<const P extends AnyProtocol>(
  spec: IsolatedSpec<P>,
  options?: IsolationOptions,
): Behavior<P, unknown> {
  return proxyBehavior(resolveSpec(spec, options), () => undefined) as Behavior<P, unknown>;
}

/**
 * Starts an isolated actor as a top-level actor of `system` (see {@link isolated}) and resolves
 * once it runs in its host; a bad module or export rejects here with its own code.
 *
 * @throws TroupeError (rejects) `ERR_MODULE_NOT_FOUND`, `ERR_EXPORT_NOT_FOUND`, `ERR_NOT_A_BEHAVIOR`,
 * `ERR_HOST_CRASHED` (the host did not start), `ERR_INVALID_OPTION`.
 */
export async function startIsolated<const P extends AnyProtocol>(
  system: ActorSystem,
  spec: IsolatedSpec<P>,
  options?: IsolationOptions & { readonly name?: string; readonly restart?: SpawnOptions['restart'] },
): Promise<ActorRef<P>> {
  const resolved = resolveSpec(spec, options);
  const name = options?.name ?? `isolated-${++anonymous}`;
  const address = formatAddress({ system: system.name, node: system.node, path: name });
  let started: { link: HostLink; targets: Record<string, ActorRef<any>> } | undefined = await startHost(
    system as unknown as ActorSystemImpl,
    resolved,
    address,
    name,
  );
  const behavior = proxyBehavior(resolved, () => {
    const first = started;
    started = undefined;
    return first;
  });
  try {
    return system.spawn(behavior, {
      name,
      ...(options?.restart === undefined ? {} : { restart: options.restart }),
    }) as unknown as ActorRef<P>;
  } catch (error) {
    await started?.link.close(0);
    throw error;
  }
}

let anonymous = 0;
