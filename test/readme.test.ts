import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, '.tmp', 'readme');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** Every ```ts block of the README, in order. */
const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
const EMBEDDING_MARK = '// embedding example';

/** Writes the blocks as modules inside the repo, so `troupe` resolves through tsconfig `paths`. */
function writeBlocks(): string[] {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  return blocks.map((code, i) => {
    const file = join(outDir, `block-${i + 1}.ts`);
    writeFileSync(file, code);
    return file;
  });
}

describe('README', () => {
  it('has the embedding example, identical to examples/embedding.ts but for the import path', () => {
    const marked = blocks.filter((code) => code.includes(EMBEDDING_MARK));
    expect(marked).toHaveLength(1);
    const example = readFileSync(join(root, 'examples', 'embedding.ts'), 'utf8');
    expect(marked[0]!.replaceAll("from 'troupe'", "from '../index.js'")).toBe(example);
  });

  it('has only code blocks that type-check against the repository tsconfig', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    const files = writeBlocks();
    const configPath = join(root, 'tsconfig.json');
    const { config, error } = ts.readConfigFile(configPath, ts.sys.readFile);
    expect(error).toBeUndefined();
    const { options } = ts.parseJsonConfigFileContent(config, ts.sys, root, undefined, configPath);
    const program = ts.createProgram(files, { ...options, noEmit: true });
    const diagnostics = ts.getPreEmitDiagnostics(program);
    if (diagnostics.length > 0) {
      const text = ts.formatDiagnostics(diagnostics, {
        getCanonicalFileName: (f) => f,
        getCurrentDirectory: () => root,
        getNewLine: () => '\n',
      });
      console.error(`README code blocks (written to ${relative(root, outDir)}) do not type-check:\n${text}`);
    }
    expect(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
  }, 120_000);

  it('runs the embedding example', async () => {
    const index = blocks.findIndex((code) => code.includes(EMBEDDING_MARK));
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, `embedding-${index + 1}.ts`);
    writeFileSync(file, blocks[index]!);
    const { stdout } = await promisify(execFile)('npx', ['tsx', file], { cwd: root, timeout: 60_000 });
    expect(stdout).toBe(
      'recalled 2 notes: actors handle one message at a time | supervisors restart crashed actors\n',
    );
  }, 90_000);

  it('runs the scripted model example and the stopping example as they say', async () => {
    const run = async (marker: string) => {
      const index = blocks.findIndex((code) => code.includes(marker));
      expect(index, marker).toBeGreaterThanOrEqual(0);
      mkdirSync(outDir, { recursive: true });
      const file = join(outDir, `run-${index + 1}.ts`);
      writeFileSync(file, blocks[index]!);
      return (await promisify(execFile)('npx', ['tsx', file], { cwd: root, timeout: 60_000 })).stdout;
    };
    expect(await run('scriptedModel({')).toBe('Found it. tides: the moon and the sun pull the oceans\n');
    expect(await run('await system.stop(second)')).toBe('');
  }, 120_000);

  it('has the persistent example, identical to examples/persistent.ts, and its state survives a restart', async () => {
    const marked = blocks.filter((code) => code.includes('// persistent example'));
    expect(marked).toHaveLength(1);
    const example = readFileSync(join(root, 'examples', 'persistent.ts'), 'utf8');
    expect(marked[0]!.replaceAll("from 'troupe'", "from '../index.js'")).toBe(example);
    const dir = mkdtempSync(join(tmpdir(), 'troupe-readme-'));
    try {
      const run = async () =>
        (
          await promisify(execFile)('npx', ['tsx', 'examples/persistent.ts', join(dir, 'db')], {
            cwd: root,
            timeout: 60_000,
          })
        ).stdout;
      expect(await run()).toBe('notes before this run: 0, after: 1\n');
      // A new process, the same directory: the note is still there.
      expect(await run()).toBe('notes before this run: 1, after: 2\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('runs the agents example on the scripted model: a plan, two researchers routed, a piece', async () => {
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'examples/agents.ts'], {
      cwd: root,
      timeout: 60_000,
      env: { ...process.env, TROUPE_MODEL: '' },
    });
    expect(stdout).toBe(
      'The sea moves. tides: the moon and the sun pull the oceans, twice a day; currents: winds, the spin of the earth and salt drive them.\n6 model calls, 570 tokens\n',
    );
  }, 90_000);

  it('runs the NestJS example: a Nest service in front of agents on another node, and it ends', async () => {
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'examples/nestjs/main.ts'], {
      cwd: root,
      timeout: 60_000,
    });
    expect(stdout).toBe(
      'Brief. tides: the moon and the sun pull the oceans, twice a day.\nERR_UNKNOWN_MESSAGE\n',
    );
  }, 90_000);

  it('runs the society example: a contract net per topic, a vote, a writer, and a saga that compensates, then publishes', async () => {
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'examples/society.ts'], {
      cwd: root,
      timeout: 60_000,
      env: { ...process.env, TROUPE_MODEL: '' },
    });
    const lines = stdout.split('\n').map((line) => line.replace(/^\[ *\d+ ms\] /, ''));
    expect(lines).toContain('planner: tides, currents, waves');
    // Each topic goes to the researcher that bid lowest; the one that knows nothing of it refuses.
    expect(lines.filter((l) => l.startsWith('contract net '))).toEqual([
      expect.stringMatching(/: 2 bids, 1 refusals, awarded to ada at 3$/),
      expect.stringMatching(/: 2 bids, 1 refusals, awarded to bo at 2$/),
      expect.stringMatching(/: 2 bids, 1 refusals, awarded to cy at 4$/),
    ]);
    expect(lines).toContain('vote: 3 ballots, winner tides');
    expect(lines).toContain('saga publish-1: notify failed (ERR_STEP_FAILED)');
    // Compensations in reverse order of completion, then the second attempt goes through.
    expect(lines.filter((l) => l.startsWith('  undo: '))).toEqual([
      '  undo: unpublish post-42',
      '  undo: release slot-9am',
    ]);
    expect(lines).toContain('saga publish-2 done');
    expect(lines.at(-2)).toMatch(/^done: 3 topics, lead "tides", 17 calls, /);
  }, 90_000);

  it('runs the demo (the first command) to the end by itself: agents answer, a tree and restarts on screen', async () => {
    const { stdout } = await promisify(execFile)(
      'npx',
      ['tsx', 'examples/demo.ts', '--duration', '2', '--seed', '7'],
      { cwd: root, timeout: 60_000 },
    );
    expect(stdout).toMatch(/restarts=[1-9]/);
    expect(stdout).toContain('System drained and stopped cleanly.');
    // A shop of agents: research agents opened under the sessions supervisor, and their answers.
    expect(stdout).toMatch(/[1-9]\d* answers from agents/);
    expect(stdout).toMatch(/[1-9]\d* research agents opened/);
    // The time it reports and the events' times are read on one clock: no event after the end.
    const finished = Number(/Demo finished after ([\d.]+) s/.exec(stdout)?.[1]);
    const stamps = [...stdout.matchAll(/^\s+(\d+\.\d{3})s\s/gm)].map((m) => Number(m[1]));
    expect(stamps.length).toBeGreaterThan(0);
    expect(Math.max(...stamps)).toBeLessThanOrEqual(finished + 0.05);
  }, 90_000);

  it("prints the demo's usage and exits with 2 for an unknown option, without a stack trace", async () => {
    const result = await promisify(execFile)('npx', ['tsx', 'examples/demo.ts', '--bogus'], {
      cwd: root,
      timeout: 60_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Unknown option '--bogus'");
    expect(result.stderr).toContain('usage: npm run demo -- [--duration <seconds>] [--seed <integer>]');
    expect(result.stderr).not.toMatch(/^\s+at /m);
  }, 90_000);

  it('gives a command that runs the demo and one that runs every test, the latter also in .ci/run', () => {
    expect(readme).toContain('npm install && npm run demo');
    expect(readme).toContain('npm install && npm test');
    const ci = readFileSync(join(root, '.ci', 'run'), 'utf8');
    expect(ci).toMatch(/^npm install && npm test$/m);
  });

  it("runs the cluster example: a killed node's carts come back on the survivors with their items", async () => {
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'examples/cluster.ts', '--duration', '10'], {
      cwd: root,
      timeout: 90_000,
    });
    const killed = /kill -9 (node-[abc])/.exec(stdout)?.[1];
    expect(killed, stdout).toBeDefined();
    const [before, after] = [
      stdout.slice(0, stdout.indexOf('kill -9')),
      stdout.slice(stdout.indexOf('kill -9')),
    ];
    const lines = after.split('\n').filter((l) => l.includes('cart-1@'));
    const last = lines.at(-1)!;
    expect(last, stdout).not.toContain('waiting');
    expect(last, stdout).not.toContain(`@${killed}`);
    expect(last.match(/cart-\d@node-[abc]/g), stdout).toHaveLength(6);
    // Each cart of the killed node holds, once it has moved, every item it held before.
    const items = (text: string, cart: string, node: string) =>
      [...text.matchAll(new RegExp(`${cart}@${node}:(\\d+)`, 'g'))].map((m) => Number(m[1]));
    const moved = [...before.matchAll(new RegExp(`(cart-\\d)@${killed}:`, 'g'))].map((m) => m[1]!);
    expect(moved.length, stdout).toBeGreaterThan(0);
    for (const cart of new Set(moved)) {
      const held = items(before, cart, killed!).at(-1)!;
      const recovered = items(after, cart, 'node-[abc]')[0];
      expect(recovered, `${cart} in\n${stdout}`).toBeGreaterThanOrEqual(held);
    }
    expect(stdout.trimEnd().split('\n').at(-1)).toBe(
      `Done. The carts of ${killed} moved and kept their items: each is recovered from its events in the journal.`,
    );
  }, 120_000);
});
