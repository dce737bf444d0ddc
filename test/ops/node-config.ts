/**
 * The config module the `troupe node` tests start nodes from: a named `greeter` kind (it answers
 * with the node that hosts it), and a supervised `app` with a `worker` that crashes on demand, and a
 * top-level `sleeper` that, with TROUPE_TEST_HOLD_DRAIN=1, is busy for ever so that a drain waits.
 */
import { z } from 'zod';
import { ask, behavior, defineProtocol, tell } from '../../index.js';
import { defineNodeConfig } from '../../ops/index.js';
import { supervisor } from '../../supervisors/index.js';

export const Greeter = defineProtocol('ops-test.greeter', {
  greet: ask(z.object({ n: z.number() }), z.object({ n: z.number(), node: z.string(), count: z.number() })),
});
export const greeter = behavior({
  protocols: [Greeter],
  initialState: () => 0,
  handlers: {
    greet: ({ n }, ctx) => {
      ctx.state += 1;
      return { n, node: ctx.system.node, count: ctx.state };
    },
  },
});

/** A node's front door to the named greeters: what a client without kinds asks. */
export const Front = defineProtocol('ops-test.front', {
  greet: ask(
    z.object({ key: z.string(), n: z.number() }),
    z.object({ n: z.number(), node: z.string(), count: z.number() }),
  ),
});
const front = behavior({
  protocols: [Front],
  handlers: {
    greet: ({ key, n }, ctx) => ctx.system.actorOf('greeter', key, Greeter).ask('greet', { n }),
  },
});

export const Worker = defineProtocol('ops-test.worker', {
  crash: tell(z.object({ why: z.string() })),
  hold: tell(z.object({})),
});
const worker = behavior({
  protocols: [Worker],
  handlers: {
    crash: ({ why }) => {
      throw new Error(why);
    },
    // Keeps its mailbox busy until the process ends: a drain then waits its whole timeout.
    hold: () => new Promise<void>(() => {}),
  },
});

export default defineNodeConfig({
  kinds: { greeter },
  setup: (system, { env }) => {
    system.spawn(greeter, { name: 'hello' });
    system.spawn(front, { name: 'front' });
    system.spawn(
      supervisor({
        strategy: 'one_for_one',
        children: [{ id: 'worker', behavior: worker }],
      }),
      { name: 'app' },
    );
    if (env.TROUPE_TEST_HOLD_DRAIN === '1') {
      system.spawn(worker, { name: 'sleeper' }).tell('hold', {});
    }
  },
});
