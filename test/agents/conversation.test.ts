/**
 * An agent's conversation on the memory layer's persistent streams: `maxHistory` bounds what the
 * model sees and what a recovery keeps in memory, and a named agent that moves to another node
 * recovers its conversation there while its old activation's fence can no longer write.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ActorSystem,
  AgentProtocol,
  agent,
  type ChatMessage,
  createSystem,
  inMemoryJournal,
  scriptedModel,
} from '../../index.js';
import { inProcessNodes } from '../harness/in-process-nodes.js';

const systems: ActorSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.splice(0).map((s) => s.close()));
});

/** A model that answers with the users' messages it was sent, and remembers each request. */
function echo(): { model: ReturnType<typeof scriptedModel>; requests: ChatMessage[][] } {
  const requests: ChatMessage[][] = [];
  const model = scriptedModel({
    steps: [
      (request) => {
        requests.push([...request.messages]);
        const users = request.messages.filter((m) => m.role === 'user').map((m) => m.content);
        return `heard: ${users.join(' | ')}`;
      },
    ],
  });
  return { model, requests };
}

const contents = (messages: readonly { readonly content: string }[]) => messages.map((m) => m.content);

describe('maxHistory', () => {
  it('bounds the earlier runs the model sees, from a user message, and what a recovery keeps', async () => {
    const system = createSystem({ name: 'history', deadLetterLog: () => {} });
    systems.push(system);
    const journal = inMemoryJournal();
    const { model, requests } = echo();
    const writer = system.spawn(agent({ model, journal, maxHistory: 2 }), { name: 'writer' });
    for (const input of ['one', 'two', 'three']) await writer.ask('run', { input });
    expect(requests.map(contents)).toEqual([
      ['one'],
      ['one', 'heard: one', 'two'],
      ['two', 'heard: one | two', 'three'],
    ]);
    // The journal keeps every message; a new activation of the stream keeps the window only.
    expect(await journal.streamVersion('agent-writer')).toBe(9);
    const again = system.spawn(
      agent({ model, journal, maxHistory: 2, persistenceId: () => 'agent-writer' }),
      {
        name: 'again',
      },
    );
    expect(contents(await again.ask('history', {}))).toEqual(['three', 'heard: two | three']);
    expect(await again.ask('run', { input: 'four' })).toMatchObject({ ok: true, run: 'run-4' });
    expect(contents(requests.at(-1)!)).toEqual(['three', 'heard: two | three', 'four']);
  });

  it('with 0, starts every run afresh', async () => {
    const system = createSystem({ name: 'fresh', deadLetterLog: () => {} });
    systems.push(system);
    const { model, requests } = echo();
    const writer = system.spawn(agent({ model, maxHistory: 0 }), { name: 'writer' });
    for (const input of ['one', 'two']) await writer.ask('run', { input });
    expect(requests.map(contents)).toEqual([['one'], ['two']]);
  });
});

describe('a named agent', () => {
  it('moves to another node with its conversation; the old activation is fenced off', async () => {
    const journal = inMemoryJournal();
    const { model, requests } = echo();
    const { nodes, activations: started } = await inProcessNodes(
      'agents',
      ['a', 'b'],
      { writer: { behavior: agent({ model, journal }) } },
      systems,
    );
    const [a, b] = nodes as [ActorSystem, ActorSystem];
    expect(
      await a.actorOf('writer', 'ada', AgentProtocol).ask('run', { input: 'My name is Ada' }),
    ).toMatchObject({
      ok: true,
    });
    expect(started).toHaveLength(1);
    const first = started[0]!;
    const owner = first.node === 'a' ? a : b;
    const other = owner === a ? b : a;
    await owner.drain();
    const moved = other.actorOf('writer', 'ada', AgentProtocol);
    expect(await moved.ask('run', { input: 'Who am I?' })).toMatchObject({
      ok: true,
      run: 'run-2',
      output: 'heard: My name is Ada | Who am I?',
    });
    expect(started).toHaveLength(2);
    expect(started[1]).toMatchObject({ node: other.node });
    expect(started[1]!.fence).toBeGreaterThan(first.fence);
    expect(contents(requests.at(-1)!)).toEqual(['My name is Ada', 'heard: My name is Ada', 'Who am I?']);
    await expect(
      journal.append('agent-ada', [{ type: 'run-ended', data: { run: 'x', ok: true, steps: 0 } }], {
        fence: first.fence,
      }),
    ).rejects.toMatchObject({ code: 'ERR_FENCED' });
  });
});
