/** The actors the isolation bench runs in worker threads (a host imports this module by URL). */
import { z } from 'zod';
import { ask, behavior, defineProtocol, tell } from '../index.js';

export const Work = defineProtocol('bench.work', {
  add: tell(z.object({ n: z.number() })),
  get: ask(z.object({}), z.number()),
  fib: ask(z.object({ n: z.number() }), z.number()),
  /** Ends the host's thread at once (a crash the supervisor sees). */
  die: tell(z.object({})),
});

const fib = (n: number): number => (n < 2 ? n : fib(n - 1) + fib(n - 2));

export const worker = behavior({
  protocols: [Work],
  initialState: () => 0,
  handlers: {
    add: (_body, ctx) => {
      ctx.state++;
    },
    get: (_body, ctx) => ctx.state,
    fib: ({ n }) => fib(n),
    die: () => {
      process.exit(1);
    },
  },
});
