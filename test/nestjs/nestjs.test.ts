/**
 * `troupe/nestjs` with real Nest applications (@nestjs/testing) and nodes over a real, private
 * nats-server: the module (DI of the system and of refs, drain on shutdown), the server strategy
 * (Nest handlers reached from Troupe refs on another node), the client proxy (Nest sending to Troupe
 * actors), errors and bad input.
 */
import 'reflect-metadata';
import { Controller, Inject, Injectable, Module } from '@nestjs/common';
import {
  type ClientProxy,
  ClientsModule,
  Ctx,
  EventPattern,
  MessagePattern,
  Payload,
  RpcException,
} from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { firstValueFrom, lastValueFrom, type Observable, of } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ActorRef,
  type ActorSystem,
  ask,
  behavior,
  createNode,
  defineProtocol,
  natsTransport,
  sleep,
  TroupeError,
  tell,
} from '../../index.js';
import {
  InjectRef,
  NestPatterns,
  refToken,
  TROUPE_SYSTEM,
  TroupeClientProxy,
  type TroupeContext,
  TroupeModule,
  TroupeServer,
} from '../../ops/nestjs/index.js';
import { NatsServer } from '../harness/nats.js';

const Counter = defineProtocol('nest.counter', {
  add: tell(z.object({ by: z.number() })),
  get: ask(z.object({}), z.number()),
  fail: ask(z.object({}), z.number()),
  slow: ask(z.object({ ms: z.number() }), z.string()),
  traceOf: ask(z.object({}), z.string()),
});

const counter = behavior({
  protocols: [Counter],
  initialState: () => 0,
  handlers: {
    add: ({ by }, ctx) => {
      ctx.state += by;
    },
    get: (_b, ctx) => ctx.state,
    fail: () => {
      throw new Error('the counter refuses');
    },
    traceOf: (_b, ctx) => ctx.trace?.traceparent ?? 'none',
    slow: async ({ ms }) => {
      // A handler that takes a while (the work under test), not a wait before an assertion.
      await sleep(ms);
      return 'slow';
    },
  },
});

const MathProtocol = defineProtocol('nest.math', {
  sum: ask(z.object({ values: z.array(z.number()) }), z.number()),
  audit: tell(z.object({ entry: z.string() })),
});

let nats: NatsServer;
const open: ActorSystem[] = [];
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  nats = await NatsServer.start();
});
afterAll(async () => {
  await nats?.dispose();
});
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await Promise.all(open.splice(0).map((s) => s.close()));
});

let clusters = 0;
/** Two nodes of a new cluster on the test's nats-server. */
async function twoNodes(): Promise<{ cluster: string; a: ActorSystem; b: ActorSystem }> {
  const cluster = `nest${++clusters}`;
  const make = async (node: string) => {
    const system = await createNode({
      name: cluster,
      node,
      transport: await natsTransport({ servers: nats.url }),
      deadLetterLog: () => {},
    });
    open.push(system);
    return system;
  };
  return { cluster, a: await make('a'), b: await make('b') };
}

