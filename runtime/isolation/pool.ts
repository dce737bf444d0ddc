/**
 * A pool of hosts that shares many isolated actors across the cores: one actor per key, placed on a
 * host by a hash of the key, spawned there on its first message. Each host is a supervised proxy in
 * the parent's tree; a host that dies is restarted with its actors (fresh, spawned again on their
 * next message), and the messages sent while it restarts wait for it.
 */
import {
  type AnyProtocol,
  formatAddress,
  invalidOption,
  type MessageSpec,
  TroupeError,
} from '../../protocols/index.js';
import type {
  ActorContext,
  ActorRef,
  ActorSystem,
  AskOptions,
  Behavior,
  TellOptions,
} from '../kernel/api.js';
import { behavior, supervisingBehavior } from '../kernel/behavior.js';
import { cellOf } from '../kernel/cell.js';
import { crashActor } from '../kernel/hooks.js';
import type { ActorSystemImpl } from '../kernel/system.js';
import {
  checkCloneable,
  hostNode,
  type IsolatedSpec,
  type IsolationOptions,
  linkSettings,
  type Resolved,
  resolveSpec,
} from './isolated.js';
import { HostLink } from './link.js';

/** Options of {@link isolationPool}. */
export interface IsolationPoolOptions extends IsolationOptions {
  /** The pool's name: a top-level actor of the system, with one child per host. */
  readonly name: string;
  /** How many hosts. Defaults to 2. */
  readonly hosts?: number;
  /** Messages held per host while it (re)starts; past it they fail (`ERR_MAILBOX_FULL`). Defaults to 10,000. */
  readonly maxWaiting?: number;
}

/** A pool of hosts with one isolated actor per key. */
export interface IsolationPool<P extends AnyProtocol> {
  /** The pool's actor in the system's tree. */
  readonly ref: ActorRef<any>;
  /** How many hosts. */
  readonly hosts: number;
  /** The actor for `key`, spawned in its host on its first message. Refs are cached per key. */
  actor(key: string): ActorRef<P>;
  /** The index of the host `key` goes to. */
  hostOf(key: string): number;
  /** Stops the pool, its hosts and their actors. */
  close(): Promise<void>;
}

/** A host of the pool, as the refs see it. */
interface Slot {
  link: HostLink | undefined;
  /** Keys spawned on the current link. */
  spawned: Set<string>;
  /** Sends waiting for the host to (re)start. */
  waiting: ((link: HostLink | undefined, error?: TroupeError) => void)[];
}

/** FNV-1a: a stable, cheap hash of the key, the same in every run. */
function hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A key as an actor name: no `/`, and not starting with the reserved `$` or `@`. */
function nameOf(key: string): string {
  const encoded = encodeURIComponent(key);
  return /^[$@]/.test(encoded)
    ? `%${encoded.charCodeAt(0).toString(16).toUpperCase()}${encoded.slice(1)}`
    : encoded;
}

/**
 * Starts a pool of `hosts` hosts (worker threads by default) for the behaviour of `spec`, as the
 * top-level actor `name` of `system`, and resolves once every host has loaded the module; a bad
 * module or export rejects with its code. `pool.actor(key)` is the actor for a key: the same key
 * always goes to the same host, and keys spread over the hosts, so CPU-bound actors use the cores.
 *
 * @throws TroupeError (rejects) `ERR_MODULE_NOT_FOUND`, `ERR_EXPORT_NOT_FOUND`, `ERR_NOT_A_BEHAVIOR`,
 * `ERR_HOST_CRASHED`, `ERR_INVALID_OPTION`.
 * @example
 * ```ts
 * const pool = await isolationPool(system, { protocols: [Scorer], module: new URL('./scorer.ts', import.meta.url), export: 'scorer' }, { name: 'scorers', hosts: 2 });
 * const score = await pool.actor('doc-17').ask('score', { text });
 * ```
 */
