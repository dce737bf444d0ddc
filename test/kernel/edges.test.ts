/** Edge cases of the kernel that fit no single topic: timer ticks against a full mailbox, lookups, routes, stash across a crash. */
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type ActorSystem,
  ask,
  behavior,
  createSystem,
  type DeadLetterEvent,
  defineProtocol,
  tell,
} from '../../index.js';
import { flushMicrotasks, SimulatedClock, settle } from '../../runtime/testkit/index.js';

const Tick = defineProtocol('edges.tick', { tick: tell(z.object({})), block: tell(z.object({})) });

let system: ActorSystem;
afterEach(async () => {
  await system.close();
});

it('turns a timer tick that finds a full reject mailbox into a dead letter instead of throwing', async () => {
  const clock = new SimulatedClock();
  system = createSystem({ clock, deadLetterLog: () => {} });
  const dead: DeadLetterEvent[] = [];
  system.deadLetters$.subscribe((d) => dead.push(d));
  let release: () => void = () => {};
  const ticker = behavior({
    protocols: [Tick],
    handlers: {
      tick: () => {},
      block: () => new Promise<void>((resolve) => (release = resolve)),
    },
    preStart: (ctx) => ctx.timers.startPeriodic('t', 10, 'tick', {}),
    mailbox: { capacity: 1, overflow: 'reject' },
  });
  const ref = system.spawn(ticker);
  await settle(system);
  ref.tell('block', {});
  await flushMicrotasks();
  await clock.advance(30);
  expect(dead.map((d) => [d.messageType, d.reason])).toEqual([
    ['tick', 'mailbox-full'],
    ['tick', 'mailbox-full'],
  ]);
  release();
  await settle(system);
  expect(system.status.tag).toBe('running');
});

const Echo = defineProtocol('edges.echo', { ping: ask(z.object({}), z.string()) });
const Other = defineProtocol('edges.other', { poke: tell(z.object({})) });
const echo = behavior({ protocols: [Echo], handlers: { ping: (_b, ctx) => ctx.self.address } });
const other = behavior({ protocols: [Other], handlers: { poke: () => {} } });

it('finds the live actors of a protocol, before and after its index is built', async () => {
  system = createSystem({ deadLetterLog: () => {} });
  const a = system.spawn(echo, { name: 'a' });
  system.spawn(other, { name: 'o' });
  expect(system.find(Echo).map((r) => r.address)).toEqual([a.address]);
  const b = system.spawn(echo);
  expect(system.find(Echo).map((r) => r.address)).toEqual([a.address, b.address]);
  await system.stop(a);
  expect(system.find(Echo).map((r) => r.address)).toEqual([b.address]);
  expect(system.find(Other)).toHaveLength(1);
});

it('resolves anonymous actors by their address', async () => {
  system = createSystem({ deadLetterLog: () => {} });
  const refs = Array.from({ length: 40 }, () => system.spawn(echo));
  for (const ref of refs) {
    expect(ref.address).toMatch(/\/\$[0-9a-z]+$/);
    expect(await system.ref(ref.address, Echo).ask('ping', {})).toBe(ref.address);
  }
  const last = refs[refs.length - 1]!.address;
  await expect(system.ref(`${last}0`, Echo).ask('ping', {})).rejects.toMatchObject({
    code: 'ERR_NO_SUCH_ACTOR',
  });
  await expect(system.ref(last.replace(/\$[0-9a-z]+$/, '$00'), Echo).ask('ping', {})).rejects.toMatchObject({
    code: 'ERR_NO_SUCH_ACTOR',
  });
});

it('gives ERR_NO_ROUTE, not ERR_NO_SUCH_ACTOR, for an address on another node or cluster with no transport', async () => {
  system = createSystem({ name: 'app', deadLetterLog: () => {} });
  const refused = (address: string) => system.ref(address, Echo).ask('ping', {});
  await expect(refused('troupe://app/node-b/echo')).rejects.toMatchObject({
    code: 'ERR_NO_ROUTE',
    message:
      'no route to troupe://app/node-b/echo: it names node "node-b", and this node ("local") has no transport to it (give createSystem a transport)',
  });
  await expect(refused('troupe://other/local/echo')).rejects.toMatchObject({
    code: 'ERR_NO_ROUTE',
    message: 'no route to troupe://other/local/echo: it names cluster "other", not this system\'s "app"',
  });
  await expect(refused('troupe://app/local/nobody')).rejects.toMatchObject({ code: 'ERR_NO_SUCH_ACTOR' });
});

it('answers a stashed ask after a crash once the restarted actor handles it again', async () => {
  const Q = defineProtocol('edges.q', { ask: ask(z.object({}), z.string()) });
  let calls = 0;
  const flaky = behavior({
    protocols: [Q],
    handlers: {
      ask: (_b, ctx) => {
        calls++;
        if (calls === 1) {
          ctx.stash();
          throw new Error('crash after stashing');
        }
        return `answered on call ${calls}`;
      },
    },
  });
  system = createSystem({ deadLetterLog: () => {} });
  const ref = system.spawn(flaky);
  expect(await ref.ask('ask', {})).toBe('answered on call 2');
});