describe('TroupeModule', () => {
  it('provides the system and injected refs to Nest, and drains the system when the application closes', async () => {
    const { cluster, a, b } = await twoNodes();
    b.spawn(counter, { name: 'counter' });
    const address = `troupe://${cluster}/b/counter`;

    @Injectable()
    class Tally {
      constructor(
        @InjectRef(address, Counter) readonly counter: ActorRef<typeof Counter>,
        @Inject(TROUPE_SYSTEM) readonly system: ActorSystem,
      ) {}
      async bump(by: number): Promise<number> {
        this.counter.tell('add', { by });
        return this.counter.ask('get', {});
      }
    }

    // forRoot after the class is decorated, the usual order (a root module's file imports its
    // providers first); the test below covers the other order.
    const moduleRef = await Test.createTestingModule({
      imports: [TroupeModule.forRoot({ system: a })],
      providers: [Tally],
    }).compile();
    await moduleRef.init();
    const tally = moduleRef.get(Tally);
    expect(tally.system).toBe(a);
    await expect(tally.bump(2)).resolves.toBe(2);
    await expect(tally.bump(3)).resolves.toBe(5);
    expect(moduleRef.get(refToken(address, Counter)).address).toBe(address);

    await moduleRef.close();
    expect(a.status.tag).toBe('stopped');
    await expect(a.closed()).resolves.toBeUndefined();
    expect(b.status.tag).toBe('running');
  });

  it('makes the node from options a factory gives (forRootAsync), with the factory’s injected providers', async () => {
    const cluster = `nest${++clusters}`;
    const helper = await createNode({
      name: cluster,
      node: 'helper',
      transport: await natsTransport({ servers: nats.url }),
      deadLetterLog: () => {},
    });
    open.push(helper);
    helper.spawn(counter, { name: 'counter' });
    const address = `troupe://${cluster}/helper/counter`;

    const CONFIG = 'CONFIG';
    @Module({ providers: [{ provide: CONFIG, useValue: { servers: nats.url } }], exports: [CONFIG] })
    class ConfigModule {}

    @Injectable()
    class Reader {
      constructor(@InjectRef(address, Counter) readonly counter: ActorRef<typeof Counter>) {}
    }

    const moduleRef = await Test.createTestingModule({
      imports: [
        TroupeModule.forRootAsync({
          imports: [ConfigModule],
          inject: [CONFIG],
          useFactory: async (config: { servers: string }) => ({
            system: {
              name: cluster,
              node: 'web',
              transport: await natsTransport({ servers: config.servers }),
              deadLetterLog: () => {},
            },
            drainTimeoutMs: 1000,
          }),
        }),
      ],
      providers: [Reader],
    }).compile();
    await moduleRef.init();
    const made = moduleRef.get<ActorSystem>(TROUPE_SYSTEM);
    expect(made.node).toBe('web');
    const reader = moduleRef.get(Reader);
    reader.counter.tell('add', { by: 7 });
    await expect.poll(() => reader.counter.ask('get', {})).toBe(7);
    await moduleRef.close();
    expect(made.status.tag).toBe('stopped');
  });

  it('injects a ref whose @InjectRef runs after forRoot made the module', async () => {
    const { cluster, a, b } = await twoNodes();
    b.spawn(counter, { name: 'late' });
    const module = TroupeModule.forRoot({ system: a, drainOnShutdown: false });
    // Decorated after forRoot: its provider is added to the module forRoot already returned.
    @Injectable()
    class Late {
      constructor(@InjectRef(`troupe://${cluster}/b/late`, Counter) readonly ref: ActorRef<typeof Counter>) {}
    }
    const moduleRef = await Test.createTestingModule({ imports: [module], providers: [Late] }).compile();
    closers.push(() => moduleRef.close());
    await expect(moduleRef.get(Late).ref.ask('get', {})).resolves.toBe(0);
  });

  it('leaves a given system running with drainOnShutdown: false', async () => {
    const { a } = await twoNodes();
    const moduleRef = await Test.createTestingModule({
      imports: [TroupeModule.forRoot({ system: a, drainOnShutdown: false })],
    }).compile();
    await moduleRef.init();
    await moduleRef.close();
    expect(a.status.tag).toBe('running');
  });

  it('refuses bad options with ERR_INVALID_OPTION', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return TroupeError.is(error) ? error.code : String(error);
      }
      return 'no error';
    };
    expect(code(() => TroupeModule.forRoot(null as never))).toBe('ERR_INVALID_OPTION');
    expect(code(() => TroupeModule.forRoot({} as never))).toBe('ERR_INVALID_OPTION');
    expect(code(() => TroupeModule.forRoot({ system: { name: 'x' }, drainTimeoutMs: -1 }))).toBe(
      'ERR_INVALID_OPTION',
    );
    expect(code(() => TroupeModule.forRootAsync({} as never))).toBe('ERR_INVALID_OPTION');
    expect(code(() => InjectRef('troupe://x/y/z', {} as never))).toBe('ERR_INVALID_OPTION');
  });
});

/** The Nest side of the server tests: math handlers, an event log, an error, a stream. */
function mathController(events: string[]) {
  @Controller()
  class MathController {
    @MessagePattern('sum')
    sum(@Payload() body: { values: number[] }, @Ctx() ctx: TroupeContext): number {
      expect(ctx.getPattern()).toBe('sum');
      return body.values.reduce((a, b) => a + b, 0);
    }

    @EventPattern('audit')
    // Nest types an event handler's other parameters as unknown.
    audit(@Payload() body: { entry: string }, @Ctx() context: unknown): void {
      const ctx = context as TroupeContext;
      events.push(`${body.entry} from ${ctx.getSender() ?? 'outside'}`);
    }

    @MessagePattern({ cmd: 'double' })
    double(@Payload() n: number): Observable<number> {
      // A stream: the ask's reply is its last value.
      return of(n, n * 2);
    }

    @MessagePattern('refuse')
    refuse(): never {
      throw new RpcException({ status: 'error', message: 'not today', reason: 'closed' });
    }

    @MessagePattern('explode')
    explode(): never {
      throw new Error('a bug in the handler');
    }

    @MessagePattern('wait')
    async wait(@Payload() ms: number): Promise<string> {
      // A Nest handler that takes a while (the work under test), not a wait before an assertion.
      await sleep(ms);
      return `waited ${ms}`;
    }
  }
  return MathController;
}

