import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  behavior,
  createNode,
  createSystem,
  defineProtocol,
  ERROR_CODES,
  natsTransport,
  type SystemEvent,
  supervisor,
  type TreeNode,
  tell,
} from '../index.js';
import { main } from '../ops/cli/main.js';
import { renderEvent, renderTree, watchSystem } from '../ops/index.js';
import { SimulatedClock, settle } from '../runtime/testkit/index.js';
import { NatsServer } from './harness/nats.js';

const ESC = '\x1b[';
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escape sequences.
const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '');

function node(name: string, overrides: Partial<TreeNode> = {}, children: TreeNode[] = []): TreeNode {
  return {
    name,
    address: `troupe://t/local/${name}`,
    kind: 'worker',
    status: 'running',
    restarts: 0,
    strategy: 'one_for_one',
    mailboxSize: 0,
    children,
    ...overrides,
  };
}

const sample: TreeNode = node('', { kind: 'guardian', address: 'troupe://t/local/' }, [
  node('app', { kind: 'supervisor', strategy: 'rest_for_one' }, [
    node('db', { restarts: 2, mailboxSize: 7 }),
    node('api', { status: 'restarting' }),
  ]),
  node('cache', { status: 'stopped' }),
]);

describe('renderTree', () => {
  it('draws one aligned line per actor with kind, status, restarts and mailbox size', () => {
    const text = renderTree(sample);
    const lines = text.split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(
      /^troupe:\/\/t\/local\s+guardian one_for_one\s+running\s+restarts=0\s+mailbox=0$/,
    );
    expect(lines[1]).toMatch(/^\|-- app\s+supervisor rest_for_one\s+running\s+restarts=0/);
    expect(lines[2]).toMatch(/^\| {3}\|-- db\s+worker\s+running\s+restarts=2\s+mailbox=7$/);
    expect(lines[3]).toMatch(/^\| {3}`-- api\s+worker\s+restarting\s+restarts=0/);
    expect(lines[4]).toMatch(/^`-- cache\s+worker\s+stopped\s+restarts=0/);
    // Columns line up: every status starts at the same offset.
    const offsets = lines.map((l) => l.search(/running|restarting|stopped/));
    expect(new Set(offsets).size).toBe(1);
    expect(text).not.toContain(ESC);
  });

  it('adds ANSI colours only when asked', () => {
    const coloured = renderTree(sample, { color: true });
    expect(coloured).toContain(ESC);
    expect(stripAnsi(coloured)).toBe(renderTree(sample));
  });
});

const Probe = defineProtocol('ops-test.probe', { crash: tell(z.object({ why: z.string() })) });
const probe = behavior({
  protocols: [Probe],
  handlers: {
    crash: ({ why }) => {
      throw new Error(why);
    },
  },
});

let systems: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.map((s) => s.close()));
  systems = [];
});

function makeSystem(clock = new SimulatedClock()): ActorSystem {
  const system = createSystem({ name: 'ops', clock, deadLetterLog: () => {} });
  systems.push(system);
  return system;
}

