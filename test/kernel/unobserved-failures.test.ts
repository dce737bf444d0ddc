/**
 * While nobody subscribes to the event stream, failures are not silent: crashes, a top-level actor
 * stopped for good and a failed system are written to the log sink with the error's stack, each kind
 * up to `deadLetterLogLimit` lines and then one note. With a subscriber they are events only.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { behavior, createSystem, defineProtocol, supervisor, tell } from '../../index.js';
import { runScript } from '../harness/script.js';
import { closeSystemsAfterEach, track } from './helpers.js';

closeSystemsAfterEach();

const Work = defineProtocol('unobserved.work', { run: tell(z.object({})) });
const broken = behavior({
  protocols: [Work],
  handlers: {
    run: () => {
      (undefined as unknown as { length: number }).length; // a TypeError, as a real bug would throw
    },
  },
});

describe('failures nobody subscribes to', () => {
  it('writes each crash with its stack, then that the actor is stopped for good, within the limit', async () => {
    const lines: string[] = [];
    const system = track(
      createSystem({
        deadLetterLog: (line) => lines.push(line),
        deadLetterLogLimit: 3,
        supervision: { intensity: 4 },
      }),
    );
    const worker = system.spawn(broken, { name: 'worker' });
    for (let i = 0; i < 15; i++) worker.tell('run', {});
    await expect.poll(() => lines.some((l) => l.includes('stopped for good'))).toBe(true);
    const crashes = lines.filter((l) => l.includes('crashed handling "run"'));
    expect(crashes).toHaveLength(3);
    for (const line of crashes) {
      expect(line).toContain(
        `troupe: ${worker.address} crashed handling "run": TypeError: Cannot read properties of undefined`,
      );
      expect(line).toMatch(/\n\s+at .*unobserved-failures\.test\.ts/);
    }
    expect(lines).toContain('troupe: 3 crashes logged; further ones go only to subscribers of events$');
    const stopped = lines.find((l) => l.includes('stopped for good'))!;
    expect(stopped).toContain(
      `troupe: ${worker.address} is stopped for good: [ERR_RESTART_INTENSITY] TroupeError: `,
    );
    expect(stopped).toContain('caused by: TypeError: Cannot read properties of undefined');
  });

  it('writes that the system failed when a top-level supervisor gives up', async () => {
    const lines: string[] = [];
    const system = createSystem({ deadLetterLog: (line) => lines.push(line) });
    const pipeline = system.spawn(
      supervisor({ intensity: 1, periodMs: 60_000, children: [{ id: 'step', behavior: broken }] }),
      { name: 'pipeline' },
    );
    await pipeline.ask('whichChildren', {});
    const step = system.ref(`${pipeline.address}/step`, Work);
    step.tell('run', {});
    await expect.poll(() => lines.filter((l) => l.includes('crashed handling')).length).toBe(1);
    step.tell('run', {});
    expect(await system.closed()).toBeDefined();
    expect(lines.find((l) => l.includes(`${pipeline.address} crashed:`))).toContain('ERR_RESTART_INTENSITY');
    const failed = lines.find((l) => l.includes(`system "${system.name}" failed`));
    expect(failed).toContain('caused by: TypeError');
  });

  it('writes nothing while someone subscribes: the events carry the failures', async () => {
    const lines: string[] = [];
    const system = track(createSystem({ deadLetterLog: (line) => lines.push(line) }));
    const crashed: string[] = [];
    system.events$.subscribe((event) => {
      if (event.type === 'actor-crashed') crashed.push(event.address);
    });
    const worker = system.spawn(broken, { name: 'worker' });
    worker.tell('run', {});
    await expect.poll(() => crashed).toEqual([worker.address]);
    expect(lines).toEqual([]);
  });

  it('reaches stderr by default, in a program that subscribes to nothing', async () => {
    const result = await runScript(
      'unobserved',
      'crash',
      `import { z } from 'zod';
import { behavior, createSystem, defineProtocol, tell } from '../../index.js';
const Work = defineProtocol('work', { run: tell(z.object({})) });
const system = createSystem({ name: 'app' });
const worker = system.spawn(behavior({ protocols: [Work], handlers: { run: () => { JSON.parse('{'); } } }), { name: 'worker' });
worker.tell('run', {});
await system.drain();
`,
    );
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('troupe: troupe://app/local/worker crashed handling "run": SyntaxError:');
    expect(result.stderr).toMatch(/\n\s+at /);
  }, 90_000);
});
