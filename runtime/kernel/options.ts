import { invalidOption } from '../../protocols/index.js';
import type { ActivationPolicy, KindOptions } from '../remoting/cluster-types.js';
import type { Transport } from '../remoting/transport.js';
import { type Clock, realClock } from '../time/clock.js';
import { type Random, realRandom } from '../time/random.js';
import { type Backoff, resolveBackoff } from '../time/retry.js';
import type { Behavior, MailboxOptions } from './api.js';
import { type RestartPolicy, resolveRestartPolicy, restartPolicyDefaults } from './supervision/policy.js';

/** Options of `createSystem`. Every one has a default; see {@link systemDefaults}. */
export interface SystemOptions {
  /** The system (cluster) name in addresses. Defaults to `troupe`. */
  readonly name?: string;
  /** This node's id in addresses. Defaults to `local`. */
  readonly node?: string;
  /**
   * Time for everything the system and what runs in it waits on: timers, ask timeouts and envelope
   * deadlines, restart windows and backoff, heartbeats and failure detection, the transport's waits.
   * Defaults to the real clock.
   */
  readonly clock?: Clock;
  /**
   * Random source for backoff jitter and the ids a node draws; `seededRandom(seed)` makes them
   * repeatable. Defaults to `Math.random`.
   */
  readonly random?: Random;
  /** Default mailbox for every actor. Defaults to capacity 10,000 and policy `reject`. */
  readonly mailbox?: MailboxOptions;
  /** Default ask timeout. Defaults to 5000 ms. */
  readonly askTimeoutMs?: number;
  /** Fairness: most messages one actor handles per turn before the next actor runs. Defaults to 64. */
  readonly throughput?: number;
  /** Fairness: longest run of the dispatcher before it yields to the event loop. Defaults to 5 ms. */
  readonly timeSliceMs?: number;
  /**
   * What times the dispatcher's slices and tells slow turns from fast ones: `real` (default) reads
   * the process's real time, which is what keeps Node's I/O from starving; `clock` reads the
   * system's `clock`, so with a simulated clock (which does not move during a turn) every turn gets
   * the full `throughput` and runs on microtasks, and the order of turns no longer depends on how
   * fast the machine is: what a deterministic simulation needs.
   */
  readonly timeSlices?: 'real' | 'clock';
  /**
   * Development-mode checks (message bodies must be plain data). Defaults to on unless
   * `NODE_ENV` is `production`.
   */
  readonly devChecks?: boolean;
  /** Schema validation of messages: at process boundaries (default) or for every message. */
  readonly validate?: 'boundary' | 'always';
  /** How top-level actors, and by default every actor's children, are supervised. */
  readonly supervision?: Partial<RestartPolicy>;
  /** Default time a parent waits for a child to stop. Defaults to 5000 ms. */
  readonly shutdownMs?: number;
  /**
   * While nobody subscribes to the event stream, what would otherwise go unseen is written to this
   * sink (default `console.warn`, to stderr): dead letters, and crashes, escalations and a failed
   * system with the error's stack. Up to `deadLetterLogLimit` (default 10) dead letters and as many
   * crashes, each then with one note that more were suppressed.
   */
  readonly deadLetterLog?: (line: string) => void;
  readonly deadLetterLogLimit?: number;
  /**
   * How this node reaches the other nodes of its cluster (`name`): `natsTransport()` or an
   * `inProcessNetwork().transport()`. Without one, the system is a single node. The system owns it
   * and closes it when it stops.
   */
  readonly transport?: Transport;
  /** Largest encoded envelope sent to or accepted from another node. Defaults to 1 MiB. */
  readonly maxMessageBytes?: number;
  /** Most envelopes in one network frame. Defaults to 1024. */
  readonly maxBatchCount?: number;
  /** Frame size after which a frame goes at once instead of at the end of the turn. Defaults to 256 KiB. */
  readonly maxBatchBytes?: number;
  /**
   * Kinds of named (virtual) actors this node can host: `system.actorOf(kind, key)` reaches the one
   * activation of a key anywhere in the cluster. Every node of a cluster registers the same kinds.
   */
  readonly kinds?: Readonly<Record<string, Behavior<any, any> | KindOptions>>;
  /**
   * Announce this node in the cluster's membership (the transport's cluster store) even without
   * `kinds`, so that operators' tools (`troupe members`) and the other nodes see it. Every node of a
   * cluster registers the same kinds, so give it to every node or to none. Defaults to true when
   * `kinds` are given, false otherwise.
   */
  readonly joinCluster?: boolean;
  /** How often a node says it is alive. Defaults to 1000 ms. */
  readonly heartbeatMs?: number;
  /** Missed heartbeats after which a member is down and its named actors move. Defaults to 3. */
  readonly downAfterMissed?: number;
}

