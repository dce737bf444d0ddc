/**
 * Three cluster nodes on one machine against one NATS and one Postgres, showing named actors move
 * when a node is killed, and keep their state: a cart is a persistent named actor, its items events
 * in the journal, so the node that takes a cart over recovers it from them. Each node is a process
 * of its own; this one drives them and prints where each cart lives and how many items it holds.
 *
 * Run: `npm run cluster` (starts a private nats-server and Postgres) or
 * `npx tsx examples/cluster.ts --nats nats://127.0.0.1:4222 --database postgres://... --duration 15`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import {
  ask,
  createNode,
  defineProtocol,
  natsTransport,
  persistentBehavior,
  postgresJournal,
  type SqlJournal,
  tell,
} from '../index.js';
import { NatsServer } from '../test/harness/nats.js';
import { PostgresServer } from '../test/harness/postgres.js';

const Cart = defineProtocol('shop.cart', {
  add: tell(z.object({ item: z.string() })),
  show: ask(z.object({}), z.object({ items: z.array(z.string()), node: z.string() })),
});

/**
 * A cart: a named actor (one activation per cart id in the whole cluster) whose items are events in
 * the journal, appended with its activation's fencing token before it handles the next message.
 */
const cart = (journal: SqlJournal, run: string) =>
  persistentBehavior({
    protocols: [Cart],
    journal,
    persistenceId: ({ name }) => `cart-${run}-${name}`,
    initialState: () => ({ items: [] as string[] }),
    events: { added: z.object({ item: z.string() }) },
    apply: { added: (state, { item }) => ({ items: [...state.items, item] }) },
    commands: {
      add: ({ item }) => ({ events: [{ type: 'added', data: { item } }] }),
      show: (_b, ctx) => ({ reply: (state) => ({ items: state.items, node: ctx.system.node }) }),
    },
  });

const { values: args } = parseArgs({
  options: {
    node: { type: 'string' },
    nats: { type: 'string' },
    database: { type: 'string' },
    run: { type: 'string' },
    duration: { type: 'string', default: '14' },
  },
});

if (args.node !== undefined) {
  // ---- A node process ----
  const journal = await postgresJournal({ connectionString: args.database!, prefix: 'cluster_demo_' });
  const system = await createNode({
    name: 'shop',
    node: args.node,
    transport: await natsTransport({ servers: args.nats! }),
    kinds: { cart: cart(journal, args.run!) },
    deadLetterLog: () => {},
  });
  process.on('message', async (message: { id: number; cart: string; item?: string }) => {
    const ref = system.actorOf('cart', message.cart, Cart);
    try {
      if (message.item !== undefined) ref.tell('add', { item: message.item });
      const shown = await ref.ask('show', {}, { timeoutMs: 500 });
      process.send?.({ id: message.id, node: shown.node, items: shown.items.length });
    } catch (error) {
      process.send?.({ id: message.id, error: (error as { code?: string }).code ?? String(error) });
    }
  });
  process.send?.({ ready: true });
} else {
  // ---- The driver ----
  const durationMs = Number(args.duration) * 1000;
  if (!(durationMs > 0)) {
    console.error('usage: cluster [--nats <url>] [--database <postgres url>] [--duration <seconds>]');
    process.exit(2);
  }
  const server = args.nats === undefined ? await NatsServer.start() : undefined;
  const url = args.nats ?? server!.url;
  const database = args.database === undefined ? await PostgresServer.start() : undefined;
  const databaseUrl = args.database ?? database!.url;
  // The carts of this run have streams of their own, so runs against one database start empty.
  const run = Date.now().toString(36);
  const ids = ['node-a', 'node-b', 'node-c'];
  const children = new Map<string, ChildProcess>();
  let nextId = 0;
  const waiting = new Map<number, (reply: { node?: string; items?: number; error?: string }) => void>();
  for (const id of ids) {
    const child = fork(
      import.meta.filename,
      ['--node', id, '--nats', url, '--database', databaseUrl, '--run', run],
      {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    child.on('message', (m: { id?: number; node?: string; items?: number; error?: string }) => {
      if (m.id !== undefined) waiting.get(m.id)?.(m);
    });
    await new Promise((resolve) => child.once('message', resolve));
    children.set(id, child);
  }
  console.log(
    `3 nodes up against ${url}, carts journaled in Postgres; heartbeat 1 s, a node is down after 3 missed beats.\n`,
  );
  await new Promise((r) => setTimeout(r, 2000));

  const carts = ['cart-1', 'cart-2', 'cart-3', 'cart-4', 'cart-5', 'cart-6'];
  const call = (via: string, cartId: string, item?: string) =>
    new Promise<{ node?: string; items?: number; error?: string }>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      children.get(via)!.send({ id, cart: cartId, ...(item === undefined ? {} : { item }) });
    });

  const started = Date.now();
  let killed: string | undefined;
  let tick = 0;
  while (Date.now() - started < durationMs) {
    const via = ids.find((id) => id !== killed)!;
    const rows = await Promise.all(carts.map((c) => call(via, c, `item-${tick}`)));
    const line = rows
      .map((r, i) =>
        r.node === undefined
          ? `${carts[i]}@(${r.error === 'ERR_ASK_TIMEOUT' ? 'waiting' : r.error})`
          : `${carts[i]}@${r.node}:${r.items}`,
      )
      .join('  ');
    console.log(`${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s  ${line}`);
    if (killed === undefined && Date.now() - started > 4000) {
      const counts = new Map<string, number>();
      for (const r of rows) if (r.node !== undefined) counts.set(r.node, (counts.get(r.node) ?? 0) + 1);
      killed = [...counts].sort((x, y) => y[1] - x[1])[0]![0];
      children.get(killed)!.kill('SIGKILL');
      console.log(
        `\n        kill -9 ${killed}: its carts re-activate on the survivors once it is declared down,\n` +
          "        recovered from their events (the number after each node is the cart's items)\n",
      );
    }
    tick++;
    await new Promise((r) => setTimeout(r, 700));
  }
  await Promise.all(
    [...children]
      .filter(([id]) => id !== killed)
      .map(([, child]) => new Promise((resolve) => child.once('exit', resolve).kill('SIGTERM'))),
  );
  await server?.dispose();
  await database?.dispose();
  console.log(
    `\nDone. The carts of ${killed ?? 'no node'} moved and kept their items: each is recovered from its events in the journal.`,
  );
  process.exit(0);
}
