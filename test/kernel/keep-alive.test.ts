/**
 * An await the runtime settles keeps the process alive until it settles: Node exits with code 13 when
 * the top-level await of a module is left pending with nothing to wait for, so a timer that settles a
 * promise someone awaits (an ask's timeout, the scripted model's latency, a model adapter's retry
 * wait) must hold the process. Each case runs as its own process, as a user's script would.
 */

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { closedPortUrl } from '../agents/wire-server.js';
import { repoRoot, runFile, runScript } from '../harness/script.js';

const run = (name: string, code: string, env?: NodeJS.ProcessEnv) =>
  runScript('keep-alive', name, code, { env });

describe('an awaited timer holds the process', () => {
  it('an ask on a handler that never settles ends in ERR_ASK_TIMEOUT, and the process exits normally', async () => {
    const result = await run(
      'ask-timeout',
      `import { z } from 'zod';
import { ask, behavior, createSystem, defineProtocol, TroupeError } from '../../index.js';
const Slow = defineProtocol('slow', { get: ask(z.object({}), z.string()) });
const system = createSystem({ name: 'app' });
const ref = system.spawn(behavior({ protocols: [Slow], handlers: { get: () => new Promise<string>(() => {}) } }), { name: 'slow' });
try {
  await ref.ask('get', {}, { timeoutMs: 500 });
  console.log('answered');
} catch (error) {
  console.log(TroupeError.is(error) ? error.code : String(error));
}
`,
    );
    expect(result, result.stderr).toMatchObject({ code: 0, stdout: 'ERR_ASK_TIMEOUT\n' });
  }, 90_000);

  it('an agent on a scripted model with latency answers its run', async () => {
    const result = await run(
      'scripted-latency',
      `import { agent, createSystem, scriptedModel } from '../../index.js';
const system = createSystem({ name: 'app' });
const writer = system.spawn(agent({ model: scriptedModel({ steps: ['hello'], latencyMs: 100 }) }), { name: 'writer' });
const outcome = await writer.ask('run', { input: 'Say hello' });
console.log(outcome.ok ? outcome.output : outcome.error.code);
`,
    );
    expect(result, result.stderr).toMatchObject({ code: 0, stdout: 'hello\n' });
  }, 90_000);

  it('a model adapter pointed at a closed port ends in its typed error after its retries', async () => {
    const result = await run(
      'closed-port',
      `import { openAIModel, TroupeError } from '../../index.js';
const model = openAIModel({ model: 'local', baseUrl: process.env.BASE_URL });
try {
  await model.complete({ messages: [{ role: 'user', content: 'Hello' }] });
  console.log('answered');
} catch (error) {
  console.log(TroupeError.is(error) ? error.code : String(error));
}
`,
      { BASE_URL: await closedPortUrl(), OPENAI_API_KEY: 'sk-test' },
    );
    expect(result, result.stderr).toMatchObject({ code: 0, stdout: 'ERR_MODEL_UNREACHABLE\n' });
  }, 90_000);
  it('the agents example on a provider at a closed port says why it failed', async () => {
    const result = await runFile(join(repoRoot, 'examples', 'agents.ts'), {
      env: { TROUPE_MODEL: 'openai:llama3.2', OPENAI_BASE_URL: `${await closedPortUrl()}/v1` },
    });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toContain('The planner failed: ERR_MODEL_UNREACHABLE: openai:llama3.2 ');
  }, 90_000);

  it('a drain that waits for a stuck handler ends at its deadline, and the process exits normally', async () => {
    const result = await run(
      'drain-deadline',
      `import { z } from 'zod';
import { behavior, createSystem, defineProtocol, tell } from '../../index.js';
const Stuck = defineProtocol('stuck', { go: tell(z.object({})) });
const system = createSystem({ name: 'app' });
system.spawn(behavior({ protocols: [Stuck], handlers: { go: () => new Promise<void>(() => {}) } }), { name: 'stuck' }).tell('go', {});
await system.drain({ timeoutMs: 300 });
console.log(system.status.tag);
`,
    );
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(result.stdout).toBe('stopped\n');
  }, 90_000);

  it('answered asks do not hold the process until their timeout', async () => {
    // The ask's timeout is far beyond the run's limit: a process held by it would be killed.
    const result = await runScript(
      'keep-alive',
      'answered',
      `import { z } from 'zod';
import { ask, behavior, createSystem, defineProtocol } from '../../index.js';
const Echo = defineProtocol('echo', { echo: ask(z.string(), z.string()) });
const system = createSystem({ name: 'app' });
const ref = system.spawn(behavior({ protocols: [Echo], handlers: { echo: (text) => text } }), { name: 'echo' });
console.log(await ref.ask('echo', 'hi', { timeoutMs: 3_600_000 }));
`,
      { timeoutMs: 30_000 },
    );
    expect(result, result.stderr).toMatchObject({ code: 0, signal: null, stdout: 'hi\n' });
  }, 90_000);
});
