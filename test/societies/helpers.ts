/** Systems, scripted agents and stand-in participants for the society tests. */
import { afterEach } from 'vitest';
import {
  type ActorRef,
  type ActorSystem,
  AgentProtocol,
  agent,
  behavior,
  createSystem,
  type SystemEvent,
  scriptedModel,
} from '../../index.js';

const systems: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.splice(0).map((s) => s.close()));
});

/** A system closed after the test, with every event it published. */
export function testSystem(name = 'societies'): { system: ActorSystem; events: SystemEvent[] } {
  const system = createSystem({ name, deadLetterLog: () => {} });
  systems.push(system);
  const events: SystemEvent[] = [];
  system.events$.subscribe((e) => events.push(e));
  return { system, events };
}

/** An agent on the scripted model that answers each run with `answer(input)`; counts its runs. */
export function scriptedAgent(
  system: ActorSystem,
  name: string,
  answer: (input: string) => string,
): { ref: ActorRef<typeof AgentProtocol>; inputs: string[] } {
  const inputs: string[] = [];
  const model = scriptedModel({
    name,
    steps: [
      (request) => {
        const input = String(request.messages.at(-1)?.content ?? '');
        inputs.push(input);
        return answer(input);
      },
    ],
  });
  return { ref: system.spawn(agent({ model, maxHistory: 0 }), { name }), inputs };
}

/** An actor speaking the agent protocol whose `run` answers with `reply` (which may throw or never settle). */
export function runActor(
  system: ActorSystem,
  name: string,
  reply: (input: string) => string | Promise<string>,
): ActorRef<typeof AgentProtocol> {
  return system.spawn(
    behavior({
      protocols: [AgentProtocol],
      handlers: {
        run: async ({ input, runId }) => ({
          ok: true as const,
          run: runId ?? 'run',
          output: await reply(input),
          steps: 1,
          usage: { inputTokens: 1, outputTokens: 1 },
        }),
        history: () => [],
      },
    }),
    { name },
  );
}
