/**
 * The record of what a host runs, as its parent reads it: read from inside a handler (where a
 * blocked host would be), it names that actor and message; once the handler is over it names none.
 * Both forms: the shared memory of a worker host, and the control messages of a process host.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ask, behavior, createSystem, defineProtocol, tell } from '../../index.js';
import {
  type RunningHandler,
  RunningReader,
  runningMemory,
  runningRecorder,
} from '../../runtime/isolation/running.js';
import type { FromHost } from '../../runtime/isolation/wire.js';
import type { ActorSystemImpl } from '../../runtime/kernel/system.js';

const Probe = defineProtocol('test.probe', {
  look: ask(z.object({}), z.unknown()),
  note: tell(z.object({})),
  later: ask(z.object({}), z.unknown()),
});

let close: (() => Promise<void>) | undefined;
afterEach(() => close?.());

for (const form of ['worker', 'process'] as const) {
  describe(`the running record of a ${form} host`, () => {
    const setup = () => {
      const system = createSystem({ name: 'rec', deadLetterLog: () => {} }) as unknown as ActorSystemImpl;
      close = () => system.close();
      const reader = new RunningReader(form === 'worker' ? runningMemory() : undefined);
      const posted: FromHost[] = [];
      const recorder = runningRecorder(reader.memory, (message) => {
        posted.push(message);
        reader.control(message);
      });
      system.handlerProbe = recorder.probe;
      const seen: (RunningHandler | undefined)[] = [];
      const actor = behavior({
        protocols: [Probe],
        handlers: {
          look: () => reader.current(),
          note: () => {
            seen.push(reader.current());
          },
          later: async () => {
            await new Promise((resolve) => setImmediate(resolve));
            return reader.current();
          },
        },
      });
      const a = system.spawn(actor, { name: 'a' });
      const b = system.spawn(actor, { name: 'b' });
      return { system, reader, recorder, posted, seen, a, b };
    };

    it('names the actor and message whose handler runs, and none once it is over', async () => {
      const { reader, recorder, a, b, seen, posted } = setup();
      expect(await a.ask('look', {})).toEqual({ address: a.address, messageType: 'test.probe.look' });
      expect(await b.ask('look', {})).toEqual({ address: b.address, messageType: 'test.probe.look' });
      a.tell('note', {});
      b.tell('note', {});
      a.tell('note', {});
      await expect.poll(() => seen.length).toBe(3);
      // In the order the actors ran (a's two notes may share its turn).
      expect(seen.map((h) => h?.messageType)).toEqual(Array(3).fill('test.probe.note'));
      expect(seen.map((h) => h?.address).sort()).toEqual([a.address, a.address, b.address]);
      // Each name crossed once, however many messages.
      expect(posted.filter((m) => m.t === 'actor-name')).toHaveLength(2);
      expect(posted.filter((m) => m.t === 'type-name')).toHaveLength(2);
      // Idle: a worker clears its record at once, a process's record ends with its next heartbeat.
      if (form === 'process') {
        recorder.beat();
        reader.control({ t: 'beat' });
      }
      expect(reader.current()).toBeUndefined();
    });

    it('keeps naming an async handler while it is in progress', async () => {
      const { a } = setup();
      expect(await a.ask('later', {})).toEqual({ address: a.address, messageType: 'test.probe.later' });
    });
  });
}