async function nestServer(
  system: ActorSystem,
  controller: new (...args: never[]) => unknown,
  server: TroupeServer,
) {
  const moduleRef = await Test.createTestingModule({ controllers: [controller] }).compile();
  const app = moduleRef.createNestMicroservice({ strategy: server, logger: false });
  await app.listen();
  closers.push(() => app.close());
  void system;
  return app;
}

describe('TroupeServer', () => {
  it('makes message and event patterns reachable from Troupe refs on another node', async () => {
    const { cluster, a, b } = await twoNodes();
    const events: string[] = [];
    const server = new TroupeServer({ system: a, name: 'math', protocols: [MathProtocol] });
    await nestServer(a, mathController(events), server);
    expect(server.address).toBe(`troupe://${cluster}/a/math`);

    const math = b.ref(`troupe://${cluster}/a/math`, MathProtocol);
    await expect(math.ask('sum', { values: [1, 2, 3] })).resolves.toBe(6);
    math.tell('audit', { entry: 'checked' });
    await expect.poll(() => events).toEqual(['checked from outside']);

    // Any pattern, through the generic protocol; an object pattern as in Nest.
    const nest = b.ref(`troupe://${cluster}/a/math`, NestPatterns);
    await expect(nest.ask('request', { pattern: { cmd: 'double' }, data: 21 })).resolves.toBe(42);
    nest.tell('event', { pattern: 'audit', data: { entry: 'generic' } });
    await expect.poll(() => events).toContain('generic from outside');
  });

  it('answers each request when its handler is done, without holding back the others', async () => {
    const { cluster, a, b } = await twoNodes();
    await nestServer(a, mathController([]), new TroupeServer({ system: a, name: 'math' }));
    const nest = b.ref(`troupe://${cluster}/a/math`, NestPatterns);
    const order: string[] = [];
    const slow = nest.ask('request', { pattern: 'wait', data: 300 }).then((r) => order.push(String(r)));
    const fast = nest.ask('request', { pattern: 'wait', data: 1 }).then((r) => order.push(String(r)));
    await Promise.all([slow, fast]);
    expect(order).toEqual(['waited 1', 'waited 300']);
  });

  it('turns an RpcException into ERR_RPC, other exceptions into ERR_RPC with Nest’s message, bad input into typed errors', async () => {
    const { cluster, a, b } = await twoNodes();
    await nestServer(
      a,
      mathController([]),
      new TroupeServer({ system: a, name: 'math', protocols: [MathProtocol] }),
    );
    const nest = b.ref(`troupe://${cluster}/a/math`, NestPatterns);
    const math = b.ref(`troupe://${cluster}/a/math`, MathProtocol);
    const failure = async (promise: Promise<unknown>) => {
      try {
        await promise;
      } catch (error) {
        if (TroupeError.is(error)) return error;
      }
      throw new Error('expected a TroupeError');
    };

    const refused = await failure(nest.ask('request', { pattern: 'refuse', data: {} }));
    expect(refused.code).toBe('ERR_RPC');
    expect(refused.message).toContain('not today');
    // Across nodes the remote details are under `cause` (see ERR_REMOTE's wire format).
    expect(refused.details).toMatchObject({ cause: { pattern: 'refuse', error: { reason: 'closed' } } });

    const exploded = await failure(nest.ask('request', { pattern: 'explode', data: {} }));
    expect(exploded.code).toBe('ERR_RPC');
    expect(exploded.message).toContain('Internal server error');

    // The node checks bodies against the protocol before a handler sees them.
    const invalid = await failure(math.ask('sum', { values: ['one'] } as never));
    expect(invalid.code).toBe('ERR_VALIDATION');
    const noPattern = await failure(nest.ask('request', { data: 1 } as never));
    expect(noPattern.code).toBe('ERR_VALIDATION');
    const unknown = await failure(nest.ask('request', { pattern: 'nobody', data: 1 }));
    expect(unknown.code).toBe('ERR_UNKNOWN_MESSAGE');
  });

  it('refuses to start when a message of a typed protocol has no handler of its kind', async () => {
    const { a } = await twoNodes();
    const Extra = defineProtocol('nest.extra', { missing: ask(z.object({}), z.number()) });
    const moduleRef = await Test.createTestingModule({ controllers: [mathController([])] }).compile();
    const app = moduleRef.createNestMicroservice({
      strategy: new TroupeServer({ system: a, protocols: [Extra] }),
      logger: false,
    });
    closers.push(() => app.close());
    await expect(app.listen()).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });

  it('honours Nest serializers and deserializers', async () => {
    const { cluster, a, b } = await twoNodes();
    const server = new TroupeServer({
      system: a,
      name: 'math',
      deserializer: {
        deserialize: (value: { pattern: string; data: unknown }) => ({
          ...value,
          data: { values: value.data },
        }),
      },
      serializer: {
        serialize: (packet: { response?: unknown }) => ({
          ...packet,
          response: `total ${String(packet.response)}`,
        }),
      },
    });
    await nestServer(a, mathController([]), server);
    const nest = b.ref(`troupe://${cluster}/a/math`, NestPatterns);
    await expect(nest.ask('request', { pattern: 'sum', data: [4, 5] })).resolves.toBe('total 9');
  });
});

