import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { type ActorRef, ask, behavior, defineProtocol, type ExitReason, tell } from '../../index.js';
import { flushMicrotasks, settle } from '../../runtime/testkit/index.js';
import { closeSystemsAfterEach, gate, makeSystem } from './helpers.js';

closeSystemsAfterEach();

const Target = defineProtocol('w.target', {
  quit: tell(z.object({})),
  boom: tell(z.object({})),
  ping: ask(z.object({}), z.string()),
});
const target = behavior({
  protocols: [Target],
  handlers: {
    quit: (_b, ctx) => {
      void ctx.stop();
    },
    boom: () => {
      throw new Error('target failed');
    },
    ping: () => 'pong',
  },
});

const Watcher = defineProtocol('w.watcher', {
  watch: tell(z.object({ address: z.string() })),
  unwatch: tell(z.object({ address: z.string() })),
  watchHeld: tell(z.object({})),
  watchThenUnwatchHeld: tell(z.object({})),
});

interface Seen {
  ref: ActorRef;
  reason: ExitReason;
  /** Whether ctx.self worked inside the hook. */
  self: string;
}

/** Watches by address (looked up now) or the ref in `held`; records what `terminated` receives. */
function watcher(seen: Seen[], held: { ref?: ActorRef<any> } = {}) {
  return behavior({
    protocols: [Watcher],
    handlers: {
      watch: ({ address }, ctx) => ctx.watch(ctx.system.ref(address)),
      unwatch: ({ address }, ctx) => ctx.unwatch(ctx.system.ref(address)),
      watchHeld: (_b, ctx) => ctx.watch(held.ref!),
      watchThenUnwatchHeld: (_b, ctx) => {
        ctx.watch(held.ref!);
        ctx.unwatch(held.ref!);
      },
    },
    terminated: (ref, reason, ctx) => {
      seen.push({ ref, reason, self: ctx.self.address });
    },
  });
}

describe('watch', () => {
  it('delivers terminated with the ref and a shutdown reason when the target is stopped', async () => {
    const seen: Seen[] = [];
    const { system } = makeSystem();
    const t = system.spawn(target, { name: 't' });
    const w = system.spawn(watcher(seen), { name: 'w' });
    w.tell('watch', { address: t.address });
    await settle(system);
    expect(seen).toEqual([]);
    await system.stop(t);
    await settle(system);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.ref.address).toBe(t.address);
    expect(seen[0]!.reason).toEqual({ kind: 'shutdown' });
    expect(seen[0]!.self).toBe(w.address);
  });

  it('gives the reason normal when the target stops itself', async () => {
    const seen: Seen[] = [];
    const { system } = makeSystem();
    const t = system.spawn(target);
    const w = system.spawn(watcher(seen));
    w.tell('watch', { address: t.address });
    await settle(system);
    t.tell('quit', {});
    await settle(system);
    expect(seen.map((s) => s.reason)).toEqual([{ kind: 'normal' }]);
  });

  it('gives the reason crashed, with the error, when a target that is not restarted crashes', async () => {
    const seen: Seen[] = [];
    const { system } = makeSystem();
    const t = system.spawn(target, { restart: 'temporary' });
    const w = system.spawn(watcher(seen));
    w.tell('watch', { address: t.address });
    await settle(system);
    t.tell('boom', {});
    await settle(system);
    expect(seen).toHaveLength(1);
    const reason = seen[0]!.reason;
    expect(reason.kind).toBe('crashed');
    expect(reason.kind === 'crashed' && reason.error.message).toBe('target failed');
  });

  it('delivers nothing while a watched target crashes and is restarted', async () => {
    const seen: Seen[] = [];
    const { system } = makeSystem();
    const t = system.spawn(target);
    const w = system.spawn(watcher(seen));
    w.tell('watch', { address: t.address });
    await settle(system);
    t.tell('boom', {});
    await settle(system);
    expect(await t.ask('ping', {})).toBe('pong');
    expect(seen).toEqual([]);
  });

  it('delivers at once, with the reason it stopped, when watching a dead actor’s ref', async () => {
    const seen: Seen[] = [];
    const held: { ref?: ActorRef<any> } = {};
    const { system } = makeSystem();
    const t = system.spawn(target);
    held.ref = t;
    await system.stop(t);
    const w = system.spawn(watcher(seen, held));
    w.tell('watchHeld', {});
    await settle(system);
    expect(seen.map((s) => [s.ref.address, s.reason])).toEqual([[t.address, { kind: 'shutdown' }]]);
  });

  it('delivers at once, with the reason unknown, when watching an address no live actor has', async () => {
    const seen: Seen[] = [];
    const { system } = makeSystem();
    const w = system.spawn(watcher(seen));
    const ghost = 'troupe://troupe/local/ghost';
    w.tell('watch', { address: ghost });
    await settle(system);
    expect(seen.map((s) => [s.ref.address, s.reason])).toEqual([[ghost, { kind: 'unknown' }]]);
  });

  it('delivers to every watcher, once each', async () => {
    const seen: Seen[] = [];
    const { system } = makeSystem();
    const t = system.spawn(target);
    const w1 = system.spawn(watcher(seen), { name: 'w1' });
    const w2 = system.spawn(watcher(seen), { name: 'w2' });
    w1.tell('watch', { address: t.address });
    w1.tell('watch', { address: t.address });
    w2.tell('watch', { address: t.address });
    await settle(system);
    await system.stop(t);
    await settle(system);
    expect(seen.map((s) => s.self).sort()).toEqual([w1.address, w2.address]);
  });

  it('lets a parent watch its child', async () => {
    const Parent = defineProtocol('w.parent', {
      stopKid: tell(z.object({})),
      seen: ask(z.object({}), z.array(z.string())),
    });
    const parent = behavior({
      protocols: [Parent],
      initialState: () => ({ seen: [] as string[], kid: undefined as ActorRef<any> | undefined }),
      preStart: (ctx) => {
        ctx.state.kid = ctx.spawn(target, { name: 'kid' });
        ctx.watch(ctx.state.kid);
      },
      handlers: {
        stopKid: (_b, ctx) => {
          void ctx.stop(ctx.state.kid!);
        },
        seen: (_b, ctx) => ctx.state.seen,
      },
      terminated: (ref, reason, ctx) => {
        ctx.state.seen.push(`${ref.address}:${reason.kind}`);
      },
    });
    const { system } = makeSystem();
    const p = system.spawn(parent, { name: 'p' });
    p.tell('stopKid', {});
    await settle(system);
    expect(await p.ask('seen', {})).toEqual(['troupe://troupe/local/p/kid:shutdown']);
  });
});

