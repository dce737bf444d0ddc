/**
 * `troupe node`: its config (module and environment, checked with field names), and real node
 * processes on a private nats-server: they join the membership (even with no named actor active),
 * answer, and drain on SIGTERM; a second signal ends a drain at once; a bad config exits with 2.
 */
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNode, natsTransport, TroupeError } from '../../index.js';
import { defineNodeConfig, nodeConfigDefaults, resolveNodeConfig } from '../../ops/index.js';
import { NatsServer } from '../harness/nats.js';
import { TroupeProcess } from '../harness/troupe-cli.js';
import { Greeter, Worker } from './node-config.js';

const CONFIG = 'test/ops/node-config.ts';

function configError(config: unknown, env: Record<string, string> = {}): TroupeError {
  try {
    resolveNodeConfig(config, env);
  } catch (error) {
    if (TroupeError.is(error, 'ERR_INVALID_CONFIG')) return error;
    throw error;
  }
  throw new Error('no error');
}

describe('node config', () => {
  it('fills the defaults, and the environment overrides the module', () => {
    const config = resolveNodeConfig(
      defineNodeConfig({ cluster: 'shop', node: 'a', ops: { port: 1234 } }),
      {},
    );
    expect(config).toMatchObject({
      cluster: 'shop',
      node: 'a',
      nats: { servers: nodeConfigDefaults.servers },
      ops: { port: 1234, host: '0.0.0.0' },
      logLevel: 'info',
      heartbeatMs: 1000,
      drainTimeoutMs: 10_000,
      telemetry: { serviceName: 'troupe', metrics: true },
    });
    const fromEnv = resolveNodeConfig(defineNodeConfig({ cluster: 'shop', node: 'a', ops: { port: 1234 } }), {
      TROUPE_CLUSTER: 'store',
      TROUPE_NODE: 'b',
      TROUPE_NATS_URL: 'nats://n1:4222, nats://n2:4222',
      TROUPE_OPS_PORT: '0',
      TROUPE_METRICS: 'false',
      TROUPE_HEARTBEAT_MS: '250',
      TROUPE_JOURNAL: 'postgres://troupe@db/troupe',
    });
    expect(fromEnv).toMatchObject({
      cluster: 'store',
      node: 'b',
      nats: { servers: ['nats://n1:4222', 'nats://n2:4222'] },
      ops: { port: 0, host: '0.0.0.0' },
      telemetry: { metrics: false },
      heartbeatMs: 250,
      journal: 'postgres://troupe@db/troupe',
    });
    // The node id defaults to the host name, made a valid id.
    expect(resolveNodeConfig({ cluster: 'shop' }, {}).node).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/);
  });

  it('names the bad field, and the variable that set it', () => {
    expect(configError({}).message).toBe(
      'invalid config: cluster: Invalid input: expected string, received undefined',
    );
    expect(configError({}).details).toEqual({ field: 'cluster' });
    const port = configError({ cluster: 'shop' }, { TROUPE_OPS_PORT: 'eighty' });
    expect(port.message).toMatch(/^invalid config: ops\.port \(from TROUPE_OPS_PORT\): /);
    expect(port.details).toEqual({ field: 'ops.port', variable: 'TROUPE_OPS_PORT' });
    expect(configError({ cluster: 'shop' }, { TROUPE_NATS_URL: 'nats://ok:1,http://no' }).details).toEqual({
      field: 'nats.servers.1',
      variable: 'TROUPE_NATS_URL',
    });
    expect(configError({ cluster: 'a b' }).details).toEqual({ field: 'cluster' });
    expect(configError({ cluster: 'shop', ops: { port: 70_000 } }).details).toEqual({ field: 'ops.port' });
    expect(configError({ cluster: 'shop', journal: 'mysql://x' }).details).toEqual({ field: 'journal' });
    expect(configError({ cluster: 'shop', logLevel: 'loud' as never }).details).toEqual({
      field: 'logLevel',
    });
    expect(configError({ cluster: 'shop', nats: { server: 'x' } as never }).message).toBe(
      'invalid config: nats: unknown field "server"',
    );
    expect(configError({ cluster: 'shop', colour: 'blue' } as never).details).toEqual({ field: 'config' });
    expect(configError(undefined).code).toBe('ERR_INVALID_CONFIG');
  });
});