/** Fully resolved system options. */
export interface ResolvedSystemOptions {
  readonly name: string;
  readonly node: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly mailbox: ResolvedMailbox;
  readonly askTimeoutMs: number;
  readonly throughput: number;
  readonly timeSliceMs: number;
  readonly timeSlices: 'real' | 'clock';
  readonly devChecks: boolean;
  readonly validate: 'boundary' | 'always';
  readonly supervision: RestartPolicy;
  readonly shutdownMs: number;
  readonly deadLetterLog: (line: string) => void;
  readonly deadLetterLogLimit: number;
  readonly transport: Transport | undefined;
  readonly maxMessageBytes: number;
  readonly maxBatchCount: number;
  readonly maxBatchBytes: number;
  readonly kinds: ReadonlyMap<string, ResolvedKind>;
  readonly joinCluster: boolean;
  readonly heartbeatMs: number;
  readonly downAfterMissed: number;
}

/** A kind of named actor with every option resolved. */
export interface ResolvedKind {
  readonly behavior: Behavior<any, any>;
  readonly passivateAfterMs: number;
  readonly keys: { readonly maxLength: number; readonly pattern: RegExp | undefined };
  readonly restart: ResolvedActivationPolicy;
}

/** An {@link ActivationPolicy} with its defaults filled in. */
export interface ResolvedActivationPolicy {
  readonly intensity: number;
  readonly periodMs: number;
  readonly backoff: Backoff | undefined;
  readonly quarantine: Backoff;
  readonly outage: 'wait' | 'fail-fast';
  readonly outageBackoff: Backoff;
}

/** The defaults of {@link ActivationPolicy}. */
export const activationDefaults: ResolvedActivationPolicy = {
  intensity: 3,
  periodMs: 5000,
  backoff: undefined,
  quarantine: { baseMs: 1000, maxMs: 30_000, jitter: 0.2 },
  outage: 'wait',
  outageBackoff: { baseMs: 100, maxMs: 1000, jitter: 0.2 },
};

/** Longest key of a named actor by default (a stream name made from it must fit in 512). */
const DEFAULT_MAX_KEY = 256;

/** A resolved mailbox configuration. */
export interface ResolvedMailbox {
  readonly capacity: number;
  readonly overflow: 'reject' | 'drop-newest' | 'drop-oldest';
}

/** The defaults of {@link SystemOptions}. */
export const systemDefaults: ResolvedSystemOptions = {
  name: 'troupe',
  node: 'local',
  clock: realClock,
  random: realRandom,
  mailbox: { capacity: 10_000, overflow: 'reject' },
  askTimeoutMs: 5000,
  throughput: 64,
  timeSliceMs: 5,
  timeSlices: 'real',
  devChecks: process.env.NODE_ENV !== 'production',
  validate: 'boundary',
  supervision: restartPolicyDefaults,
  shutdownMs: 5000,
  deadLetterLog: (line) => console.warn(line),
  deadLetterLogLimit: 10,
  transport: undefined,
  maxMessageBytes: 1024 * 1024,
  maxBatchCount: 1024,
  maxBatchBytes: 256 * 1024,
  kinds: new Map(),
  joinCluster: false,
  heartbeatMs: 1000,
  downAfterMissed: 3,
};

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const OVERFLOW = ['reject', 'drop-newest', 'drop-oldest'] as const;

