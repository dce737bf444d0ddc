/**
 * The runtime's topics: `society.topic.fanout`, deliveries per second from one publisher to 1,000
 * local subscribers (actors: each delivery is a tell into a mailbox, handled in its turn). Shown next
 * to an rxjs Subject with 1,000 subscribers, the raw in-process fanout (synchronous callbacks, no
 * mailboxes, no validation): a floor of cost, not a like-for-like peer. The goal is "reported".
 */
import { Subject } from 'rxjs';
import { z } from 'zod';
import { behavior, createSystem, defineProtocol, tell } from '../index.js';
import type { BenchCase, BenchTools } from './remote.js';

const Quote = z.object({ sku: z.string(), cents: z.number() });
const Watcher = defineProtocol('bench.topic.watcher', { quote: tell(Quote) });

export function topicCases(tools: BenchTools): BenchCase[] {
  const { quick } = tools;
  const rounds = quick ? 1 : 10;
  return [
    {
      name: 'society.topic.fanout',
      unit: 'deliveries/s',
      goal: 'reported',
      async run() {
        const subscribers = 1000;
        const publications = quick ? 20 : 200;
        const total = subscribers * publications;
        const meter = { seen: 0, target: 0, done: () => {} };
        const arrived = (n: number) => {
          meter.seen = 0;
          meter.target = n;
          return new Promise<void>((resolve) => {
            meter.done = resolve;
          });
        };
        const watcher = behavior({
          protocols: [Watcher],
          handlers: {
            quote: () => {
              if (++meter.seen === meter.target) meter.done();
            },
          },
        });
        const system = createSystem({
          name: 'bench-topic',
          devChecks: false,
          mailbox: { capacity: 1_000_000 },
          deadLetterLog: () => {},
        });
        const topic = system.topic('quotes', Quote);
        for (let i = 0; i < subscribers; i++) topic.subscribe(system.spawn(watcher), 'quote');
        const subject = new Subject<z.infer<typeof Quote>>();
        for (let i = 0; i < subscribers; i++) {
          subject.subscribe(() => {
            if (++meter.seen === meter.target) meter.done();
          });
        }
        const troupe = async () => {
          const start = performance.now();
          const done = arrived(total);
          for (let p = 0; p < publications; p++) topic.publish({ sku: 'tea', cents: p });
          await done;
          return total / ((performance.now() - start) / 1000);
        };
        const rx = async () => {
          const start = performance.now();
          const done = arrived(total);
          for (let p = 0; p < publications; p++) subject.next({ sku: 'tea', cents: p });
          await done;
          return total / ((performance.now() - start) / 1000);
        };
        const [t, b, pairs] = await tools.sideBySide(troupe, rx, rounds);
        await system.close();
        return tools.result(
          this.name,
          this.unit,
          t,
          'rxjs Subject, 1,000 callbacks',
          b,
          true,
          pairs,
          this.goal,
          () => true,
        );
      },
    },
  ];
}
