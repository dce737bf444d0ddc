/**
 * The net lab: real network faults between real node processes, with Linux network namespaces.
 *
 * Layout. Every host (a node, or a server such as nats-server or Postgres) gets a network namespace
 * of its own with one veth link to a hub namespace, which routes between them. Host `i` has the
 * address `subnet + 4i + 2` on a /30 whose other end (`+ 4i + 1`) is the hub's, and a route to the
 * whole subnet through the hub. The lab has no link to any real interface, and by default none to
 * the root namespace either: nothing in it can reach (or be reached from) outside, so two labs may
 * use the same subnet at once, and a server that the nodes must reach runs as a host of the lab
 * (`nodes: ['nats', 'a', 'b']`). With `uplink`, the root namespace gets one link to the hub (the
 * subnet's first /30) and a route to the subnet, so a server started outside the lab, listening on
 * `uplinkAddress`, serves the hosts; each such lab takes a /24 of its own. Processes in any namespace
 * also share the file system, so a Unix socket (Postgres' included) works across them.
 *
 * Why a routed hub rather than a bridge: every packet between two hosts crosses the hub's IP
 * forwarding path, so every fault is one iptables rule matching source and destination, all of them
 * in one namespace that the hosts' processes cannot touch, with no bridge-netfilter settings.
 *
 * Faults, in the order a packet meets them in the hub:
 * - partitions and loss: `raw PREROUTING` DROP rules (loss with `-m statistic --mode random`);
 * - duplication: `mangle FORWARD` TEE rules, which send a copy to the destination;
 * - delay, jitter, reordering: `mangle POSTROUTING` NFQUEUE rules; a user-space delayer
 *   ({@link DELAYER_PY}) holds each packet for its time. The copies of TEE pass here too.
 * Why iptables and NFQUEUE rather than `tc netem`: see netlab-delayer.ts (sch_netem is missing from
 * many VM kernels, this project's included). Why iptables rather than nft: nft's queue statement needs
 * nft_queue, which such kernels leave out too, while iptables' NFQUEUE target goes through xtables.
 * Each change replaces the lab's chains with one `iptables-restore --noflush`, each table's chains in
 * one commit, so a partition never opens for a moment while its rules are rebuilt.
 */