describe('watchSystem', () => {
  it('draws the live tree and the recent crashes, restarts and dead letters, then stops', async () => {
    const system = makeSystem();
    const frames: string[] = [];
    const stop = watchSystem(system, { write: (t) => frames.push(t), intervalMs: 60_000, events: 5 });
    system.spawn(supervisor({ children: [{ id: 'worker', behavior: probe }] }), { name: 'app' });
    await settle(system);
    system.ref('troupe://ops/local/app/worker', Probe).tell('crash', { why: 'injected' });
    system.ref('troupe://ops/local/nobody', Probe).tell('crash', { why: 'lost' });
    await settle(system);
    expect(frames).toHaveLength(1);
    stop();
    stop();
    expect(frames).toHaveLength(2);
    const last = frames[1]!;
    expect(last).toContain('crashes 1');
    expect(last).toContain('restarts 1');
    expect(last).toContain('dead letters 1');
    expect(last).toMatch(/worker\s+worker\s+running\s+restarts=1/);
    expect(last).toMatch(/crashed\s+app\/worker {2}injected \(handling "crash"\)/);
    expect(last).toMatch(/restarted\s+app\/worker/);
    expect(last).toMatch(/dead-letter\s+nobody {2}"crash" \(no-such-actor\)/);
  });

  it('ends by itself with a last frame when the system stops, keeping the last live tree', async () => {
    const clock = new SimulatedClock();
    const system = makeSystem(clock);
    const frames: string[] = [];
    watchSystem(system, { write: (t) => frames.push(t), intervalMs: 5 });
    system.spawn(probe, { name: 'solo' });
    await settle(system);
    // The redraws run on the system's clock: one frame at the start, then one every 5 ms.
    await clock.advance(30);
    expect(frames).toHaveLength(7);
    await system.close();
    const last = frames.at(-1)!;
    expect(last).toMatch(/troupe · ops\s+·\s+stopped/);
    expect(last).toContain('solo');
    const count = frames.length;
    await clock.advance(30);
    expect(frames).toHaveLength(count);
    // Watching a stopped system draws one frame and ends.
    const late: string[] = [];
    watchSystem(system, { write: (t) => late.push(t) });
    expect(late).toHaveLength(1);
  });

  it('redraws in place by moving the cursor over the previous frame, and cuts long lines', async () => {
    const system = makeSystem();
    const frames: string[] = [];
    const stop = watchSystem(system, { write: (t) => frames.push(t), redraw: true, width: 20 });
    stop();
    const height = frames[0]!.split('\n').length - 1;
    expect(frames[1]!.startsWith(`\x1b[${height}F\x1b[0J`)).toBe(true);
    for (const line of frames[1]!.slice(`\x1b[${height}F\x1b[0J`.length).split('\n')) {
      expect(line.length).toBeLessThanOrEqual(20);
    }
  });

  it('renders every kind of event on one line', () => {
    const line = renderEvent({
      type: 'supervisor-escalated',
      at: 1500,
      address: 'troupe://ops/local/app',
      error: new Error('troupe://ops/local/app exceeded its restart intensity'),
    });
    expect(line).toBe('   1.500s  escalated    app  app exceeded its restart intensity');
    expect(
      renderEvent({ type: 'breaker-transition', at: 2000, breaker: 'openai', from: 'closed', to: 'open' }),
    ).toBe('   2.000s  breaker      openai  closed -> open');
    expect(
      renderEvent({
        type: 'agent-step',
        at: 2500,
        agent: 'troupe://ops/local/team/writer',
        run: 'run-1',
        step: 2,
        kind: 'tool',
        name: 'search',
        ms: 12.4,
        error: 'ERR_CALL_TIMEOUT',
      }),
    ).toBe('   2.500s  agent-step   team/writer  #2 tool search 12 ms ERR_CALL_TIMEOUT');
    expect(
      renderEvent({
        type: 'agent-run',
        at: 3000,
        agent: 'troupe://ops/local/w',
        run: 'run-1',
        phase: 'failed',
        steps: 8,
        error: 'ERR_STEP_LIMIT',
      }),
    ).toBe('   3.000s  agent-run    w  failed after 8 steps (ERR_STEP_LIMIT)');
  });

  it('renders the guards’ refusals, the layers’ defects, and events an application declared', () => {
    const lines = [
      renderEvent({
        type: 'bulkhead-rejected',
        at: 1000,
        bulkhead: 'openai',
        active: 8,
        queued: 32,
        maxConcurrent: 8,
        maxQueue: 32,
      }),
      renderEvent({
        type: 'budget-exhausted',
        at: 1500,
        scope: 'troupe://ops/local/team',
        agent: 'troupe://ops/local/team/writer',
        limit: 'costUsd',
        max: 5,
        used: 4.5,
        needed: 0.75,
      }),
      renderEvent({
        type: 'breaker-listener-failed',
        at: 2000,
        breaker: 'openai',
        from: 'closed',
        to: 'open',
        error: new Error('listener bug'),
      }),
      renderEvent({
        type: 'snapshot-failed',
        at: 2500,
        address: 'troupe://ops/local/accounts/ivy',
        stream: 'account-ivy',
        version: 12,
        error: new Error('disk full'),
      }),
      // Declared by an application's own augmentation of TroupeEvents, unknown to the console.
      renderEvent({ type: 'order-shipped', at: 3000, order: 7 } as unknown as SystemEvent),
    ];
    expect(lines).toEqual([
      '   1.000s  bulkhead     openai  refused: 8/8 running, 32/32 waiting',
      '   1.500s  budget       team/writer  refused: costUsd budget of team: 4.5 of 5 used, needs 0.75',
      '   2.000s  hook-fail    openai  onTransition (closed -> open): listener bug',
      '   2.500s  snapshot     accounts/ivy  "account-ivy" at version 12: disk full',
      '   3.000s  order-shipped    {"order":7}',
    ]);
  });
});

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('troupe CLI', () => {
  it('prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(await run(['--version'])).toEqual({ code: 0, out: `${pkg.version}\n`, err: '' });
    expect((await run(['-v'])).code).toBe(0);
  });

  it('prints help', async () => {
    const { code, out } = await run(['--help']);
    expect(code).toBe(0);
    expect(out).toContain('errors');
    expect(out).toContain('cluster remove');
  });

  it('prints every code of the error catalogue with its meaning, and where the document is', async () => {
    const { code, out } = await run(['errors']);
    expect(code).toBe(0);
    // Descriptions are wrapped and indented; with whitespace collapsed each row reads "CODE meaning".
    const flat = out.replace(/\s+/g, ' ');
    for (const [errorCode, meaning] of Object.entries(ERROR_CODES)) {
      expect(flat).toContain(`${errorCode} ${meaning}`);
    }
    const doc = out.trimEnd().split('\n').at(-1)!;
    expect(isAbsolute(doc) && existsSync(doc), doc).toBe(true);
  });

  it('prints what one code means, what raises it and what to do', async () => {
    const { code, out } = await run(['errors', 'ERR_ASK_TIMEOUT']);
    expect(code).toBe(0);
    const flat = out.replace(/\s+/g, ' ');
    expect(out.startsWith('ERR_ASK_TIMEOUT\n')).toBe(true);
    expect(flat).toContain(ERROR_CODES.ERR_ASK_TIMEOUT);
    expect(flat).toContain('Raised by ask after timeoutMs');
    expect(flat).toContain('To do: raise the timeout');
    expect(out).not.toMatch(/\*\*|`/);
  });

  it('has --help for every command', async () => {
    for (const command of [
      'errors',
      'cluster',
      'cluster remove',
      'node',
      'members',
      'tree',
      'actors',
      'events',
      'stop',
      'dashboard',
    ]) {
      const { code, out } = await run([...command.split(' '), '--help']);
      expect(code, command).toBe(0);
      expect(out, command).toContain(`Usage: troupe ${command}`);
    }
  });

  it('exits with 2 on an unknown command, option or code', async () => {
    const unknown = await run(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.out).toBe('');
    expect(unknown.err).toContain("unknown command 'frobnicate'");
    expect((await run(['--frob'])).code).toBe(2);
    expect(await run(['errors', 'ERR_NOPE'])).toMatchObject({
      code: 2,
      err: expect.stringContaining('"ERR_NOPE"'),
    });
    expect((await run(['errors', 'ERR_ASK_TIMEOUT', 'extra'])).code).toBe(2);
    expect((await run(['cluster', 'remove'])).code).toBe(2);
    expect((await run(['cluster', 'remove', 'shop', '--bogus'])).code).toBe(2);
  });
});

describe('troupe cluster remove, on a private nats-server', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await NatsServer.start();
  });
  afterAll(async () => {
    await server.dispose();
  });

  async function buckets(): Promise<string[]> {
    const nc = await connect({ servers: server.url });
    const names: string[] = [];
    for await (const status of new Kvm(nc).list()) names.push(status.bucket);
    await nc.close();
    return names.sort();
  }

  // Only nodes with named actors keep cluster state.
  const Cart = defineProtocol('ops.cart', { add: tell(z.object({})) });
  const cart = behavior({ protocols: [Cart], handlers: { add: () => {} } });
  const nodeOf = async (name: string) =>
    createNode({
      name,
      node: 'a',
      transport: await natsTransport({ servers: server.url }),
      kinds: { cart },
      deadLetterLog: () => {},
    });

  it("refuses while a node is up, then removes the cluster's buckets once its nodes have stopped", async () => {
    const system = await nodeOf('shop');
    const other = await nodeOf('other');
    expect(await buckets()).toEqual([
      'troupe_other_leases',
      'troupe_other_members',
      'troupe_shop_leases',
      'troupe_shop_members',
    ]);

    const refused = await run(['cluster', 'remove', 'shop', '--servers', server.url]);
    expect(refused).toMatchObject({ code: 1, out: '' });
    expect(refused.err).toContain('ERR_ILLEGAL_STATE: cluster "shop" still has members (a)');

    await system.drain();
    expect(await run(['cluster', 'remove', 'shop', '--servers', server.url])).toEqual({
      code: 0,
      out: `removed troupe_shop_members and troupe_shop_leases from ${server.url}\n`,
      err: '',
    });
    // The other cluster on the same NATS keeps its state.
    expect(await buckets()).toEqual(['troupe_other_leases', 'troupe_other_members']);
    expect(await run(['cluster', 'remove', 'shop', '--servers', server.url])).toMatchObject({
      code: 0,
      out: `cluster "shop" has no state on ${server.url}\n`,
    });
    await other.close();
  });

  it('says so when NATS cannot be reached', async () => {
    const { code, err } = await run(['cluster', 'remove', 'shop', '--servers', 'nats://127.0.0.1:1']);
    expect(code).toBe(1);
    expect(err).toContain('ERR_TRANSPORT: could not connect to NATS at nats://127.0.0.1:1');
  });
});
