// persistent example: a notebook whose notes survive a restart of the process (no server needed)
import { z } from 'zod';
import { ask, createSystem, defineProtocol, persistentBehavior, pgliteJournal } from '../index.js';

const Notebook = defineProtocol('notebook', {
  write: ask(z.object({ text: z.string(), commandId: z.string() }), z.number()),
  count: ask(z.object({}), z.number()),
});

// Embedded Postgres (PGlite) in a directory: the same tables and SQL as the Postgres journal.
const journal = await pgliteJournal({ dataDir: process.argv[2] ?? '.troupe-data' });

const notebook = persistentBehavior({
  protocols: [Notebook],
  journal,
  persistenceId: ({ name }) => `notebook-${name}`,
  initialState: () => ({ notes: [] as string[] }),
  events: { written: z.object({ text: z.string() }) },
  apply: { written: (state, { text }) => ({ notes: [...state.notes, text] }) },
  commands: {
    // The event is durable before the reply; a command id seen before appends nothing again.
    write: ({ text }) => ({ events: [{ type: 'written', data: { text } }], reply: (s) => s.notes.length }),
    count: () => ({ reply: (s) => s.notes.length }),
  },
  snapshotEvery: 100,
});

const system = createSystem();
const ada = system.spawn(notebook, { name: 'ada' });
const before = await ada.ask('count', {});
const after = await ada.ask('write', { text: `run ${before + 1}`, commandId: `run-${before + 1}` });
console.log(`notes before this run: ${before}, after: ${after}`);
await system.drain();
await journal.close();
