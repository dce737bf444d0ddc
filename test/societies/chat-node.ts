/**
 * One cluster node in its own process hosting named group chats (kind `chat`) and their participants
 * (kind `bot`: scripted agents), journaled on Postgres. Started with
 * `node --import tsx chat-node.ts <nats url> <cluster> <node> <heartbeatMs> <postgres url>`; driven over IPC.
 * Each bot answers with this node's id and a per-process count, so an answer taken twice would differ.
 */
import {
  AgentProtocol,
  agent,
  createNode,
  GroupChatProtocol,
  groupChat,
  maxTurns,
  natsTransport,
  postgresJournal,
  scriptedModel,
} from '../../index.js';

const [url, clusterName, node, heartbeat, journalUrl] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];

let answers = 0;
const model = scriptedModel({
  name: 'bot',
  // A little latency: the chat is mid-turn more often than not when its node is killed.
  latencyMs: 40,
  steps: [() => `${node}#${++answers}`],
});
const journal = await postgresJournal({ connectionString: journalUrl, prefix: 'gc_' });
const chat = groupChat({
  participants: ['ann', 'bob', 'cy'].map((name) => ({
    name,
    ref: (system) => system.actorOf('bot', name, AgentProtocol),
    turnTimeoutMs: 5000,
  })),
  journal,
  persistenceId: ({ name }) => `chat-${clusterName}-${name}`,
  termination: maxTurns(30),
});
const system = await createNode({
  name: clusterName,
  node,
  transport: await natsTransport({ servers: url }),
  kinds: { chat, bot: agent({ model, maxHistory: 0 }) },
  heartbeatMs: Number(heartbeat),
  deadLetterLog: () => {},
});
const activations: string[] = [];
system.events$.subscribe((e) => {
  if (e.type === 'activation-started') activations.push(e.address);
});

type Command =
  | { id: number; cmd: 'members' }
  | { id: number; cmd: 'activations' }
  | { id: number; cmd: 'start'; key: string; task: string }
  | { id: number; cmd: 'status'; key: string }
  | { id: number; cmd: 'transcript'; key: string };

process.on('message', async (message: Command) => {
  const reply = (value: unknown) => process.send?.({ id: message.id, ok: true, value });
  const fail = (error: unknown) =>
    process.send?.({ id: message.id, ok: false, error: (error as { code?: string }).code ?? String(error) });
  try {
    switch (message.cmd) {
      case 'members':
        return reply(system.members());
      case 'activations':
        return reply(activations);
      case 'start':
        return reply(
          await system.actorOf('chat', message.key, GroupChatProtocol).ask('start', { task: message.task }),
        );
      case 'status':
        return reply(
          await system.actorOf('chat', message.key, GroupChatProtocol).ask('status', {}, { timeoutMs: 2000 }),
        );
      case 'transcript':
        return reply(await system.actorOf('chat', message.key, GroupChatProtocol).ask('transcript', {}));
    }
  } catch (error) {
    fail(error);
  }
});
process.send?.({ ready: true });
