/** Shared pieces of the primitives' tests: a protocol whose actors record what they get. */
import { z } from 'zod';
import { ask, behavior, defineProtocol, tell } from '../../index.js';

export const News = z.object({ n: z.number(), from: z.string().optional() });

export const Listener = defineProtocol('prim.listener', {
  news: tell(News),
  seen: ask(z.object({}), z.array(z.number())),
});

/** An actor that records the `n` of each `news` it gets; `seen` answers them in order. */
export const listener = behavior({
  protocols: [Listener],
  initialState: (): number[] => [],
  handlers: {
    news: ({ n }, ctx) => {
      ctx.state.push(n);
    },
    seen: (_b, ctx) => [...ctx.state],
  },
});

export const Work = defineProtocol('prim.work', {
  job: tell(z.object({ id: z.number() })),
  whoami: ask(z.object({ key: z.string().optional() }), z.string()),
  answer: ask(z.object({ q: z.string() }), z.string()),
  count: ask(z.object({}), z.number()),
});

/** Answers `whoami` with its name; `answer` per `mode`: reply, throw, or never answer. */
export function worker(name: string, mode: 'reply' | 'fail' | 'silent' = 'reply') {
  return behavior({
    protocols: [Work],
    initialState: () => 0,
    handlers: {
      job: (_b, ctx) => {
        ctx.state++;
      },
      whoami: () => name,
      count: (_b, ctx) => ctx.state,
      answer: ({ q }) => {
        if (mode === 'fail') throw new Error(`${name} cannot answer ${q}`);
        if (mode === 'silent') return new Promise<string>(() => {});
        return `${name}:${q}`;
      },
    },
  });
}
