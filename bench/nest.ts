/**
 * `ops.nest.ask`: asks per second from a Nest `ClientProxy` over NATS, 64 in flight. Troupe's side is a
 * `TroupeClientProxy` on one node asking an actor on another node; the baseline is Nest's own NATS
 * transport (`ClientNats` to a Nest microservice on `ServerNats`, `@MessagePattern`). Both answer with
 * the same handler, both go through the same private nats-server, both run in this process (client
 * and server on their own NATS connections), interleaved round by round. Goal: ratio >= 1.
 */
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientNats, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { z } from 'zod';
import { type ActorSystem, ask, behavior, createNode, defineProtocol, natsTransport } from '../index.js';
import { TroupeClientProxy } from '../ops/nestjs/index.js';
import { NatsServer } from '../test/harness/nats.js';
import type { BenchCase, BenchTools } from './remote.js';

/** The one handler both sides run. */
const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

const Summer = defineProtocol('bench.nest.summer', {
  sum: ask(z.object({ values: z.array(z.number()) }), z.number()),
});

@Controller()
class SumController {
  @MessagePattern('sum')
  sum(@Payload() body: { values: number[] }): number {
    return sum(body.values);
  }
}

@Module({ controllers: [SumController] })
class SumModule {}

export function nestCases(tools: BenchTools): BenchCase[] {
  const { quick } = tools;
  const inFlight = 64;
  const total = quick ? 500 : 5000;
  const rounds = quick ? 1 : 10;
  return [
    {
      name: 'ops.nest.ask',
      unit: 'asks/s',
      goal: 'ratio >= 1',
      async run() {
        const server = await NatsServer.start();
        const nodes: ActorSystem[] = [];
        const node = async (id: string) => {
          const system = await createNode({
            name: 'bench-nest',
            node: id,
            transport: await natsTransport({ servers: server.url }),
            devChecks: false,
            deadLetterLog: () => {},
          });
          nodes.push(system);
          return system;
        };
        const callerNode = await node('caller');
        const actorNode = await node('actor');
        actorNode.spawn(behavior({ protocols: [Summer], handlers: { sum: ({ values }) => sum(values) } }), {
          name: 'summer',
        });
        const troupeClient = new TroupeClientProxy({
          system: callerNode,
          address: 'troupe://bench-nest/actor/summer',
          protocol: Summer,
        });

        const nestServer = await NestFactory.createMicroservice(SumModule, {
          transport: Transport.NATS,
          options: { servers: server.url },
          logger: false,
        });
        await nestServer.listen();
        const nestClient = new ClientNats({ servers: server.url });
        await nestClient.connect();

        const body = { values: [1, 2, 3, 4, 5, 6, 7, 8] };
        const rate =
          (client: { send(pattern: string, data: unknown): import('rxjs').Observable<unknown> }) =>
          async () => {
            let left = total;
            const worker = async () => {
              while (left-- > 0) {
                const reply = await lastValueFrom(client.send('sum', body));
                if (reply !== 36) throw new Error(`bench: wrong reply ${String(reply)}`);
              }
            };
            const start = performance.now();
            await Promise.all(Array.from({ length: inFlight }, worker));
            return total / ((performance.now() - start) / 1000);
          };
        try {
          const [t, b, pairs] = await tools.sideBySide(rate(troupeClient), rate(nestClient), rounds);
          return tools.result(
            this.name,
            this.unit,
            t,
            'Nest ClientNats + NATS server, same handler',
            b,
            true,
            pairs,
            this.goal,
            ({ ratio }) => ratio >= 1,
          );
        } finally {
          await nestClient.close();
          await nestServer.close();
          for (const system of nodes.reverse()) await system.close();
          await server.dispose();
        }
      },
    },
  ];
}
