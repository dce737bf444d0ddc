import { type DynamicModule, Inject, type InjectionToken, type Provider } from '@nestjs/common';
import { type Address, type AnyProtocol, invalidOption } from '../../protocols/index.js';
import {
  type ActorRef,
  type ActorSystem,
  createNode,
  createSystem,
  type SystemOptions,
} from '../../runtime/index.js';

/** The injection token of the actor system (or node) that {@link TroupeModule} provides. */
export const TROUPE_SYSTEM: unique symbol = Symbol.for('troupe.nestjs.system');

/** What {@link TroupeModule.forRoot} takes. */
export interface TroupeModuleOptions {
  /**
   * The system to provide: one made already (`createSystem`, `createNode`), or the options of one
   * that the module makes (with a `transport`, a node of a cluster: `createNode`).
   */
  readonly system: ActorSystem | SystemOptions;
  /**
   * Drain the system when the Nest application shuts down (`app.close()`, or a signal with
   * `enableShutdownHooks()`). Defaults to true; a system made by the module is always drained.
   */
  readonly drainOnShutdown?: boolean;
  /** How long the drain may let mailboxes empty. Defaults to the system's own default (5000). */
  readonly drainTimeoutMs?: number;
}

/** What {@link TroupeModule.forRootAsync} takes: a Nest factory provider of the options. */
export interface TroupeModuleAsyncOptions {
  /** Modules whose providers the factory injects. */
  readonly imports?: NonNullable<DynamicModule['imports']>;
  /** The providers passed to `useFactory`, in order. */
  readonly inject?: InjectionToken[];
  readonly useFactory: (...args: any[]) => TroupeModuleOptions | Promise<TroupeModuleOptions>;
}

/** The defaults of {@link TroupeModuleOptions}. */
export const troupeModuleDefaults = { drainOnShutdown: true } as const;

const OPTIONS = Symbol.for('troupe.nestjs.options');
const LIFECYCLE = Symbol.for('troupe.nestjs.lifecycle');

/**
 * The injection token of the ref to `address` typed by `protocol`, as {@link InjectRef} injects it
 * (for `moduleRef.get(refToken(...))` or a hand-written `@Inject`).
 */
export function refToken(address: Address, protocol: AnyProtocol): string {
  return `troupe.nestjs.ref:${protocol.name}@${address}`;
}

/**
 * The refs that `@InjectRef` asked for, and the provider lists of every module made by `forRoot`:
 * a decorator may run after `forRoot` (a class defined later than the root module's metadata), and
 * Nest reads a dynamic module's lists only when it scans the application, so each new ref is added
 * to the lists of the modules already made.
 */
const wanted = new Map<string, { address: Address; protocol: AnyProtocol }>();
const openModules: { providers: Provider[]; exports: (string | symbol)[] }[] = [];

function refProvider(token: string, address: Address, protocol: AnyProtocol): Provider {
  return {
    provide: token,
    useFactory: (system: ActorSystem): ActorRef<any> => system.ref(address, protocol),
    inject: [TROUPE_SYSTEM],
  };
}

/**
 * Injects the ref to the actor at `address`, typed by `protocol` (a constructor parameter or a
 * property of a Nest provider). The ref comes from the system that {@link TroupeModule} provides;
 * the address may name an actor on another node of the cluster.
 * @example
 * ```ts
 * @Injectable()
 * class Greeter {
 *   constructor(@InjectRef('troupe://app/n1/greeter', Greeting) private readonly greeter: ActorRef<typeof Greeting>) {}
 * }
 * ```
 */
export function InjectRef(address: Address, protocol: AnyProtocol): PropertyDecorator & ParameterDecorator {
  if (typeof address !== 'string') throw invalidOption('address', 'a Troupe address string', address);
  if (typeof protocol !== 'object' || protocol === null || typeof protocol.name !== 'string') {
    throw invalidOption('protocol', 'a protocol made by defineProtocol', protocol);
  }
  const token = refToken(address, protocol);
  if (!wanted.has(token)) {
    wanted.set(token, { address, protocol });
    for (const module of openModules) {
      module.providers.push(refProvider(token, address, protocol));
      module.exports.push(token);
    }
  }
  return Inject(token);
}

function isSystem(value: unknown): value is ActorSystem {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ActorSystem).spawn === 'function' &&
    typeof (value as ActorSystem).drain === 'function'
  );
}

