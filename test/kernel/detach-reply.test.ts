/**
 * `detachReply(ctx)`: a handler hands the reply of its ask to code outside the actor, and the actor
 * goes on with its next messages while that ask waits (a gateway to another framework).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  behavior,
  createNode,
  defineProtocol,
  inProcessNetwork,
  TroupeError,
  tell,
} from '../../index.js';
import { type DetachedReply, detachReply } from '../../runtime/internal.js';
import { SimulatedClock } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, makeSystem, rejection } from './helpers.js';

closeSystemsAfterEach();

const Gateway = defineProtocol('dr.gateway', {
  request: ask(z.object({ id: z.string() }), z.string()),
  note: tell(z.object({ text: z.string() })),
  count: ask(z.object({}), z.number()),
  crashAfterDetach: ask(z.object({}), z.string()),
  twice: ask(z.object({}), z.string()),
});

/** Parks every request's reply in `parked`; answers `count` at once. */
function gateway(parked: Map<string, DetachedReply>) {
  return behavior({
    protocols: [Gateway],
    initialState: () => 0,
    handlers: {
      request: ({ id }, ctx) => {
        ctx.state++;
        parked.set(id, detachReply(ctx));
        // Not the reply: the handle answers.
        return 'ignored';
      },
      note: (_b, ctx) => {
        detachReply(ctx);
      },
      count: (_b, ctx) => ctx.state,
      crashAfterDetach: (_b, ctx) => {
        parked.set('crash', detachReply(ctx));
        throw new Error('after detaching');
      },
      twice: (_b, ctx) => {
        parked.set('twice', detachReply(ctx));
        detachReply(ctx);
        return 'unreachable';
      },
    },
  });
}

describe('detachReply', () => {
  it('lets the actor handle its next messages while detached asks wait, answered in any order', async () => {
    const { system } = makeSystem();
    const parked = new Map<string, DetachedReply>();
    const ref = system.spawn(gateway(parked));
    const first = ref.ask('request', { id: 'a' });
    const second = ref.ask('request', { id: 'b' });
    // The mailbox is not held by the two pending asks.
    await expect(ref.ask('count', {})).resolves.toBe(2);
    expect(parked.get('a')!.settled).toBe(false);
    parked.get('b')!.resolve('reply b');
    parked.get('a')!.resolve('reply a');
    await expect(second).resolves.toBe('reply b');
    await expect(first).resolves.toBe('reply a');
    expect(parked.get('a')!.settled).toBe(true);
  });

  it('fails an ask with the error the handle rejects with', async () => {
    const { system } = makeSystem();
    const parked = new Map<string, DetachedReply>();
    const ref = system.spawn(gateway(parked));
    const pending = ref.ask('request', { id: 'x' });
    await expect.poll(() => parked.has('x')).toBe(true);
    parked.get('x')!.reject(new TroupeError('ERR_RPC', 'the remote handler refused'));
    const error = await rejection(pending);
    expect(error.code).toBe('ERR_RPC');
  });

  it('leaves a detached ask to its timeout, and a reply after it to the dead letters', async () => {
    const clock = new SimulatedClock();
    const { system, dead } = makeSystem({ clock });
    const parked = new Map<string, DetachedReply>();
    const ref = system.spawn(gateway(parked));
    const pending = ref.ask('request', { id: 'late' }, { timeoutMs: 100 });
    await expect.poll(() => parked.has('late')).toBe(true);
    clock.advance(100);
    expect((await rejection(pending)).code).toBe('ERR_ASK_TIMEOUT');
    expect(parked.get('late')!.settled).toBe(true);
    parked.get('late')!.resolve('too late');
    expect(dead.map((d) => [d.reason, d.body])).toContainEqual(['expired', 'too late']);
  });

  it('does not fail a detached ask when the handler crashes after detaching', async () => {
    const { system } = makeSystem();
    const parked = new Map<string, DetachedReply>();
    const ref = system.spawn(gateway(parked));
    const pending = ref.ask('crashAfterDetach', {});
    await expect.poll(() => parked.has('crash')).toBe(true);
    // The actor restarted (transient, after a crash) and still answers.
    await expect(ref.ask('count', {})).resolves.toBe(0);
    parked.get('crash')!.resolve('answered by the handle');
    await expect(pending).resolves.toBe('answered by the handle');
  });

  it('refuses outside the handler of an ask, and a second detach of one ask', async () => {
    const { system, events } = makeSystem();
    const parked = new Map<string, DetachedReply>();
    const ref = system.spawn(gateway(parked));
    ref.tell('note', { text: 'hi' });
    // The second detach throws: the handler crashed, and the detached ask stays with its handle.
    const twice = ref.ask('twice', {});
    const crashes = () =>
      events.flatMap((e) => (e.type === 'actor-crashed' ? [(e.error as TroupeError).code] : []));
    await expect.poll(crashes).toHaveLength(2);
    expect(crashes()).toEqual(['ERR_ILLEGAL_STATE', 'ERR_ILLEGAL_STATE']);
    parked.get('twice')!.resolve('once');
    await expect(twice).resolves.toBe('once');
  });

  it('checks a detached reply against the reply schema when the actor validates every message', async () => {
    const { system } = makeSystem();
    const parked = new Map<string, DetachedReply>();
    const ref = system.spawn(gateway(parked), { validate: 'always' });
    const pending = ref.ask('request', { id: 'bad' });
    await expect.poll(() => parked.has('bad')).toBe(true);
    parked.get('bad')!.resolve(42);
    expect((await rejection(pending)).code).toBe('ERR_VALIDATION');
  });
});

describe('detachReply across nodes', () => {
  const open: ActorSystem[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  it('sends a detached reply, or its error code, back to the asking node', async () => {
    const network = inProcessNetwork();
    const a = await createNode({
      name: 'dr',
      node: 'a',
      transport: network.transport(),
      deadLetterLog: () => {},
    });
    const b = await createNode({
      name: 'dr',
      node: 'b',
      transport: network.transport(),
      deadLetterLog: () => {},
    });
    open.push(a, b);
    const parked = new Map<string, DetachedReply>();
    b.spawn(gateway(parked), { name: 'gw' });
    const ref = a.ref('troupe://dr/b/gw', Gateway);
    const ok = ref.ask('request', { id: 'r1' });
    const failed = ref.ask('request', { id: 'r2' });
    await expect.poll(() => parked.size).toBe(2);
    parked.get('r2')!.reject(new TroupeError('ERR_RPC', 'refused over there'));
    parked.get('r1')!.resolve('from b');
    await expect(ok).resolves.toBe('from b');
    const error = await rejection(failed);
    expect(error.code).toBe('ERR_RPC');
    expect(error.message).toContain('refused over there');
  });
});
