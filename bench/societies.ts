/**
 * Society cases: a group chat of three scripted agents taking 1,000 turns round-robin next to a
 * LangGraph.js graph cycling the same three scripted nodes, and a contract-net round among 100 local
 * bidders next to the same asks made directly.
 */
import {
  agent,
  behavior,
  ContractorProtocol,
  contractNet,
  createSystem,
  groupChat,
  type ModelPort,
  maxTurns,
  scriptedModel,
} from '../index.js';
import type { BenchCase, BenchTools } from './remote.js';

const NAMES = ['ann', 'bob', 'cy'] as const;

export function societyCases(tools: BenchTools): BenchCase[] {
  const { quick } = tools;
  const rounds = quick ? 1 : 6;
  return [
    {
      name: 'society.groupchat.turns',
      unit: 'turns/s',
      goal: 'ratio >= 2',
      async run() {
        const turns = quick ? 200 : 1000;
        // One scripted model per participant, as each graph node calls its own.
        const models = Object.fromEntries(
          NAMES.map((name) => [name, scriptedModel({ name, steps: [`${name} agrees`] })]),
        ) as Record<(typeof NAMES)[number], ModelPort>;
        const system = createSystem({ name: 'bench-chat', devChecks: false, deadLetterLog: () => {} });
        // Each run starts afresh (maxHistory 0): the graph's nodes keep no memory of their own either.
        const participants = NAMES.map((name) => ({
          name,
          ref: system.spawn(agent({ model: models[name], maxHistory: 0 })),
        }));
        const chatOf = groupChat({ participants, termination: maxTurns(turns) });
        const troupe = async () => {
          const start = performance.now();
          const chat = system.spawn(chatOf);
          await chat.ask('start', { task: 'discuss' });
          const outcome = await chat.ask('outcome', {}, { timeoutMs: 120_000 });
          const rate = outcome.turns / ((performance.now() - start) / 1000);
          await system.stop(chat);
          return rate;
        };
        // Imported here: the other cases need not load it.
        const { Annotation, END, START, StateGraph } = await import('@langchain/langgraph');
        // LangGraph.js: a StateGraph whose three nodes call the same models in turn, appending to the
        // transcript (its documented reducer form), until 1,000 turns; no checkpointer.
        const State = Annotation.Root({
          transcript: Annotation<{ speaker: string; text: string }[]>({
            reducer: (left, right) => left.concat(right),
            default: () => [],
          }),
          task: Annotation<string>(),
        });
        const node = (name: (typeof NAMES)[number]) => async (state: typeof State.State) => {
          const last = state.transcript.at(-1);
          const input = last === undefined ? `Task: ${state.task}` : `${last.speaker}: ${last.text}`;
          const answer = await models[name].complete({ messages: [{ role: 'user', content: input }] });
          return { transcript: [{ speaker: name, text: answer.text }] };
        };
        const next = (state: typeof State.State) => (state.transcript.length >= turns ? END : 'continue');
        const graph = new StateGraph(State)
          .addNode('ann', node('ann'))
          .addNode('bob', node('bob'))
          .addNode('cy', node('cy'))
          .addEdge(START, 'ann')
          .addConditionalEdges('ann', next, { continue: 'bob', [END]: END })
          .addConditionalEdges('bob', next, { continue: 'cy', [END]: END })
          .addConditionalEdges('cy', next, { continue: 'ann', [END]: END })
          .compile();
        const langgraph = async () => {
          const start = performance.now();
          const final = await graph.invoke({ task: 'discuss' }, { recursionLimit: turns + 10 });
          return final.transcript.length / ((performance.now() - start) / 1000);
        };
        const [t, b, pairs] = await tools.sideBySide(troupe, langgraph, rounds);
        await system.close();
        return tools.result(
          this.name,
          this.unit,
          t,
          'LangGraph.js StateGraph, 3 scripted nodes',
          b,
          true,
          pairs,
          this.goal,
          (r) => r.ratio >= 2,
        );
      },
    },
    {
      name: 'society.contract-net.round',
      unit: 'ms/round',
      goal: 'reported',
      async run() {
        const bidders = 100;
        const perSample = quick ? 20 : 100;
        const system = createSystem({ name: 'bench-cnet', devChecks: false, deadLetterLog: () => {} });
        const members = Array.from({ length: bidders }, (_, i) =>
          system.spawn(
            behavior({
              protocols: [ContractorProtocol],
              handlers: {
                propose: () => ({ bid: true as const, cost: (i * 37) % 101 }),
                award: ({ price }) => ({ ok: true as const, result: price }),
              },
            }),
          ),
        );
        const troupe = async () => {
          const start = performance.now();
          for (let r = 0; r < perSample; r++) {
            const outcome = await contractNet({ system, members, task: { r }, round: `r${r}` });
            if (outcome.status !== 'awarded') throw new Error('no award');
          }
          return (performance.now() - start) / perSample;
        };
        // The same messages without the contract net: 100 proposals asked at once, the lowest found,
        // one award asked.
        const direct = async () => {
          const start = performance.now();
          for (let r = 0; r < perSample; r++) {
            const task = { r };
            const bids = await Promise.all(
              members.map((m) =>
                m.ask('propose', { round: `r${r}`, task, deadline: 0 }, { timeoutMs: 5000 }),
              ),
            );
            let best = 0;
            let cost = Number.POSITIVE_INFINITY;
            bids.forEach((bid, i) => {
              if (bid.bid && bid.cost < cost) {
                cost = bid.cost;
                best = i;
              }
            });
            await members[best]!.ask('award', { round: `r${r}`, task, price: cost });
          }
          return (performance.now() - start) / perSample;
        };
        const [t, b, pairs] = await tools.sideBySide(troupe, direct, rounds);
        await system.close();
        return tools.result(
          this.name,
          this.unit,
          t,
          'the same asks made directly',
          b,
          false,
          pairs,
          this.goal,
          () => true,
        );
      },
    },
  ];
}