/**
 * Validates and completes system options.
 * @throws TroupeError `ERR_INVALID_OPTION` naming the first bad option.
 */
export function resolveSystemOptions(options: SystemOptions = {}): ResolvedSystemOptions {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const o = { ...systemDefaults, ...stripUndefined(options) } as ResolvedSystemOptions & SystemOptions;
  if (!SEGMENT.test(o.name)) throw invalidOption('name', 'letters, digits, "_", "-" or "."', o.name);
  if (!SEGMENT.test(o.node) || o.node.startsWith('@'))
    throw invalidOption('node', 'letters, digits, "_", "-" or "."', o.node);
  checkClock(o.clock);
  if (typeof o.random !== 'function') throw invalidOption('random', 'must be a function', o.random);
  return {
    name: o.name,
    node: o.node,
    clock: o.clock,
    random: o.random,
    mailbox: resolveMailbox(options.mailbox, systemDefaults.mailbox, 'mailbox'),
    askTimeoutMs: positive('askTimeoutMs', o.askTimeoutMs),
    throughput: positiveInteger('throughput', o.throughput),
    timeSliceMs: positive('timeSliceMs', o.timeSliceMs),
    timeSlices: oneOf('timeSlices', o.timeSlices, ['real', 'clock'] as const),
    devChecks: boolean('devChecks', o.devChecks),
    validate: oneOf('validate', o.validate, ['boundary', 'always'] as const),
    supervision: resolveRestartPolicy(options.supervision, restartPolicyDefaults, 'supervision'),
    shutdownMs: nonNegative('shutdownMs', o.shutdownMs),
    deadLetterLog: fn('deadLetterLog', o.deadLetterLog),
    deadLetterLogLimit: nonNegativeInteger('deadLetterLogLimit', o.deadLetterLogLimit),
    transport: checkTransport(o.transport),
    maxMessageBytes: positiveInteger('maxMessageBytes', o.maxMessageBytes),
    maxBatchCount: positiveInteger('maxBatchCount', o.maxBatchCount),
    maxBatchBytes: positiveInteger('maxBatchBytes', o.maxBatchBytes),
    kinds: resolveKinds(options.kinds),
    joinCluster:
      options.joinCluster === undefined
        ? options.kinds !== undefined && Object.keys(options.kinds).length > 0
        : boolean('joinCluster', options.joinCluster),
    heartbeatMs: positive('heartbeatMs', o.heartbeatMs),
    downAfterMissed: positiveInteger('downAfterMissed', o.downAfterMissed),
  };
}

const KIND = /^[A-Za-z][A-Za-z0-9_-]*$/;

function resolveKinds(kinds: SystemOptions['kinds']): ReadonlyMap<string, ResolvedKind> {
  const out = new Map<string, ResolvedKind>();
  if (kinds === undefined) return out;
  if (typeof kinds !== 'object' || kinds === null) throw invalidOption('kinds', 'must be an object', kinds);
  for (const [kind, value] of Object.entries(kinds)) {
    if (!KIND.test(kind))
      throw invalidOption(`kinds.${kind}`, 'a kind is a letter, then letters, digits, "_" or "-"', kind);
    const options = (
      typeof value === 'object' && value !== null && 'behavior' in value ? value : { behavior: value }
    ) as KindOptions;
    if (typeof options.behavior !== 'object' || options.behavior === null) {
      throw invalidOption(`kinds.${kind}`, 'must be a behaviour or { behavior, passivateAfterMs }', value);
    }
    const keys = options.keys ?? {};
    if (typeof keys !== 'object' || keys === null)
      throw invalidOption(`kinds.${kind}.keys`, 'must be an object', keys);
    if (keys.pattern !== undefined && !(keys.pattern instanceof RegExp)) {
      throw invalidOption(`kinds.${kind}.keys.pattern`, 'must be a RegExp', keys.pattern);
    }
    out.set(kind, {
      behavior: options.behavior,
      passivateAfterMs: positive(`kinds.${kind}.passivateAfterMs`, options.passivateAfterMs ?? 60_000),
      keys: {
        maxLength: positiveInteger(`kinds.${kind}.keys.maxLength`, keys.maxLength ?? DEFAULT_MAX_KEY),
        pattern: keys.pattern,
      },
      restart: resolveActivationPolicy(options.restart, `kinds.${kind}.restart`),
    });
  }
  return out;
}

