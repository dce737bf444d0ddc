// embedding example
import { z } from 'zod';
import { ask, behavior, createSystem, defineProtocol, tell } from '../index.js';

// A protocol: the schemas are the single source of truth; handler and ref types are inferred from them.
const Notes = defineProtocol('notes', {
  add: tell(z.object({ text: z.string() })),
  recall: ask(z.object({ about: z.string() }), z.array(z.string())),
});

// A behaviour: initial state plus one handler per message, run one message at a time.
const notetaker = behavior({
  protocols: [Notes],
  initialState: () => ({ notes: [] as string[] }),
  handlers: {
    add: ({ text }, ctx) => {
      ctx.state.notes.push(text);
    },
    recall: ({ about }, ctx) => ctx.state.notes.filter((note) => note.includes(about)),
  },
});

const system = createSystem({ name: 'embedded' });
const notes = system.spawn(notetaker, { name: 'notes' });

notes.tell('add', { text: 'actors handle one message at a time' });
notes.tell('add', { text: 'supervisors restart crashed actors' });
const found = await notes.ask('recall', { about: 'actors' });
console.log(`recalled ${found.length} notes: ${found.join(' | ')}`);

await system.drain();