function checkOptions(options: unknown): TroupeModuleOptions {
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', 'TroupeModule options must be an object', options);
  }
  const { system, drainOnShutdown, drainTimeoutMs } = options as TroupeModuleOptions;
  if (typeof system !== 'object' || system === null) {
    throw invalidOption('system', 'an actor system, or the options of one', system);
  }
  if (drainOnShutdown !== undefined && typeof drainOnShutdown !== 'boolean') {
    throw invalidOption('drainOnShutdown', 'true or false', drainOnShutdown);
  }
  if (
    drainTimeoutMs !== undefined &&
    (typeof drainTimeoutMs !== 'number' || !Number.isFinite(drainTimeoutMs) || drainTimeoutMs < 0)
  ) {
    throw invalidOption('drainTimeoutMs', 'a number of milliseconds, 0 or more', drainTimeoutMs);
  }
  return options as TroupeModuleOptions;
}

interface Resolved {
  readonly system: ActorSystem;
  readonly drain: boolean;
  readonly drainTimeoutMs: number | undefined;
}

async function resolve(options: TroupeModuleOptions): Promise<Resolved> {
  checkOptions(options);
  const given = options.system;
  if (isSystem(given)) {
    return {
      system: given,
      drain: options.drainOnShutdown ?? troupeModuleDefaults.drainOnShutdown,
      drainTimeoutMs: options.drainTimeoutMs,
    };
  }
  const system = given.transport === undefined ? createSystem(given) : await createNode(given);
  return { system, drain: true, drainTimeoutMs: options.drainTimeoutMs };
}

/**
 * A Nest module that provides an actor system (or a node of a cluster) to Nest's dependency
 * injection under {@link TROUPE_SYSTEM}, the refs that {@link InjectRef} asks for, and drains the
 * system when the application shuts down. The module is global: import it once, in the root module.
 * Nest is an optional peer dependency: only `troupe/nestjs` needs it.
 * @example
 * ```ts
 * @Module({ imports: [TroupeModule.forRoot({ system: { name: 'app' } })] })
 * class AppModule {}
 * ```
 */
// biome-ignore lint/complexity/noStaticOnlyClass: a Nest module is a class, configured by static forRoot/forRootAsync.
export class TroupeModule {
  /**
   * The module for a system given (or made from options) now.
   * @throws TroupeError `ERR_INVALID_OPTION` for options that are not an object, a `system` that is
   * neither a system nor options, a bad `drainOnShutdown` or `drainTimeoutMs` (at once); the system's
   * own option errors when Nest builds the module.
   */
  static forRoot(options: TroupeModuleOptions): DynamicModule {
    checkOptions(options);
    return TroupeModule.make([], [{ provide: OPTIONS, useValue: options }]);
  }

  /**
   * The module for options that a Nest factory makes (from a configuration provider, say).
   * @example
   * ```ts
   * TroupeModule.forRootAsync({
   *   imports: [ConfigModule],
   *   inject: [Config],
   *   useFactory: async (config: Config) => ({
   *     system: { name: 'app', node: 'web', transport: await natsTransport({ servers: config.nats }) },
   *   }),
   * });
   * ```
   */
  static forRootAsync(options: TroupeModuleAsyncOptions): DynamicModule {
    if (typeof options !== 'object' || options === null || typeof options.useFactory !== 'function') {
      throw invalidOption('useFactory', 'a function that returns the module options', options);
    }
    return TroupeModule.make(options.imports ?? [], [
      {
        provide: OPTIONS,
        useFactory: async (...args: unknown[]) => checkOptions(await options.useFactory(...args)),
        inject: options.inject ?? [],
      },
    ]);
  }

  private static make(
    imports: NonNullable<DynamicModule['imports']>,
    optionProviders: Provider[],
  ): DynamicModule {
    const providers: Provider[] = [
      ...optionProviders,
      {
        provide: LIFECYCLE,
        useFactory: async (options: TroupeModuleOptions) => new Lifecycle(await resolve(options)),
        inject: [OPTIONS],
      },
      {
        provide: TROUPE_SYSTEM,
        useFactory: (lifecycle: Lifecycle) => lifecycle.resolved.system,
        inject: [LIFECYCLE],
      },
    ];
    const exports: (string | symbol)[] = [TROUPE_SYSTEM];
    for (const [token, { address, protocol }] of wanted) {
      providers.push(refProvider(token, address, protocol));
      exports.push(token);
    }
    const module = { providers, exports };
    openModules.push(module);
    return {
      module: TroupeModule,
      global: true,
      imports,
      providers,
      // The list itself, not a copy: refs wanted later are added to it (see `openModules`).
      exports,
    };
  }
}

/** Drains the system on shutdown (Nest calls `onApplicationShutdown` on every provider that has it). */
class Lifecycle {
  constructor(readonly resolved: Resolved) {}

  async onApplicationShutdown(): Promise<void> {
    const { system, drain, drainTimeoutMs } = this.resolved;
    if (!drain) return;
    await system.drain(drainTimeoutMs === undefined ? undefined : { timeoutMs: drainTimeoutMs });
  }
}
