/**
 * One cluster node in its own process, for the multi-process tests. Started with
 * `node --import tsx node-process.ts <nats url> <cluster> <node> <heartbeatMs> [<postgres url>]`;
 * driven over IPC. With a Postgres URL it also hosts `bank` accounts: persistent named actors whose
 * deposits carry command ids.
 */
import { z } from 'zod';
import {
  ask,
  behavior,
  createNode,
  defineProtocol,
  natsTransport,
  persistentBehavior,
  postgresJournal,
  type SystemEvent,
  tell,
} from '../../index.js';

const [url, clusterName, node, heartbeat, journalUrl] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string | undefined,
];

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

export const Bank = defineProtocol('np.bank', {
  deposit: ask(z.object({ amount: z.number().int().positive(), commandId: z.string() }), z.number()),
  balance: ask(z.object({}), z.number()),
});

const journal =
  journalUrl === undefined
    ? undefined
    : await postgresJournal({ connectionString: journalUrl, prefix: 'np_' });
const bank =
  journal === undefined
    ? undefined
    : persistentBehavior({
        protocols: [Bank],
        journal,
        persistenceId: ({ name }) => `bank-${clusterName}-${name}`,
        initialState: () => 0,
        events: { deposited: z.object({ amount: z.number() }) },
        apply: { deposited: (balance, { amount }) => balance + amount },
        commands: {
          deposit: ({ amount }) => ({
            events: [{ type: 'deposited', data: { amount } }],
            reply: (balance) => balance,
          }),
          balance: () => ({ reply: (balance) => balance }),
        },
      });

const transport = await natsTransport({ servers: url });
const system = await createNode({
  name: clusterName,
  node,
  transport,
  kinds: bank === undefined ? { account } : { account, bank },
  heartbeatMs: Number(heartbeat),
  deadLetterLog: () => {},
});
const events: (SystemEvent & { wall: number })[] = [];
system.events$.subscribe((e) => {
  if (
    e.type.startsWith('member-') ||
    e.type.startsWith('activation-') ||
    e.type === 'dead-letter' ||
    e.type === 'supervisor-escalated' ||
    e.type === 'system-stopped'
  ) {
    const { body: _body, error, ...rest } = e as SystemEvent & { body?: unknown; error?: Error };
    // Bodies and errors are not sent over IPC whole: a key in a frame may not survive it.
    events.push({ ...rest, by: node, wall: Date.now(), error: error?.message } as unknown as SystemEvent & {
      wall: number;
    });
  }
});
const counter = system.spawn(account, { name: 'counter' });
// Whether the transport reaches NATS, as its cluster store hears it: tests wait on it for an outage.
let reachable = true;
(await transport.store!(clusterName)).status!((now) => {
  reachable = now;
});

type Command =
  | { id: number; cmd: 'tell'; to: string; by: number }
  | { id: number; cmd: 'ask'; to: string }
  | { id: number; cmd: 'deposit'; key: string; by: number }
  | { id: number; cmd: 'balance'; key: string; timeoutMs?: number }
  | { id: number; cmd: 'bank-deposit'; key: string; amount: number; commandId: string; timeoutMs: number }
  | { id: number; cmd: 'bank-balance'; key: string }
  | { id: number; cmd: 'status' }
  | { id: number; cmd: 'members' }
  | { id: number; cmd: 'join'; group: string }
  | { id: number; cmd: 'reachable' }
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
      case 'bank-deposit':
        return reply(
          await system
            .actorOf('bank', message.key, Bank)
            .ask(
              'deposit',
              { amount: message.amount, commandId: message.commandId },
              { timeoutMs: message.timeoutMs },
            ),
        );
      case 'bank-balance':
        return reply(await system.actorOf('bank', message.key, Bank).ask('balance', {}));
      case 'status':
        return reply(system.status.tag);
      case 'members':
        return reply(system.members());
      case 'join':
        // The node's counter joins a process group; the reply is its address.
        system.groups.join(message.group, counter);
        return reply(counter.address);
      case 'reachable':
        return reply(reachable);
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