import { type ChildProcess, execFile, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { invalidOption, TroupeError } from '../../../protocols/index.js';
import { DELAYER_PY } from './netlab-delayer.js';

/**
 * A network fault the lab applies: the `partition` and `network` fault kinds of a plan (a plan's
 * {@link Fault} of those kinds is one; its `at` and `durationMs` are the runner's business).
 */
export type NetFault =
  | {
      readonly kind: 'partition';
      /** Hosts on different sides cannot talk. */
      readonly sides: readonly (readonly string[])[];
      /** Only the first side's packets to the other sides are lost; the way back stays open. Defaults to false. */
      readonly oneWay?: boolean | undefined;
    }
  | {
      readonly kind: 'network';
      /** Senders whose packets suffer. Defaults to every host. */
      readonly from?: readonly string[] | undefined;
      /** Receivers whose packets suffer. Defaults to every host. */
      readonly to?: readonly string[] | undefined;
      /** Added one-way delay in ms. Defaults to 0. */
      readonly delayMs?: number | undefined;
      /** A uniform draw of up to this many ms added to the delay of each packet. Defaults to 0. */
      readonly jitterMs?: number | undefined;
      /** Probability that a packet is lost. Defaults to 0. */
      readonly drop?: number | undefined;
      /** Probability that a packet arrives twice. Defaults to 0. */
      readonly duplicate?: number | undefined;
      /** Probability that a packet is held back an extra while so later ones overtake it. Defaults to 0. */
      readonly reorder?: number | undefined;
    };

/** Options of {@link openNetLab}. */
export interface NetLabOptions {
  /** The hosts, one network namespace each: node names, and servers that run in the lab. */
  readonly nodes: readonly string[];
  /**
   * The IPv4 network of the lab's links, `a.b.c.d/len` with len 16..28, 4 addresses per host (one /30
   * each, the first /30 left unused). Defaults to `198.18.0.0/24`, the range set aside for network
   * test benches (RFC 2544), which no real network routes. The lab never leaves its namespaces, so
   * labs running at once may share it.
   */
  readonly subnet?: string;
  /**
   * Remove the namespaces of labs whose process died without closing them (see
   * {@link removeStaleNetLabs}) before opening. Defaults to true.
   */
  readonly removeStale?: boolean;
  /** Seed of the delayer's random draws (jitter, reordering). Loss and duplication use the kernel's. */
  readonly seed?: number;
  /**
   * Link the lab to the root namespace, so that servers started outside the lab (a runner's
   * nats-server and Postgres) can serve its hosts: they listen on {@link NetLab.uplinkAddress} (or on
   * all addresses; not on 127.0.0.1, which a host's namespace has to itself). The root namespace gets
   * one veth link and a route to the lab's subnet, and nothing more: the hosts still have no route
   * beyond the subnet. Faults apply between hosts, never on the uplink. Without `subnet`, each lab with
   * an uplink takes a free /24 of 198.18.0.0/15 (labs at once need different ones). Defaults to false.
   */
  readonly uplink?: boolean;
}

/** Defaults of {@link NetLabOptions}. */
export const netLabDefaults = { subnet: '198.18.0.0/24', removeStale: true } as const;

/** A running net lab. Close it when done; {@link removeStaleNetLabs} cleans up after a crash. */
export interface NetLab {
  /** The hosts, in the order given. */
  readonly nodes: readonly string[];
  /**
   * With `uplink`, the root namespace's address on the lab: where a server outside the lab listens
   * for the lab's hosts. Undefined without an uplink.
   */
  readonly uplinkAddress: string | undefined;
  /** The host's IPv4 address, where its peers reach it. Throws ERR_INVALID_OPTION for an unknown host. */
  address(node: string): string;
  /** The host's network namespace name (for `ip netns exec`, `ip -n`). */
  namespace(node: string): string;
  /**
   * The command prefix that runs a command inside the host's namespace, e.g.
   * `[...lab.exec('a'), 'nats-server', '-p', '4222']`. The prefix `exec`s the command, so the child's
   * pid is the command's own (signals such as SIGSTOP reach it).
   */
  exec(node: string): string[];
  /** `child_process.spawn` of `command` inside the host's namespace. */
  spawn(node: string, command: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
  /**
   * Puts the fault in force, with the others already in force (their effects compose: losses and
   * duplications draw independently, delays and jitters add up), and resolves once packets meet it.
   * Resolves to the function that heals this fault alone (idempotent).
   * Throws ERR_INVALID_OPTION for a fault naming an unknown host or out of range, and ERR_NET_LAB
   * when the packet filter refuses a rule or the lab is closed.
   */
  apply(fault: NetFault): Promise<() => Promise<void>>;
  /** The faults in force, in the order applied. */
  faults(): readonly NetFault[];
  /** Heals every fault. */
  healAll(): Promise<void>;
  /**
   * Kills what still runs in the lab's namespaces and removes them (their links go with them).
   * Idempotent; never rejects.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Prefix of every lab namespace: `tnl-<owner pid>-<lab number>-<hub|h<i>>`. */
const PREFIX = 'tnl-';
const NAME = /^tnl-(\d+)-(\d+)-(hub|h\d+)$/;
const QUEUE = 0;
const QUEUE_MAX_PACKETS = 10_000;
const SBIN = ['/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/bin', '/usr/local/bin'];
const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;

let labCounter = 0;
let unavailable: { reason: string | undefined } | undefined;

/**
 * Why the net lab cannot run here, or undefined when it can. Callers print the reason and skip
 * network faults. It checks Linux, CAP_NET_ADMIN and CAP_SYS_ADMIN (root), the `ip`, `iptables`,
 * `iptables-restore` and `python3` programs, and then tries it for real: a scratch namespace with one
 * rule of each kind the lab uses. The answer is computed once per process.
 *
 * @example
 * ```ts
 * const reason = netLabUnavailable();
 * if (reason !== undefined) console.warn(`network faults skipped: ${reason}`);
 * ```
 */
export function netLabUnavailable(): string | undefined {
  unavailable ??= { reason: probe() };
  return unavailable.reason;
}

function probe(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  const caps = effectiveCapabilities();
  if (caps !== undefined && (!hasCap(caps, CAP_NET_ADMIN) || !hasCap(caps, CAP_SYS_ADMIN)))
    return 'needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to make network namespaces and packet filters';
  if (!existsSync('/proc/self/ns/net')) return 'the kernel has no network namespaces (/proc/self/ns/net)';
  const tools = { ip: 'iproute2', iptables: 'iptables', 'iptables-restore': 'iptables', python3: 'python3' };
  for (const [tool, pkg] of Object.entries(tools))
    if (which(tool) === undefined)
      return `\`${tool}\` is not installed (Debian package ${pkg}; scripts/setup.sh installs it)`;
  const ns = `${PREFIX}${process.pid}-probe`;
  const ip = which('ip')!;
  const inside = (...args: string[]) => [ip, 'netns', 'exec', ns, ...args];
  const rule = (spec: string) => inside(which('iptables')!, '-w', ...spec.split(' '));
  const steps: [string, string[]][] = [
    ['make a network namespace', [ip, 'netns', 'add', ns]],
    [
      'add a statistic DROP rule',
      rule('-t raw -A PREROUTING -s 10.0.0.1 -m statistic --mode random --probability 0.5 -j DROP'),
    ],
    ['add a TEE rule', rule('-t mangle -A FORWARD -s 10.0.0.1 -j TEE --gateway 10.0.0.2')],
    [
      'add an NFQUEUE rule',
      rule('-t mangle -A POSTROUTING -s 10.0.0.1 -j NFQUEUE --queue-num 0 --queue-bypass'),
    ],
    [
      'open a netlink socket in Python',
      inside(
        which('python3')!,
        '-c',
        'import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12).bind((0, 0))',
      ),
    ],
  ];
  try {
    for (const [what, [command, ...args]] of steps) {
      const result = spawnSync(command!, args, { encoding: 'utf8', timeout: 10_000 });
      if (result.status !== 0)
        return `could not ${what}: ${(result.stderr || result.error?.message || `exit ${result.status}`).trim()}`;
    }
    return undefined;
  } finally {
    spawnSync(ip, ['netns', 'del', ns], { encoding: 'utf8' });
  }
}

function effectiveCapabilities(): bigint | undefined {
  try {
    const line = readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('CapEff:'));
    return line === undefined ? undefined : BigInt(`0x${line.slice('CapEff:'.length).trim()}`);
  } catch {
    return undefined;
  }
}

function hasCap(caps: bigint, bit: number): boolean {
  return ((caps >> BigInt(bit)) & 1n) === 1n;
}

/** A program on PATH or in the usual sbin folders (Debian keeps ip and iptables off a user's PATH). */
function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== ''), ...SBIN];
  return dirs.map((dir) => join(dir, name)).find((path) => existsSync(path));
}

