/** The protocol of the remote benchmarks' peer actor. */
import { z } from 'zod';
import { ask, behavior, defineProtocol, tell } from '../index.js';

export const Peer = defineProtocol('bench.peer', {
  /** A 64-byte body: `{"p":"xxx..."}`. */
  hit: tell(z.object({ p: z.string() })),
  /** Counts the next `n` hits, then tells `done` to `notify`. */
  arm: ask(z.object({ n: z.number(), notify: z.string() }), z.boolean()),
  echo: ask(z.object({ p: z.string() }), z.object({ p: z.string() })),
});

export const Waiter = defineProtocol('bench.waiter', { done: tell(z.object({})) });

export const peerBehavior = behavior({
  protocols: [Peer],
  initialState: () => ({ seen: 0, target: 0, notify: '' }),
  handlers: {
    hit: (_b, ctx) => {
      if (++ctx.state.seen === ctx.state.target) ctx.system.ref(ctx.state.notify, Waiter).tell('done', {});
    },
    arm: ({ n, notify }, ctx) => {
      ctx.state = { seen: 0, target: n, notify };
      return true;
    },
    echo: (body) => body,
  },
});