function resolveActivationPolicy(
  policy: ActivationPolicy | undefined,
  where: string,
): ResolvedActivationPolicy {
  if (policy === undefined) return activationDefaults;
  if (typeof policy !== 'object' || policy === null) throw invalidOption(where, 'must be an object', policy);
  const restart = resolveRestartPolicy(
    stripUndefined({ intensity: policy.intensity, periodMs: policy.periodMs, backoff: policy.backoff }),
    {
      ...restartPolicyDefaults,
      intensity: activationDefaults.intensity,
      periodMs: activationDefaults.periodMs,
    },
    where,
  );
  const backoffOf = (value: Backoff | undefined, fallback: Backoff, name: string): Backoff =>
    value === undefined ? fallback : resolveBackoff(value, `${where}.${name}`);
  return {
    intensity: restart.intensity,
    periodMs: restart.periodMs,
    backoff: restart.backoff,
    quarantine: backoffOf(policy.quarantine, activationDefaults.quarantine, 'quarantine'),
    outage: oneOf(`${where}.outage`, policy.outage ?? activationDefaults.outage, [
      'wait',
      'fail-fast',
    ] as const),
    outageBackoff: backoffOf(policy.outageBackoff, activationDefaults.outageBackoff, 'outageBackoff'),
  };
}

function checkTransport(transport: Transport | undefined): Transport | undefined {
  if (transport === undefined) return undefined;
  const t = transport as Partial<Transport> | null;
  if (
    typeof t !== 'object' ||
    t === null ||
    typeof t.open !== 'function' ||
    typeof t.publish !== 'function' ||
    typeof t.close !== 'function'
  ) {
    throw invalidOption('transport', 'must be a Transport (open, publish, close)', transport);
  }
  return transport;
}

/** Completes mailbox options over `base`. */
export function resolveMailbox(
  options: MailboxOptions | undefined,
  base: ResolvedMailbox,
  where: string,
): ResolvedMailbox {
  if (options === undefined) return base;
  if (typeof options !== 'object' || options === null)
    throw invalidOption(where, 'must be an object', options);
  const capacity = options.capacity ?? base.capacity;
  const overflow = options.overflow ?? base.overflow;
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw invalidOption(`${where}.capacity`, 'must be an integer >= 1', capacity);
  }
  return { capacity, overflow: oneOf(`${where}.overflow`, overflow, OVERFLOW) };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function checkClock(clock: unknown): void {
  const c = clock as Clock | null;
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.now !== 'function' ||
    typeof c.wallNow !== 'function' ||
    typeof c.setTimeout !== 'function'
  ) {
    throw invalidOption('clock', 'must have now(), wallNow() and setTimeout()', clock);
  }
}

/** @internal */
export function positive(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidOption(option, 'must be a number > 0', value);
  }
  return value;
}

/** @internal */
export function nonNegative(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalidOption(option, 'must be a number >= 0', value);
  }
  return value;
}

function positiveInteger(option: string, value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 1)
    throw invalidOption(option, 'must be an integer >= 1', value);
  return value as number;
}

function nonNegativeInteger(option: string, value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 0)
    throw invalidOption(option, 'must be an integer >= 0', value);
  return value as number;
}

function boolean(option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidOption(option, 'must be true or false', value);
  return value;
}

function fn<F>(option: string, value: F): F {
  if (typeof value !== 'function') throw invalidOption(option, 'must be a function', value);
  return value;
}

/** @internal */
export function oneOf<const T extends string>(option: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T))
    throw invalidOption(option, `must be one of ${allowed.join(', ')}`, value);
  return value as T;
}
