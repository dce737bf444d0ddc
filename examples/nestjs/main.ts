// nestjs example: a Nest service in front of agents. Node `agents` hosts a researcher and a writer
// (on scripted models: no key, no network). Node `api` is a Nest microservice: its TroupeModule provides
// the node, @InjectRef gives the controller the researcher, a TroupeClientProxy sends to the writer,
// and its TroupeServer makes the controller's @MessagePattern reachable from any node of the cluster.
// A third node, `desk`, asks the Nest service for a brief, then everything shuts down.
//
// Run: `npm run nestjs` (starts a private nats-server) or
// `npx tsx examples/nestjs/main.ts --nats nats://127.0.0.1:4222`.
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { Controller, Inject, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  type ClientProxy,
  ClientsModule,
  MessagePattern,
  Payload,
  RpcException,
} from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { z } from 'zod';
import {
  type ActorRef,
  type ActorSystem,
  AgentProtocol,
  agent,
  createNode,
  type ModelRequest,
  natsTransport,
  scriptedModel,
  TroupeError,
  tool,
} from '../../index.js';
import {
  InjectRef,
  NestPatterns,
  TroupeClientProxy,
  TroupeModule,
  TroupeServer,
} from '../../ops/nestjs/index.js';
import { NatsServer } from '../../test/harness/nats.js';

const { values: args } = parseArgs({ options: { nats: { type: 'string' } } });
const nats = args.nats === undefined ? await NatsServer.start() : undefined;
const servers = args.nats ?? nats!.url;

const NOTES: Record<string, string> = { tides: 'the moon and the sun pull the oceans, twice a day' };
const lookup = tool({
  name: 'lookup',
  description: 'Looks up the note on one topic',
  input: z.object({ topic: z.string() }),
  run: ({ topic }) => NOTES[topic] ?? `no note on ${topic}`,
});
const lastOf = (request: ModelRequest, role: string) =>
  [...request.messages].reverse().find((m) => m.role === role)?.content ?? '';

const node = async (id: string): Promise<ActorSystem> =>
  createNode({ name: 'newsroom', node: id, transport: await natsTransport({ servers }) });

// The agents' node.
const agents = await node('agents');
agents.spawn(
  agent({
    model: scriptedModel({
      name: 'scripted-researcher',
      steps: [
        (request) => ({ toolCalls: [{ name: 'lookup', arguments: { topic: lastOf(request, 'user') } }] }),
        (request) => `${lastOf(request, 'user')}: ${lastOf(request, 'tool')}`,
      ],
    }),
    tools: [lookup],
  }),
  { name: 'researcher' },
);
agents.spawn(
  agent({
    model: scriptedModel({ name: 'scripted-writer', steps: [(r) => `Brief. ${lastOf(r, 'user')}.`] }),
  }),
  { name: 'writer' },
);

// The Nest service, on its own node.
const api = await node('api');
const WRITER = 'WRITER';

@Controller()
class BriefController {
  constructor(
    @InjectRef('troupe://newsroom/agents/researcher', AgentProtocol)
    private readonly researcher: ActorRef<typeof AgentProtocol>,
    @Inject(WRITER) private readonly writer: ClientProxy,
  ) {}

  @MessagePattern('brief')
  async brief(@Payload() topic: string): Promise<string> {
    const research = await this.researcher.ask('run', { input: topic });
    if (!research.ok) throw new RpcException({ status: 'error', message: research.error.message });
    // The writer through Nest's client API: `send` is an ask to the agent.
    const written = await firstValueFrom(this.writer.send('run', { input: research.output }));
    return (written as { ok: true; output: string }).output;
  }
}

@Module({
  imports: [
    TroupeModule.forRoot({ system: api }),
    ClientsModule.register([
      {
        name: WRITER,
        customClass: TroupeClientProxy,
        options: { system: api, address: 'troupe://newsroom/agents/writer', protocol: AgentProtocol },
      },
    ]),
  ],
  controllers: [BriefController],
})
class NewsroomModule {}

const app = await NestFactory.createMicroservice(NewsroomModule, {
  strategy: new TroupeServer({ system: api, name: 'newsroom-api' }),
  logger: ['error', 'warn'],
});
await app.listen();

// Any node reaches the Nest handler through the gateway actor.
const desk = await node('desk');
const service = desk.ref('troupe://newsroom/api/newsroom-api', NestPatterns);
console.log(await service.ask('request', { pattern: 'brief', data: 'tides' }));
try {
  await service.ask('request', { pattern: 'no-such-pattern', data: 'x' });
} catch (error) {
  console.log(TroupeError.is(error) ? error.code : error);
}

await app.close(); // stops the gateway; the module drains the api node
await desk.drain();
await agents.drain();
await nats?.dispose();
