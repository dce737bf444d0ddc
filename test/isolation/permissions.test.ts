/**
 * A process host under Node's permission model: it reads its own code and what it was granted, and
 * nothing else; a denied read crashes the handler like any error, and the actor goes on.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ActorRef, type ActorSystem, createSystem, startIsolated, TroupeError } from '../../index.js';
import { Calc } from './fixtures/protocols.js';

const module = new URL('./fixtures/calc.ts', import.meta.url);

describe('a process host with permissions', () => {
  let system: ActorSystem;
  let calc: ActorRef<typeof Calc>;
  const granted = mkdtempSync(join(tmpdir(), 'troupe-granted-'));
  const denied = mkdtempSync(join(tmpdir(), 'troupe-denied-'));
  writeFileSync(join(granted, 'note.txt'), 'granted');
  writeFileSync(join(denied, 'secret.txt'), 'secret');

  beforeAll(async () => {
    system = createSystem({ name: 'perm', deadLetterLog: () => {} });
    calc = await startIsolated(
      system,
      { protocols: [Calc], module, export: 'calculator' },
      { host: 'process', permissions: { fsRead: [granted] }, standby: false, name: 'calc' },
    );
  }, 90_000);
  afterAll(() => system.close());

  it('reads what it was granted', async () => {
    expect(await calc.ask('read', { path: join(granted, 'note.txt') })).toBe('granted');
  });

  it('is denied what it was not granted: the handler fails, the actor restarts and answers', async () => {
    await expect(calc.ask('read', { path: join(denied, 'secret.txt') })).rejects.toSatisfy(
      (e) => TroupeError.is(e, 'ERR_ACTOR_CRASHED') && /restricted|ACCESS_DENIED/.test(e.message),
    );
    await expect(calc.ask('read', { path: '/etc/passwd' })).rejects.toSatisfy((e) =>
      TroupeError.is(e, 'ERR_ACTOR_CRASHED'),
    );
    expect(await calc.ask('fib', { n: 12 })).toBe(144);
  });
});