/**
 * Removes the namespaces (and so the links) of net labs whose owner process is gone, killing what
 * still runs in them; labs of live processes are left alone, so it is safe while other labs run.
 * Resolves to the namespaces removed.
 */
export async function removeStaleNetLabs(): Promise<string[]> {
  const ip = which('ip');
  if (ip === undefined) return [];
  const listed = await run(ip, ['netns', 'list']).catch(() => '');
  const stale = listed
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => {
      const match = NAME.exec(name) ?? /^tnl-(\d+)-probe$/.exec(name);
      return match !== null && !alive(Number(match[1]));
    });
  await removeNamespaces(ip, stale);
  return stale;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Opens a net lab: one namespace per host, linked through the hub, with no fault in force.
 * Throws ERR_INVALID_OPTION for bad options and ERR_NET_LAB when the lab cannot run here
 * ({@link netLabUnavailable} says why) or a command fails; a half-made lab is removed first.
 *
 * @example
 * ```ts
 * await using lab = await openNetLab({ nodes: ['nats', 'a', 'b'] });
 * const server = lab.spawn('nats', 'nats-server', ['-a', lab.address('nats'), '-p', '4222']);
 * const heal = await lab.apply({ kind: 'partition', sides: [['a'], ['b']] });
 * await heal();
 * ```
 */
