/**
 * The watchdog: a runaway loop and a memory hog in worker-hosted and process-hosted actors end their
 * host; that is a crash of the isolated actor, which its supervisor restarts on a new host, while
 * other actors keep answering. What was in flight fails with the typed error.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  type ActorRef,
  type ActorSystem,
  ask as askSpec,
  behavior,
  createSystem,
  type DeadLetterEvent,
  defineProtocol,
  type IsolationOptions,
  isolated,
  type SystemEvent,
  TroupeError,
} from '../../index.js';
import { Calc } from './fixtures/protocols.js';

const module = new URL('./fixtures/calc.ts', import.meta.url);
const spec = { protocols: [Calc], module, export: 'calculator' } as const;

const Ping = defineProtocol('test.ping', { ping: askSpec(z.object({}), z.literal('pong')) });
const pinger = behavior({ protocols: [Ping], handlers: { ping: () => 'pong' as const } });

for (const host of ['worker', 'process'] as const) {
  describe(`a ${host}-hosted actor under the watchdog`, () => {
    let system: ActorSystem;
    let calc: ActorRef<typeof Calc>;
    let hog: ActorRef<typeof Calc>;
    let ping: ActorRef<typeof Ping>;
    const events: SystemEvent[] = [];
    const dead: DeadLetterEvent[] = [];
    // A budget wide enough that a host starved by a busy machine is not taken for a runaway loop.
    const options: IsolationOptions = { host, cpuBudgetMs: 1000 };
    // Near its heap limit V8 collects again and again, blocking the thread for long: the hog gets a
    // CPU budget wide enough for the memory limit to end it first. No spare: one restart only.
    const hogOptions: IsolationOptions = { host, cpuBudgetMs: 20_000, memoryLimitMb: 64, standby: false };

    beforeAll(async () => {
      system = createSystem({ name: 'dog', deadLetterLog: () => {} });
      system.events$.subscribe((event) => {
        events.push(event);
        if (event.type === 'dead-letter') dead.push(event);
      });
      ping = system.spawn(pinger, { name: 'ping' });
      calc = system.spawn(isolated(spec, options), { name: 'calc' });
      // The first start of a host loads the runtime from TypeScript sources: slow on a busy machine.
      hog = system.spawn(isolated(spec, hogOptions), { name: 'hog' });
      expect(await calc.ask('total', {}, { timeoutMs: 60_000 })).toBe(0);
      expect(await hog.ask('total', {}, { timeoutMs: 60_000 })).toBe(0);
    }, 90_000);
    afterAll(() => system.close());

    const restartsOf = (address: string) =>
      events.filter((e) => e.type === 'actor-restarted' && e.address === address).length;

    it('ends a runaway loop past the CPU budget: asks in flight fail, tells in flight are dead letters, the actor restarts', async () => {
      const before = restartsOf(calc.address);
      const seen = events.length;
      calc.tell('add', { n: 5 });
      calc.tell('spin', {});
      calc.tell('add', { n: 1 });
      const inFlight = calc.ask('total', {}, { timeoutMs: 30_000 });
      // Other actors keep answering while the host spins.
      expect(await ping.ask('ping', {})).toBe('pong');
      await expect(inFlight).rejects.toSatisfy((e) => TroupeError.is(e, 'ERR_CPU_BUDGET'));
      await vi.waitFor(() => expect(restartsOf(calc.address)).toBe(before + 1), { timeout: 30_000 });
      const crash = events.slice(seen).find((e) => e.type === 'actor-crashed' && e.address === calc.address);
      expect(crash?.type === 'actor-crashed' && TroupeError.is(crash.error, 'ERR_CPU_BUDGET')).toBe(true);
      // The crash names the actor and the message whose handler blocked the host, not only the host.
      const hosted = 'troupe://dog/local.calc/calc';
      expect((crash as { error: TroupeError }).error.details).toMatchObject({
        node: 'local.calc',
        address: hosted,
        messageType: 'test.calc.spin',
      });
      expect((crash as { error: Error }).error.message).toContain(`${hosted} blocked its host local.calc`);
      expect((crash as { error: Error }).error.message).toContain('"test.calc.spin"');
      // The tell behind the spin was not handled: a dead letter carrying the error.
      expect(
        dead.some((d) => d.messageType === 'test.calc.add' && TroupeError.is(d.error, 'ERR_CPU_BUDGET')),
      ).toBe(true);
      // A fresh actor on a fresh host.
      expect(await calc.ask('total', {}, { timeoutMs: 30_000 })).toBe(0);
      expect(await ping.ask('ping', {})).toBe('pong');
    }, 60_000);

    it('fails every message of a burst spread over several frames behind a runaway loop: each tell a dead letter with its body, in order, each ask the typed error', async () => {
      const before = restartsOf(calc.address);
      const seen = dead.length;
      calc.tell('spin', {});
      // More tells than one frame holds (1024 envelopes), with asks between them (they break the runs).
      const count = 2500;
      const asks: Promise<unknown>[] = [];
      for (let n = 1; n <= count; n++) {
        calc.tell('add', { n });
        if (n % 1000 === 0) {
          asks.push(
            calc.ask('total', {}, { timeoutMs: 30_000 }).then(
              (total) => total,
              (error) => error,
            ),
          );
        }
      }
      for (const outcome of await Promise.all(asks)) {
        expect(TroupeError.is(outcome, 'ERR_CPU_BUDGET')).toBe(true);
      }
      await vi.waitFor(() => expect(restartsOf(calc.address)).toBe(before + 1), { timeout: 30_000 });
      const lost = dead.slice(seen).filter((d) => d.messageType === 'test.calc.add');
      // Nothing lost silently: each tell once, in the order sent, with its body and the typed error.
      expect(lost.map((d) => (d.body as { n: number }).n)).toEqual(
        Array.from({ length: count }, (_, i) => i + 1),
      );
      expect(lost.every((d) => TroupeError.is(d.error, 'ERR_CPU_BUDGET'))).toBe(true);
      expect(await calc.ask('total', {}, { timeoutMs: 30_000 })).toBe(0);
    }, 60_000);

    it('names the actor deep in the host whose handler blocked it, and the message', async () => {
      const helper = await calc.ask('child', { name: 'helper' }, { timeoutMs: 30_000 });
      expect(helper).toBe('troupe://dog/local.calc/calc/helper');
      // The parent of the blocked actor was busy just before: the record follows the handler running.
      expect(await calc.ask('fib', { n: 5 })).toBe(5);
      const seen = events.length;
      system.ref(helper, Calc).tell('spin', {});
      const crash = await vi.waitFor(
        () => {
          const found = events
            .slice(seen)
            .find((e) => e.type === 'actor-crashed' && e.address === calc.address);
          expect(found).toBeDefined();
          return found as { error: TroupeError };
        },
        { timeout: 30_000 },
      );
      expect(TroupeError.is(crash.error, 'ERR_CPU_BUDGET')).toBe(true);
      expect(crash.error.details).toMatchObject({ address: helper, messageType: 'test.calc.spin' });
      expect(await calc.ask('total', {}, { timeoutMs: 30_000 })).toBe(0);
    }, 60_000);

    it('ends a memory hog past its limit, and restarts it', async () => {
      const before = restartsOf(hog.address);
      hog.tell('hog', {});
      const inFlight = hog.ask('total', {}, { timeoutMs: 30_000 });
      expect(await ping.ask('ping', {})).toBe('pong');
      expect(await calc.ask('fib', { n: 10 })).toBe(55);
      await expect(inFlight).rejects.toSatisfy((e) => TroupeError.is(e, 'ERR_MEMORY_LIMIT'));
      await vi.waitFor(() => expect(restartsOf(hog.address)).toBe(before + 1), { timeout: 30_000 });
      hog.tell('add', { n: 3 });
      expect(await hog.ask('total', {}, { timeoutMs: 60_000 })).toBe(3);
    }, 90_000);
  });
}
