/**
 * The other node of the remote benchmarks, in its own process: a Troupe node with a sink/echo actor,
 * and a plain nats.js subscriber doing the same work for the baseline. Started by bench/remote.ts.
 */
import { connect } from '@nats-io/transport-node';
import { createNode, natsTransport } from '../index.js';
import { peerBehavior } from './remote-protocol.js';

const url = process.argv[2];
if (url === undefined) throw new Error('usage: remote-peer.ts <nats url>');

const system = await createNode({
  name: 'bench',
  node: 'peer',
  transport: await natsTransport({ servers: url }),
  devChecks: false,
  mailbox: { capacity: 1_000_000 },
  deadLetterLog: () => {},
});
system.spawn(peerBehavior, { name: 'sink' });

// The baseline: the same work with nats.js alone.
const nc = await connect({ servers: url });
let seen = 0;
let target = 0;
nc.subscribe('raw.tell', {
  callback: () => {
    if (++seen === target) nc.publish('raw.done');
  },
});
nc.subscribe('raw.arm', {
  callback: (_error, msg) => {
    seen = 0;
    target = Number(new TextDecoder().decode(msg.data));
    msg.respond();
  },
});
nc.subscribe('raw.echo', {
  callback: (_error, msg) => {
    msg.respond(msg.data);
  },
});
await nc.flush();

process.on('message', async (message) => {
  if (message !== 'exit') return;
  await nc.close();
  await system.close();
  process.exit(0);
});
process.send?.('ready');