export async function openNetLab(options: NetLabOptions): Promise<NetLab> {
  const nodes = checkNodes(options.nodes);
  const subnet = parseSubnet(options.subnet ?? netLabDefaults.subnet, nodes.length);
  const reason = netLabUnavailable();
  if (reason !== undefined) throw new TroupeError('ERR_NET_LAB', `The net lab cannot run here: ${reason}`);
  if (options.removeStale ?? netLabDefaults.removeStale) await removeStaleNetLabs();
  const lab = new Lab(nodes, subnet.base, subnet.length, `${PREFIX}${process.pid}-${labCounter++}`, {
    seed: options.seed,
    uplink: options.uplink === true ? (options.subnet === undefined ? 'auto' : 'fixed') : 'none',
  });
  closeAtExit(lab);
  try {
    await lab.open();
  } catch (error) {
    await lab.close();
    throw error;
  }
  return lab;
}

function checkNodes(nodes: readonly string[]): readonly string[] {
  if (!Array.isArray(nodes) || nodes.length === 0)
    throw invalidOption('nodes', 'must list at least one host', nodes);
  for (const node of nodes)
    if (typeof node !== 'string' || node === '') throw invalidOption('nodes', 'a host name is empty', nodes);
  if (new Set(nodes).size !== nodes.length) throw invalidOption('nodes', 'names a host twice', nodes);
  return [...nodes];
}

function parseSubnet(subnet: string, hosts: number): { base: number; length: number } {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(subnet);
  const octets = match?.slice(1, 5).map(Number) ?? [];
  const length = Number(match?.[5]);
  if (match === null || octets.some((o) => o > 255) || length < 16 || length > 28)
    throw invalidOption('subnet', 'must be an IPv4 network a.b.c.d/len with len 16..28', subnet);
  const base = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - length);
  if (base % size !== 0) throw invalidOption('subnet', 'has host bits set', subnet);
  if ((hosts + 1) * 4 > size)
    throw invalidOption('subnet', `is too small for ${hosts} hosts (4 addresses each, plus 4)`, subnet);
  return { base, length };
}

function ipv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