describe('troupe node, as processes on a private nats-server', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await NatsServer.start();
  });
  afterAll(async () => {
    await server.dispose();
  });

  const env = (cluster: string, node: string, extra: Record<string, string> = {}) => ({
    TROUPE_NATS_URL: server.url,
    TROUPE_CLUSTER: cluster,
    TROUPE_NODE: node,
    TROUPE_OPS_PORT: '0',
    TROUPE_HEARTBEAT_MS: '200',
    ...extra,
  });

  async function members(cluster: string): Promise<string[]> {
    const nc = await connect({ servers: server.url });
    try {
      const kv = await new Kvm(nc).open(`troupe_${cluster}_members`);
      const keys: string[] = [];
      for await (const key of await kv.keys()) keys.push(key);
      return keys.sort();
    } finally {
      await nc.close();
    }
  }

  it('logs its start, joins the membership, answers, and drains on SIGTERM with exit code 0', async () => {
    const node = TroupeProcess.start(['node', '--config', CONFIG], env('cli1', 'n1'));
    try {
      const started = await node.log('node started');
      expect(started).toMatchObject({
        cluster: 'cli1',
        node: 'n1',
        nats: [server.url],
        prefix: 'troupe.cli1',
      });
      expect(await members('cli1')).toEqual(['n1']);
      const ops = started.ops as string;
      expect((await fetch(`${ops}/healthz`)).status).toBe(200);
      await expect.poll(async () => (await fetch(`${ops}/readyz`)).status).toBe(200);
      await expect
        .poll(async () => await (await fetch(`${ops}/metrics`)).text())
        .toMatch(/^troupe_actors\{/m);
      await using client = await createNode({
        name: 'cli1',
        node: 'client',
        transport: await natsTransport({ servers: server.url }),
        deadLetterLog: () => {},
      });
      const greeter = client.ref('troupe://cli1/n1/hello', Greeter);
      expect(await greeter.ask('greet', { n: 1 })).toEqual({ n: 1, node: 'n1', count: 1 });
      // Its events are logged as logSystem logs them, once per field, secrets scrubbed.
      client
        .ref('troupe://cli1/n1/app/worker', Worker)
        .tell('crash', { why: 'key sk-live1234567890 leaked' });
      const crashed = await node.log('troupe://cli1/n1/app/worker crashed handling "crash"', 10_000);
      expect(crashed).toMatchObject({
        level: 50,
        event: 'actor-crashed',
        cluster: 'cli1',
        node: 'n1',
        system: 'cli1',
        address: 'troupe://cli1/n1/app/worker',
        err: { message: 'key sk-[redacted] leaked' },
      });
      await node.log('troupe://cli1/n1/app/worker restarted (1)');
      node.signal('SIGTERM');
      expect((await node.exited).code).toBe(0);
      expect(node.logs().map((l) => l.msg)).toEqual(expect.arrayContaining(['draining', 'stopped']));
      expect(await members('cli1')).toEqual([]);
    } finally {
      await node.stop();
    }
    // A node process that loads tsx, the OpenTelemetry SDK and its config: slow on a loaded machine.
  }, 60_000);

  it('exits at once on a second signal while a drain waits', async () => {
    const node = TroupeProcess.start(
      ['node', '--config', CONFIG],
      env('cli2', 'n1', { TROUPE_TEST_HOLD_DRAIN: '1', TROUPE_DRAIN_TIMEOUT_MS: '600000' }),
    );
    try {
      await node.log('node started');
      node.signal('SIGINT');
      await node.log('draining');
      node.signal('SIGINT');
      expect((await node.exited).code).toBe(130);
      expect(node.logs().map((l) => l.msg)).toContain('second signal: exiting now');
    } finally {
      await node.stop();
    }
  });

  it('refuses a bad config with exit code 2, naming the field', async () => {
    const bad = await TroupeProcess.run(
      ['node', '--config', CONFIG],
      env('cli3', 'n1', { TROUPE_OPS_PORT: '99999' }),
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('ERR_INVALID_CONFIG: invalid config: ops.port (from TROUPE_OPS_PORT)');
    const missing = await TroupeProcess.run(
      ['node', '--config', 'test/ops/no-such-config.ts'],
      env('cli3', 'n1'),
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot load the config module test/ops/no-such-config.ts');
    const noFlag = await TroupeProcess.run(['node']);
    expect(noFlag.code).toBe(2);
    expect(noFlag.stderr).toContain("required option '-c, --config <module>' not specified");
  });

  it('has --help for every command', async () => {
    const help = await TroupeProcess.run(['node', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('TROUPE_NATS_URL');
  });
});