describe('TroupeClientProxy', () => {
  const TROUPE = 'TROUPE_CLIENT';

  async function nestClient(system: ActorSystem, address: string, extra: Record<string, unknown> = {}) {
    @Injectable()
    class Caller {
      constructor(@Inject(TROUPE) readonly client: ClientProxy) {}
    }
    const moduleRef = await Test.createTestingModule({
      imports: [
        ClientsModule.register([
          { name: TROUPE, customClass: TroupeClientProxy, options: { system, address, ...extra } },
        ]),
      ],
      providers: [Caller],
    }).compile();
    await moduleRef.init();
    closers.push(() => moduleRef.close());
    return moduleRef.get(Caller).client;
  }

  it('asks (send) and tells (emit) a Troupe actor on another node', async () => {
    const { cluster, a, b } = await twoNodes();
    const ref = b.spawn(counter, { name: 'counter' });
    const client = await nestClient(a, `troupe://${cluster}/b/counter`, { protocol: Counter });
    await lastValueFrom(client.emit('add', { by: 4 }));
    await expect.poll(() => ref.ask('get', {})).toBe(4);
    await expect(firstValueFrom(client.send('get', {}))).resolves.toBe(4);
  });

  it('continues the caller’s trace: a traceparent in the packet metadata is the message’s trace context', async () => {
    const { cluster, a, b } = await twoNodes();
    b.spawn(counter, { name: 'counter' });
    const client = await nestClient(a, `troupe://${cluster}/b/counter`, { protocol: Counter });
    await expect(firstValueFrom(client.send('traceOf', {}))).resolves.toBe('none');
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    client.setOnDispatchHook((packet) => {
      packet.metadata = { traceparent };
    });
    await expect(firstValueFrom(client.send('traceOf', {}))).resolves.toBe(traceparent);
  });

  it('gives Nest error objects with the Troupe code: a crash, bad data, an unknown pattern, a timeout', async () => {
    const { cluster, a, b } = await twoNodes();
    b.spawn(counter, { name: 'counter' });
    const client = await nestClient(a, `troupe://${cluster}/b/counter`, {
      protocol: Counter,
      timeoutMs: 100,
    });
    const error = (o: Observable<unknown>) =>
      firstValueFrom(o).then(
        () => {
          throw new Error('expected an error');
        },
        (e: unknown) => e as { status: string; code: string; message: string },
      );
    expect(await error(client.send('fail', {}))).toMatchObject({
      status: 'error',
      code: 'ERR_ACTOR_CRASHED',
    });
    expect(await error(client.send('slow', { ms: 'soon' }))).toMatchObject({ code: 'ERR_VALIDATION' });
    expect(await error(client.send('add', { by: 1 }))).toMatchObject({ code: 'ERR_UNKNOWN_MESSAGE' });
    expect(await error(client.emit('add', { by: 'one' }))).toMatchObject({ code: 'ERR_VALIDATION' });
    expect(await error(client.send('slow', { ms: 2000 }))).toMatchObject({ code: 'ERR_ASK_TIMEOUT' });
  });

  it('reaches a Nest application through Troupe: client proxy to server strategy, RpcException included', async () => {
    const { cluster, a, b } = await twoNodes();
    await nestServer(
      a,
      mathController([]),
      new TroupeServer({ system: a, name: 'math', protocols: [MathProtocol] }),
    );
    const client = await nestClient(b, `troupe://${cluster}/a/math`, { protocol: MathProtocol });
    await expect(firstValueFrom(client.send('sum', { values: [2, 3] }))).resolves.toBe(5);
    const untyped = await nestClient(b, `troupe://${cluster}/a/math`);
    await expect(
      firstValueFrom(untyped.send('request', { pattern: 'refuse', data: {} })),
    ).rejects.toMatchObject({
      status: 'error',
      code: 'ERR_RPC',
      message: expect.stringContaining('not today'),
    });
  });

  it('refuses bad options with ERR_INVALID_OPTION and a bad address with ERR_INVALID_ADDRESS', async () => {
    const { a } = await twoNodes();
    expect(() => new TroupeClientProxy({ system: undefined as never, address: 'troupe://x/y/z' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    expect(() => new TroupeClientProxy({ system: a, address: 'troupe://x/y/z', timeoutMs: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    expect(() => new TroupeClientProxy({ system: a, address: 'not an address' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ADDRESS' }),
    );
  });
});