function run(command: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { encoding: 'utf8', timeout: 30_000 }, (error, stdout, stderr) => {
      if (error === null) resolve(stdout);
      else
        reject(
          new TroupeError(
            'ERR_NET_LAB',
            `\`${[command, ...args].join(' ')}\` failed: ${stderr.trim() || error.message}`,
            {
              cause: error,
              details: { command: [command, ...args] },
            },
          ),
        );
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function removeNamespaces(ip: string, namespaces: readonly string[]): Promise<void> {
  if (namespaces.length === 0) return;
  // A namespace outlives its name while a process runs in it, links and all: kill them first.
  const pidsOf = async () =>
    (await Promise.all(namespaces.map((ns) => run(ip, ['netns', 'pids', ns]).catch(() => ''))))
      .flatMap((out) => out.split('\n'))
      .map(Number)
      .filter((pid) => pid > 0);
  for (let attempt = 0; attempt < 50; attempt++) {
    const pids = await pidsOf();
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    // Real time on purpose: killed processes of real namespaces need a moment to let go of them.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await Promise.all(namespaces.map((ns) => run(ip, ['netns', 'del', ns]).catch(() => undefined)));
}

/** An ordered pair of hosts: packets from `src` to `dst`. */
export interface HostPair {
  readonly src: string;
  readonly dst: string;
}

/**
 * What the faults in force do to each ordered pair of distinct hosts, as the hub's rules carry it out.
 * Drops and duplications are one rule per fault (each draws on its own, as in the simulation, so
 * losses compound and each duplicating fault may add a copy); the delays of one pair add up into
 * one delayer rule, and so do their jitters, while reorderings combine as independent draws.
 * @internal
 */
export interface LinkRules {
  readonly drops: readonly (HostPair & { readonly probability: number })[];
  readonly duplicates: readonly (HostPair & { readonly probability: number })[];
  readonly delays: readonly (HostPair & {
    readonly delayMs: number;
    readonly jitterMs: number;
    readonly reorder: number;
  })[];
}

/** The rules for `faults` (already checked) between `nodes`. @internal */
export function linkRules(nodes: readonly string[], faults: readonly NetFault[]): LinkRules {
  const drops: (HostPair & { probability: number })[] = [];
  const duplicates: (HostPair & { probability: number })[] = [];
  const delays = new Map<string, HostPair & { delayMs: number; jitterMs: number; keep: number }>();
  for (const fault of faults) {
    for (const pair of faultPairs(nodes, fault)) {
      if (fault.kind === 'partition') {
        drops.push({ ...pair, probability: 1 });
        continue;
      }
      if ((fault.drop ?? 0) > 0) drops.push({ ...pair, probability: Math.min(1, fault.drop!) });
      if ((fault.duplicate ?? 0) > 0)
        duplicates.push({ ...pair, probability: Math.min(1, fault.duplicate!) });
      if ((fault.delayMs ?? 0) > 0 || (fault.jitterMs ?? 0) > 0 || (fault.reorder ?? 0) > 0) {
        const key = `${pair.src}\u0000${pair.dst}`;
        const rule = delays.get(key) ?? { ...pair, delayMs: 0, jitterMs: 0, keep: 1 };
        rule.delayMs += fault.delayMs ?? 0;
        rule.jitterMs += fault.jitterMs ?? 0;
        rule.keep *= 1 - (fault.reorder ?? 0);
        delays.set(key, rule);
      }
    }
  }
  return {
    drops,
    duplicates,
    delays: [...delays.values()].map(({ keep, ...rule }) => ({ ...rule, reorder: 1 - keep })),
  };
}

/**
 * The ordered pairs of distinct hosts a fault touches: for a partition, every pair across two sides
 * (one way: only from the first side), exactly as the simulation's `canReach` decides; for a network
 * fault, every pair from `from` (default all) to `to` (default all).
 */
function faultPairs(nodes: readonly string[], fault: NetFault): HostPair[] {
  const out: HostPair[] = [];
  const add = (src: string, dst: string) => {
    if (src !== dst) out.push({ src, dst });
  };
  if (fault.kind === 'partition') {
    // A host is on the first side that names it, as in the simulation.
    const side = (node: string) => fault.sides.findIndex((members) => members.includes(node));
    for (const src of nodes)
      for (const dst of nodes) {
        const [a, b] = [side(src), side(dst)];
        if (a !== -1 && b !== -1 && a !== b && (fault.oneWay !== true || a === 0)) add(src, dst);
      }
  } else {
    for (const src of new Set(fault.from ?? nodes))
      for (const dst of new Set(fault.to ?? nodes)) add(src, dst);
  }
  return out;
}

type Lifecycle = { tag: 'opening' } | { tag: 'open' } | { tag: 'closed' };

class Lab implements NetLab {
  private readonly ip = which('ip')!;
  private readonly iptablesRestore = which('iptables-restore')!;
  private readonly hub: string;
  private readonly active: NetFault[] = [];
  private state: Lifecycle = { tag: 'opening' };
  private delayer: ChildProcess | undefined;
  private delayerError = '';
  private readonly acks = new Map<number, () => void>();
  private updateId = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;

  /** The root namespace's end of the uplink, once made. */
  private uplinkLink: string | undefined;
  private readonly seed: number | undefined;
  private readonly uplink: 'none' | 'auto' | 'fixed';

  constructor(
    readonly nodes: readonly string[],
    private base: number,
    private prefixLength: number,
    private readonly id: string,
    options: { seed: number | undefined; uplink: 'none' | 'auto' | 'fixed' },
  ) {
    this.hub = `${id}-hub`;
    this.seed = options.seed;
    this.uplink = options.uplink;
  }

  get uplinkAddress(): string | undefined {
    return this.uplink === 'none' ? undefined : ipv4(this.base + 2);
  }

  private index(node: string): number {
    const i = this.nodes.indexOf(node);
    if (i === -1)
      throw invalidOption('node', `"${node}" is not a host of this lab (${this.nodes.join(', ')})`, node);
    return i;
  }

  address(node: string): string {
    return ipv4(this.base + 4 * (this.index(node) + 1) + 2);
  }

  private hubAddress(i: number): string {
    return ipv4(this.base + 4 * (i + 1) + 1);
  }

  namespace(node: string): string {
    return `${this.id}-h${this.index(node)}`;
  }

  exec(node: string): string[] {
    return [this.ip, 'netns', 'exec', this.namespace(node)];
  }

  spawn(
    node: string,
    command: string,
    args: readonly string[] = [],
    options: SpawnOptions = {},
  ): ChildProcess {
    const [ip, ...prefix] = this.exec(node);
    return spawn(ip!, [...prefix, command, ...args], options);
  }

  async open(): Promise<void> {
    const { ip, hub } = this;
    await run(ip, ['netns', 'add', hub]);
    await run(ip, ['-n', hub, 'link', 'set', 'lo', 'up']);
    await run(ip, ['netns', 'exec', hub, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
    if (this.uplink !== 'none') await this.openUplink();
    const subnet = `${ipv4(this.base)}/${this.prefixLength}`;
    await Promise.all(
      this.nodes.map(async (node, i) => {
        const ns = this.namespace(node);
        const link = `v${i}`;
        await run(ip, ['netns', 'add', ns]);
        await run(ip, ['-n', hub, 'link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
        await run(ip, ['-n', hub, 'addr', 'add', `${this.hubAddress(i)}/30`, 'dev', link]);
        await run(ip, ['-n', hub, 'link', 'set', link, 'up']);
        await run(ip, ['-n', ns, 'addr', 'add', `${this.address(node)}/30`, 'dev', 'eth0']);
        await run(ip, ['-n', ns, 'link', 'set', 'eth0', 'up']);
        await run(ip, ['-n', ns, 'link', 'set', 'lo', 'up']);
        await run(ip, ['-n', ns, 'route', 'add', subnet, 'via', this.hubAddress(i)]);
      }),
    );
    await run(
      ip,
      ['netns', 'exec', hub, this.iptablesRestore, '-w', '--noflush'],
      [
        '*raw',
        ':TNL_DROP - [0:0]',
        '-A PREROUTING -j TNL_DROP',
        'COMMIT',
        '*mangle',
        ':TNL_DUP - [0:0]',
        ':TNL_DELAY - [0:0]',
        '-A FORWARD -j TNL_DUP',
        '-A POSTROUTING -j TNL_DELAY',
        'COMMIT',
        '',
      ].join('\n'),
    );
    await this.startDelayer();
    this.state = { tag: 'open' };
  }

  /**
   * The uplink: a veth from the root namespace (`base + 2`) to the hub (`base + 1`), in the first /30
   * of the subnet, which no host uses. With an automatic subnet, the root end's name `tnlu<k>` claims
   * the k-th block of 198.18.0.0/15: making a link of a taken name fails at once, so two labs opening
   * at the same moment cannot take the same block.
   */
  private async openUplink(): Promise<void> {
    const routes = await run(this.ip, ['-4', 'route', 'show']);
    const attempt = async (name: string): Promise<boolean> => {
      const subnet = `${ipv4(this.base)}/${this.prefixLength}`;
      if (this.uplink === 'auto' && routes.includes(`${ipv4(this.base)}/`)) return false;
      try {
        await run(this.ip, ['link', 'add', name, 'type', 'veth', 'peer', 'name', 'up0', 'netns', this.hub]);
      } catch (error) {
        if (this.uplink === 'auto' && /exists/i.test((error as Error).message)) return false;
        throw error;
      }
      this.uplinkLink = name;
      await run(this.ip, ['-n', this.hub, 'addr', 'add', `${ipv4(this.base + 1)}/30`, 'dev', 'up0']);
      await run(this.ip, ['-n', this.hub, 'link', 'set', 'up0', 'up']);
      await run(this.ip, ['addr', 'add', `${ipv4(this.base + 2)}/30`, 'dev', name]);
      await run(this.ip, ['link', 'set', name, 'up']);
      await run(this.ip, ['route', 'add', subnet, 'via', ipv4(this.base + 1), 'dev', name]);
      return true;
    };
    if (this.uplink === 'fixed') {
      await attempt(`tnu${process.pid}-${this.id.split('-').at(-1)}`);
      return;
    }
    let span = 256;
    while (span < (this.nodes.length + 1) * 4) span *= 2;
    const first = 198 * 2 ** 24 + 18 * 2 ** 16;
    for (let k = 0; k < 2 ** 17 / span; k++) {
      this.base = first + k * span;
      this.prefixLength = 32 - Math.log2(span);
      if (await attempt(`tnlu${k}`)) return;
    }
    throw new TroupeError(
      'ERR_NET_LAB',
      'No free block of 198.18.0.0/15 for the lab: too many labs with an uplink',
    );
  }

  private startDelayer(): Promise<void> {
    const args = ['netns', 'exec', this.hub, which('python3')!, '-u', '-c', DELAYER_PY, String(QUEUE)];
    args.push(String(QUEUE_MAX_PACKETS));
    if (this.seed !== undefined) args.push(String(this.seed));
    const child = spawn(this.ip, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.delayer = child;
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.delayerError = (this.delayerError + chunk).slice(-2000);
    });
    // A write after the delayer died must not crash the process; the exit handler reports it.
    child.stdin?.on('error', () => undefined);
    return new Promise((resolve, reject) => {
      let buffered = '';
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        buffered += chunk;
        let newline = buffered.indexOf('\n');
        while (newline !== -1) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (line === 'ready') resolve();
          else if (line.startsWith('ok ')) {
            const id = Number(line.slice(3));
            this.acks.get(id)?.();
            this.acks.delete(id);
          }
          newline = buffered.indexOf('\n');
        }
      });
      child.once('exit', (code, signal) => {
        this.delayer = undefined;
        const error = new TroupeError(
          'ERR_NET_LAB',
          `The net lab's delayer exited (${signal ?? `code ${code}`}): ${this.delayerError.trim() || 'no output'}`,
        );
        reject(error);
        for (const ack of this.acks.values()) ack();
        this.acks.clear();
      });
    });
  }

  faults(): readonly NetFault[] {
    return [...this.active];
  }

  async apply(fault: NetFault): Promise<() => Promise<void>> {
    const checked = this.check(fault);
    if (this.state.tag !== 'open') throw new TroupeError('ERR_NET_LAB', 'The net lab is closed');
    this.active.push(checked);
    try {
      await this.sync();
    } catch (error) {
      // A fault the packet filter refused is not in force: forget it, so later changes still apply.
      this.active.splice(this.active.indexOf(checked), 1);
      await this.sync().catch(() => undefined);
      throw error;
    }
    let healed = false;
    return async () => {
      if (healed) return;
      healed = true;
      const at = this.active.indexOf(checked);
      if (at !== -1) this.active.splice(at, 1);
      if (this.state.tag === 'open') await this.sync();
    };
  }

  async healAll(): Promise<void> {
    this.active.length = 0;
    if (this.state.tag === 'open') await this.sync();
  }

  private check(fault: NetFault): NetFault {
    const known = (option: string, names: readonly string[] | undefined) => {
      if (names === undefined) return;
      if (!Array.isArray(names)) throw invalidOption(option, 'must be a list of hosts', names);
      for (const name of names) this.index(name);
    };
    if (fault.kind === 'partition') {
      if (!Array.isArray(fault.sides) || fault.sides.length < 2)
        throw invalidOption('fault.sides', 'must list at least two sides', fault.sides);
      fault.sides.forEach((side, i) => {
        known(`fault.sides.${i}`, side);
      });
      return {
        kind: 'partition',
        sides: fault.sides.map((side) => [...side]),
        oneWay: fault.oneWay ?? false,
      };
    }
    if (fault.kind !== 'network')
      throw invalidOption('fault.kind', 'the net lab applies `partition` and `network` faults', fault);
    known('fault.from', fault.from);
    known('fault.to', fault.to);
    const ms = (name: 'delayMs' | 'jitterMs') => {
      const value = fault[name] ?? 0;
      if (!Number.isFinite(value) || value < 0)
        throw invalidOption(`fault.${name}`, 'must be a number of ms, 0 or more', value);
      return value;
    };
    const probability = (name: 'drop' | 'duplicate' | 'reorder') => {
      const value = fault[name] ?? 0;
      if (!(value >= 0 && value <= 1))
        throw invalidOption(`fault.${name}`, 'must be a probability in 0..1', value);
      return value;
    };
    return {
      kind: 'network',
      ...(fault.from === undefined ? {} : { from: [...fault.from] }),
      ...(fault.to === undefined ? {} : { to: [...fault.to] }),
      delayMs: ms('delayMs'),
      jitterMs: ms('jitterMs'),
      drop: probability('drop'),
      duplicate: probability('duplicate'),
      reorder: probability('reorder'),
    };
  }

  /** Makes the packet filter and the delayer match the faults in force; one change at a time. */
  private sync(): Promise<void> {
    const next = this.queue.then(() => this.syncNow());
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async syncNow(): Promise<void> {
    if (this.state.tag !== 'open') return;
    const rules = linkRules(this.nodes, this.active);
    const match = ({ src, dst }: { src: string; dst: string }) =>
      `-s ${this.address(src)}/32 -d ${this.address(dst)}/32`;
    const when = (probability: number) => (probability >= 1 ? '' : ` ${random(probability)}`);
    const drops = rules.drops.map((rule) => `-A TNL_DROP ${match(rule)}${when(rule.probability)} -j DROP`);
    const dups = rules.duplicates.map(
      (rule) =>
        `-A TNL_DUP ${match(rule)}${when(rule.probability)} -j TEE --gateway ${this.address(rule.dst)}`,
    );
    const delays = rules.delays.map((rule) => ({
      src: this.address(rule.src),
      dst: this.address(rule.dst),
      delay: rule.delayMs,
      jitter: rule.jitterMs,
      reorder: rule.reorder,
    }));
    // The delayer learns the rules before packets are queued for them, and a pair whose rule went
    // lets its held packets go at once; so no packet waits in the queue with nobody to release it.
    await this.updateDelayer(delays);
    const queued = rules.delays.map(
      (rule) => `-A TNL_DELAY ${match(rule)} -j NFQUEUE --queue-num ${QUEUE} --queue-bypass`,
    );
    const script = [
      '*raw',
      ':TNL_DROP - [0:0]',
      ...drops,
      'COMMIT',
      '*mangle',
      ':TNL_DUP - [0:0]',
      ':TNL_DELAY - [0:0]',
      ...dups,
      ...queued,
      'COMMIT',
      '',
    ].join('\n');
    await run(this.ip, ['netns', 'exec', this.hub, this.iptablesRestore, '-w', '--noflush'], script);
  }

  private updateDelayer(rules: readonly object[]): Promise<void> {
    const child = this.delayer;
    if (child === undefined || child.stdin === null)
      return Promise.reject(
        new TroupeError(
          'ERR_NET_LAB',
          `The net lab's delayer is not running: ${this.delayerError.trim() || 'no output'}`,
        ),
      );
    const id = ++this.updateId;
    return new Promise<void>((resolve) => {
      this.acks.set(id, resolve);
      child.stdin!.write(`${JSON.stringify({ id, rules })}\n`);
    }).then(() => {
      if (this.delayer === undefined)
        throw new TroupeError(
          'ERR_NET_LAB',
          `The net lab's delayer exited: ${this.delayerError.trim() || 'no output'}`,
        );
    });
  }

  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    this.state = { tag: 'closed' };
    openLabs.delete(this);
    this.active.length = 0;
    await this.queue;
    const delayer = this.delayer;
    if (delayer !== undefined) {
      const exited = new Promise<void>((resolve) => delayer.once('exit', () => resolve()));
      delayer.stdin?.end();
      // Real time on purpose: a real delayer process gets two seconds to exit before the lab goes on.
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
    }
    await removeNamespaces(this.ip, [this.hub, ...this.nodes.map((_, i) => `${this.id}-h${i}`)]);
    // Gone with the hub's end already, unless a process we could not kill holds the hub open.
    if (this.uplinkLink !== undefined)
      await run(this.ip, ['link', 'del', this.uplinkLink]).catch(() => undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The last resort when the process exits with the lab open: synchronous, best effort. */
  closeAtExit(): void {
    this.delayer?.kill('SIGKILL');
    const all = [this.hub, ...this.nodes.map((_, i) => `${this.id}-h${i}`)];
    for (const ns of all) {
      const pids = spawnSync(this.ip, ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
      for (const pid of pids.split('\n').map(Number))
        if (pid > 0)
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone already.
          }
    }
    for (const ns of all) spawnSync(this.ip, ['netns', 'del', ns]);
    if (this.uplinkLink !== undefined) spawnSync(this.ip, ['link', 'del', this.uplinkLink]);
  }
}

/** Labs not closed yet, removed when the process exits (a crash, a forgotten close). */
const openLabs = new Set<Lab>();
let exitHooked = false;

function closeAtExit(lab: Lab): void {
  openLabs.add(lab);
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => {
    for (const open of openLabs) open.closeAtExit();
  });
}

function random(probability: number): string {
  return `-m statistic --mode random --probability ${probability.toFixed(9)}`;
}