describe('unwatch', () => {
  it('delivers nothing after unwatch', async () => {
    const seen: Seen[] = [];
    const { system } = makeSystem();
    const t = system.spawn(target);
    const w = system.spawn(watcher(seen));
    w.tell('watch', { address: t.address });
    w.tell('unwatch', { address: t.address });
    await settle(system);
    await system.stop(t);
    await settle(system);
    expect(seen).toEqual([]);
  });

  it('cancels a terminated not yet delivered for a dead actor watched and unwatched in one handler', async () => {
    const seen: Seen[] = [];
    const held: { ref?: ActorRef<any> } = {};
    const { system } = makeSystem();
    const t = system.spawn(target);
    held.ref = t;
    await system.stop(t);
    const w = system.spawn(watcher(seen, held));
    w.tell('watchThenUnwatchHeld', {});
    await settle(system);
    expect(seen).toEqual([]);
  });

  it('lets the watcher stop without the target’s later stop reaching it', async () => {
    const seen: Seen[] = [];
    const { system } = makeSystem();
    const t = system.spawn(target);
    const w = system.spawn(watcher(seen));
    w.tell('watch', { address: t.address });
    await settle(system);
    await system.stop(w);
    await system.stop(t);
    await settle(system);
    expect(seen).toEqual([]);
  });
});

describe('Terminated and the messages before it', () => {
  it('reaches the watcher after the messages the watched actor sent before it stopped', async () => {
    const Inbox = defineProtocol('w.inbox', {
      note: tell(z.object({ n: z.number() })),
      watchIt: tell(z.object({ address: z.string() })),
      hold: tell(z.object({})),
    });
    const held = gate();
    const Sender = defineProtocol('w.sender', { burst: tell(z.object({ to: z.string() })) });
    const log: string[] = [];
    const { system, events } = makeSystem();
    const inbox = system.spawn(
      behavior({
        protocols: [Inbox],
        handlers: {
          note: ({ n }) => {
            log.push(`note${n}`);
          },
          watchIt: ({ address }, ctx) => ctx.watch(ctx.system.ref(address)),
          // Busy while the notes and the notice arrive, so both wait in the watcher's queues.
          hold: () => held.promise,
        },
        terminated: () => {
          log.push('terminated');
        },
      }),
    );
    const sender = system.spawn(
      behavior({
        protocols: [Sender],
        handlers: {
          burst: ({ to }, ctx) => {
            const target = ctx.system.ref(to, Inbox);
            for (let n = 1; n <= 3; n++) target.tell('note', { n });
            void ctx.stop();
          },
        },
      }),
    );
    inbox.tell('watchIt', { address: sender.address });
    await settle(system);
    inbox.tell('hold', {});
    sender.tell('burst', { to: inbox.address });
    // The sender has sent its notes and stopped: notes and notice wait in the held watcher's queues.
    await vi.waitFor(() =>
      expect(events).toContainEqual(
        expect.objectContaining({ type: 'actor-stopped', address: sender.address }),
      ),
    );
    await flushMicrotasks();
    held.open();
    await settle(system);
    expect(log).toEqual(['note1', 'note2', 'note3', 'terminated']);
  });

  it('refuses watch() in a behaviour without a terminated hook, instead of dropping the notice', async () => {
    const Plain = defineProtocol('w.plain', { watchIt: ask(z.object({ address: z.string() }), z.string()) });
    const { system } = makeSystem();
    const other = system.spawn(target);
    const plain = system.spawn(
      behavior({
        protocols: [Plain],
        handlers: {
          watchIt: ({ address }, ctx) => {
            try {
              ctx.watch(ctx.system.ref(address));
              return 'watched';
            } catch (error) {
              return (error as { code: string }).code;
            }
          },
        },
      }),
    );
    expect(await plain.ask('watchIt', { address: other.address })).toBe('ERR_ILLEGAL_STATE');
  });
});