export async function isolationPool<const P extends AnyProtocol>(
  system: ActorSystem,
  spec: IsolatedSpec<P>,
  options: IsolationPoolOptions,
): Promise<IsolationPool<P>> {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('pool', 'must be an object', options);
  const { name, hosts: size = 2, maxWaiting = 10_000, ...isolation } = options;
  if (!(Number.isInteger(size) && size >= 1)) throw invalidOption('hosts', 'must be an integer >= 1', size);
  if (!(Number.isInteger(maxWaiting) && maxWaiting >= 0)) {
    throw invalidOption('maxWaiting', 'must be an integer >= 0', maxWaiting);
  }
  const resolved = resolveSpec(spec, isolation);
  const impl = system as unknown as ActorSystemImpl;
  const slots: Slot[] = Array.from({ length: size }, () => ({
    link: undefined,
    spawned: new Set(),
    waiting: [],
  }));
  let started = 0;
  let settle: { resolve: () => void; reject: (error: unknown) => void } | undefined;
  const allStarted = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });

  const hostBehavior = (index: number) => {
    const slot = slots[index]!;
    const start = async (ctx: ActorContext<any, any>) => {
      const link = new HostLink(
        impl,
        hostNode(system, ctx.self.address),
        linkSettings(resolved.options),
        {
          kind: resolved.options.host,
          memoryLimitMb: resolved.options.memoryLimitMb,
          permissions: resolved.options.permissions,
          modules: [resolved.module],
        },
        resolved.options.standby,
      );
      try {
        await link.ready();
        await link.load(resolved.module, resolved.exportName);
        link.watch();
      } catch (error) {
        await link.close(0);
        settle?.reject(error);
        throw error;
      }
      slot.link = link;
      slot.spawned = new Set();
      cellOf(ctx).setTreeExtension(() => link.children);
      const self = ctx.self;
      link.onDeath((error) => {
        if (slot.link === link) slot.link = undefined;
        crashActor(self, error);
      });
      for (const send of slot.waiting.splice(0)) send(link);
      if (++started === size) settle?.resolve();
    };
    const stop = async () => {
      const link = slot.link;
      slot.link = undefined;
      await link?.close(resolved.options.stopTimeoutMs);
    };
    return behavior({ protocols: [], handlers: {}, preStart: start, preRestart: stop, postStop: stop });
  };

  const poolBehavior = supervisingBehavior(
    {
      protocols: [],
      handlers: {},
      preStart: (ctx) => {
        for (let i = 0; i < size; i++)
          ctx.spawn(hostBehavior(i), { name: `host-${i}`, restart: 'permanent' });
      },
      postStop: () => {
        const error = new TroupeError('ERR_ACTOR_STOPPED', `pool ${name} stopped`, {
          details: { pool: name },
        });
        for (const slot of slots) for (const send of slot.waiting.splice(0)) send(undefined, error);
      },
    },
    { strategy: 'one_for_one' },
    false,
  );
  const ref: ActorRef<any> = system.spawn(poolBehavior as Behavior<any, undefined>, { name });
  try {
    await allStarted;
  } catch (error) {
    await system.stop(ref);
    throw error;
  }
  settle = undefined;

  const hostOf = (key: string) => hash(key) % size;
  const refs = new Map<string, PoolActorRef>();
  const poolAddress = formatAddress({ system: system.name, node: system.node, path: name });
  return {
    ref,
    hosts: size,
    hostOf,
    actor(key: string): ActorRef<P> {
      if (typeof key !== 'string' || key === '')
        throw invalidOption('key', 'must be a non-empty string', key);
      let actor = refs.get(key);
      if (actor === undefined) {
        const index = hostOf(key);
        const node = hostNode(system, `${poolAddress}/host-${index}`);
        actor = new PoolActorRef(
          formatAddress({ system: system.name, node, path: nameOf(key) }),
          nameOf(key),
          slots[index]!,
          resolved,
          impl,
          maxWaiting,
        );
        if (refs.size < 100_000) refs.set(key, actor);
      }
      return actor as unknown as ActorRef<P>;
    },
    close: () => system.stop(ref),
  };
}

/** The ref of a keyed actor of a pool: it reaches the actor through its host's current link. */
class PoolActorRef implements ActorRef<any> {
  /** Per link, the refs per protocol of this actor. */
  private targets: { link: HostLink; byMessage: Map<string, ActorRef<any>> } | undefined;
  private readonly specs = new Map<string, { protocol: AnyProtocol; spec: MessageSpec }>();

  constructor(
    readonly address: string,
    private readonly name: string,
    private readonly slot: Slot,
    private readonly resolved: Resolved<any>,
    private readonly system: ActorSystemImpl,
    private readonly maxWaiting: number,
  ) {
    for (const { name: message, protocol, spec } of resolved.messages)
      this.specs.set(message, { protocol, spec });
  }

  /** The ref to send `type` through on `link`, spawning the actor there first if it is new. */
  private target(link: HostLink, type: string): ActorRef<any> {
    if (this.targets?.link !== link) this.targets = { link, byMessage: new Map() };
    let target = this.targets.byMessage.get(type);
    if (target === undefined) {
      const protocol = this.specs.get(type)?.protocol;
      target = link.refFor(this.address, protocol);
      this.targets.byMessage.set(type, target);
    }
    if (!this.slot.spawned.has(this.name)) {
      this.slot.spawned.add(this.name);
      link
        .spawn(this.resolved.module, this.resolved.exportName, this.name, this.resolved.spec.spawn, true)
        .catch((error: unknown) => this.system.reportDefect(this.address, error));
    }
    return target;
  }

  /** Runs `send` on the host's link now, or once the host has (re)started. */
  private via(send: (link: HostLink | undefined, error?: TroupeError) => void, type: string): void {
    const link = this.slot.link;
    if (link !== undefined) {
      send(link);
      return;
    }
    if (this.slot.waiting.length >= this.maxWaiting) {
      send(
        undefined,
        new TroupeError(
          'ERR_MAILBOX_FULL',
          `${this.maxWaiting} messages already wait for the host of ${this.address}`,
          {
            details: { to: this.address, type },
          },
        ),
      );
      return;
    }
    this.slot.waiting.push(send);
  }

  tell(type: string, body: unknown, options?: TellOptions): void {
    checkCloneable(body, type, this.address);
    this.via((link, error) => {
      if (link === undefined) {
        this.system.deadLetter(this.address, options?.from?.address, type, body, 'actor-stopped', error);
        return;
      }
      this.target(link, type).tell(type, body, options);
    }, type);
  }

  ask(type: string, body: unknown, options?: AskOptions): Promise<any> {
    try {
      checkCloneable(body, type, this.address);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.via((link, error) => {
        if (link === undefined) reject(error);
        else this.target(link, type).ask(type, body, options).then(resolve, reject);
      }, type);
    });
  }
}
