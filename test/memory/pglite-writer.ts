/**
 * A process that writes notes into a notebook on a PGlite directory, for the lock test:
 * `pglite-writer.ts <dataDir> <writer> <notes> [hold]`. It prints `ack <n>` for each acknowledged note
 * and then `count <n>`; with `hold` it keeps the directory open until its stdin ends. A refused open
 * prints the error's code.
 */
import { z } from 'zod';
import {
  ask,
  createSystem,
  defineProtocol,
  persistentBehavior,
  pgliteJournal,
  TroupeError,
} from '../../index.js';

const [dataDir, writer, notes, hold] = process.argv.slice(2);

const Notebook = defineProtocol('notebook', {
  write: ask(z.object({ text: z.string(), commandId: z.string() }), z.number()),
  count: ask(z.object({}), z.number()),
});

let journal: Awaited<ReturnType<typeof pgliteJournal>>;
try {
  journal = await pgliteJournal({ dataDir: dataDir!, notice: false });
} catch (error) {
  // A lock refusal by its code; a directory it may not use by its message, which names the path.
  console.log(TroupeError.is(error, 'ERR_JOURNAL_LOCKED') ? error.code : (error as Error).message);
  process.exit(0);
}
const notebook = persistentBehavior({
  protocols: [Notebook],
  journal,
  persistenceId: () => 'notebook',
  initialState: () => ({ notes: 0 }),
  events: { written: z.object({ text: z.string() }) },
  apply: { written: (state) => ({ notes: state.notes + 1 }) },
  commands: {
    write: ({ text }) => ({ events: [{ type: 'written', data: { text } }], reply: (s) => s.notes }),
    count: () => ({ reply: (s) => s.notes }),
  },
});
const system = createSystem();
const book = system.spawn(notebook, { name: 'book' });
for (let i = 1; i <= Number(notes); i++) {
  await book.ask('write', { text: `${writer} ${i}`, commandId: `${writer}-${i}` }, { timeoutMs: 30_000 });
  console.log(`ack ${i}`);
}
console.log(`count ${await book.ask('count', {})}`);
if (hold === 'hold') {
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('end', resolve));
}
await system.drain();
await journal.close();
