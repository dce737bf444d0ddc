/**
 * One cluster node in its own process, for the multi-process tests. Started with
 * `node --import tsx node-process.ts <nats url> <cluster> <node> <heartbeatMs>`; driven over IPC.
 */
import { z } from 'zod';
import {
  ask,
  behavior,
  createNode,
  defineProtocol,
  natsTransport,
  type SystemEvent,
  tell,
} from '../../index.js';

const [url, clusterName, node, heartbeat] = process.argv.slice(2) as [string, string, string, string];

export const Counter = defineProtocol('np.counter', {
  add: tell(z.object({ by: z.number() })),
  get: ask(z.object({}), z.object({ total: z.number(), node: z.string() })),
});

/** Deposits handled here, per key, by whichever activation: summed over nodes, none may be lost. */
const handled: Record<string, number> = {};
const account = behavior({
  protocols: [Counter],
  initialState: () => 0,
  handlers: {
    add: ({ by }, ctx) => {
      ctx.state += by;
      handled[ctx.self.address] = (handled[ctx.self.address] ?? 0) + 1;
    },
    get: (_b, ctx) => ({ total: ctx.state, node: ctx.system.node }),
  },
});

const system = await createNode({
  name: clusterName,
  node,
  transport: await natsTransport({ servers: url }),
  kinds: { account },
  heartbeatMs: Number(heartbeat),
  deadLetterLog: () => {},
});
const events: (SystemEvent & { wall: number })[] = [];
system.events$.subscribe((e) => {
  if (e.type.startsWith('member-') || e.type.startsWith('activation-') || e.type === 'dead-letter') {
    events.push({ ...e, wall: Date.now() } as SystemEvent & { wall: number });
  }
});
system.spawn(account, { name: 'counter' });

type Command =
  | { id: number; cmd: 'tell'; to: string; by: number }
  | { id: number; cmd: 'ask'; to: string }
  | { id: number; cmd: 'deposit'; key: string; by: number }
  | { id: number; cmd: 'balance'; key: string; timeoutMs?: number }
  | { id: number; cmd: 'events' }
  | { id: number; cmd: 'handled' }
  | { id: number; cmd: 'drain' };

process.on('message', async (message: Command) => {
  const reply = (value: unknown) => process.send?.({ id: message.id, ok: true, value });
  const fail = (error: unknown) =>
    process.send?.({ id: message.id, ok: false, error: (error as { code?: string }).code ?? String(error) });
  try {
    switch (message.cmd) {
      case 'tell':
        system.ref(message.to, Counter).tell('add', { by: message.by });
        return reply(true);
      case 'ask':
        return reply(await system.ref(message.to, Counter).ask('get', {}));
      case 'deposit':
        system.actorOf('account', message.key, Counter).tell('add', { by: message.by });
        return reply(true);
      case 'balance':
        return reply(
          await system
            .actorOf('account', message.key, Counter)
            .ask('get', {}, { timeoutMs: message.timeoutMs ?? 5000 }),
        );
      case 'events':
        return reply(events);
      case 'handled':
        return reply(handled);
      case 'drain':
        await system.drain();
        reply(handled);
        setTimeout(() => process.exit(0), 50);
        return;
    }
  } catch (error) {
    fail(error);
  }
});
process.send?.({ ready: true });
