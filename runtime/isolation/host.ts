/**
 * The side of isolation that runs inside a worker thread or a child process: a node of the parent's
 * system, reached through a message-port transport, that spawns the actors the parent asks for and
 * reports back its heartbeats, its events (dead letters included) and its tree.
 */
import { TroupeError } from '../../protocols/index.js';
import type { ActorSystem, Behavior, SpawnOptions } from '../kernel/api.js';
import type { SystemEvent } from '../kernel/events.js';
import type { ActorSystemImpl } from '../kernel/system.js';
import { createNode } from '../remoting/node.js';
import { realClock } from '../time/clock.js';
import { type HostPort, type MessagePortTransport, messagePortTransport } from './port-transport.js';
import { runningRecorder } from './running.js';
import { type FromHost, type ToHost, toWireError, toWireEvent } from './wire.js';

/** Frames handled before the host acknowledges them even while still busy (bounds what the parent keeps). */
const FORCED_ACK_FRAMES = 256;

const resolved = Promise.resolve();

/**
 * Runs a host on `port` until the parent stops it (or the thread or process ends). `exit` ends the
 * thread or process once the host has stopped; `built` maps modules to their builds, if any.
 */
export function runHost(
  port: HostPort,
  exit: () => void,
  built: Readonly<Record<string, string | { readonly error: string }>> = {},
): void {
  let system: ActorSystem | undefined;
  let transport: MessagePortTransport | undefined;
  const modules = new Map<string, Promise<Record<string, unknown>>>();
  /** Modules loaded already: a spawn of their behaviours happens at once, before the next frame. */
  const loadedNow = new Map<string, Record<string, unknown>>();
  const send = (message: FromHost) => {
    if (transport !== undefined) transport.control(message);
    else port.post([3, message]);
  };
  const load = (module: string) => {
    let loading = modules.get(module);
    if (loading === undefined) {
      // A restricted host from TypeScript sources loads the module's JavaScript build (build.ts).
      const target = Object.hasOwn(built, module) ? built[module]! : module;
      loading = (
        typeof target === 'string' ? import(target) : Promise.reject(new Error(target.error))
      ) as Promise<Record<string, unknown>>;
      modules.set(module, loading);
      loading.then((loaded) => loadedNow.set(module, loaded)).catch(() => {});
      // A failed import is tried again at the next spawn (the file may have been fixed).
      loading.catch(() => modules.delete(module));
    }
    return loading;
  };

  const early: ToHost[] = [];
  const handle = (message: ToHost) => {
    switch (message.t) {
      case 'preload': {
        const failed: string[] = [];
        let firstError: unknown;
        Promise.all(
          message.modules.map((m) =>
            load(m).catch((cause: unknown) => {
              failed.push(m);
              firstError ??= new TroupeError('ERR_MODULE_NOT_FOUND', `cannot load ${m}: ${describe(cause)}`, {
                cause,
                details: { module: m },
              });
            }),
          ),
        ).then(async () => {
          const check = message.check;
          if (firstError === undefined && check !== undefined) {
            try {
              exportOf(await load(check.module), check.module, check.export);
            } catch (error) {
              firstError = error;
            }
          }
          send({
            t: 'preloaded',
            id: message.id,
            failed,
            ...(firstError === undefined ? {} : { error: toWireError(firstError) }),
          });
        });
        return;
      }
      case 'init':
        init(message).catch((error: unknown) => {
          process.stderr.write(`troupe host: init failed: ${String(error)}\n`);
          exit();
        });
        return;
      case 'spawn':
        if (system === undefined) early.push(message);
        else spawn(system, message);
        return;
      case 'stop': {
        const stopping =
          system === undefined ? Promise.resolve() : system.drain({ timeoutMs: message.timeoutMs });
        stopping.finally(() => {
          send({ t: 'stopped' });
          exit();
        });
        return;
      }
    }
  };

  const spawn = (node: ActorSystem, message: Extract<ToHost, { t: 'spawn' }>) => {
    const reply = (answer: FromHost) => send(answer);
    const spawnFrom = (loaded: Record<string, unknown>) => {
      try {
        if (message.ifAbsent) {
          const existing = (node as ActorSystemImpl).lookup(node.name, node.node, message.name);
          if (existing?.alive) {
            reply({ t: 'spawned', id: message.id, address: existing.address });
            return;
          }
        }
        const behavior = exportOf(loaded, message.module, message.export);
        const ref = node.spawn(behavior, {
          ...(message.options ?? {}),
          name: message.name,
        } as SpawnOptions);
        sendTree();
        reply({ t: 'spawned', id: message.id, address: ref.address });
      } catch (error) {
        reply({ t: 'spawn-failed', id: message.id, error: toWireError(error) });
      }
    };
    const now = loadedNow.get(message.module);
    // A loaded module's actor is spawned at once, so frames right behind this message find it.
    if (now !== undefined) {
      spawnFrom(now);
      return;
    }
    load(message.module).then(spawnFrom, (cause: unknown) =>
      reply({
        t: 'spawn-failed',
        id: message.id,
        error: toWireError(
          new TroupeError('ERR_MODULE_NOT_FOUND', `cannot load ${message.module}: ${describe(cause)}`, {
            cause,
            details: { module: message.module },
          }),
        ),
      }),
    );
  };

  let treeQueued = false;
  const sendTree = () => {
    if (system !== undefined) send({ t: 'tree', children: system.tree().children });
  };
  const queueTree = () => {
    if (treeQueued) return;
    treeQueued = true;
    resolved.then(() => {
      treeQueued = false;
      sendTree();
    });
  };

  let events: Record<string, unknown>[] = [];
  const flushEvents = () => {
    const batch = events;
    events = [];
    try {
      send({ t: 'events', events: batch });
    } catch {
      // An event whose body cannot be cloned: send them one by one, dropping only such bodies.
      for (const event of batch) {
        try {
          send({ t: 'events', events: [event] });
        } catch {
          send({ t: 'events', events: [{ ...event, body: '(not cloneable)' }] });
        }
      }
    }
  };
  const forward = (event: SystemEvent) => {
    if (event.type === 'system-draining' || event.type === 'system-stopped') return;
    if (events.length === 0) resolved.then(flushEvents);
    events.push(toWireEvent(event));
    if (event.type.startsWith('actor-')) queueTree();
  };

  const init = async (message: Extract<ToHost, { t: 'init' }>) => {
    let lastAcked = 0;
    let acking = false;
    const t = messagePortTransport(port, {
      control: (m) => handle(m as ToHost),
      onReceive: () => {
        if (t.received - lastAcked >= FORCED_ACK_FRAMES) {
          lastAcked = t.received;
          t.acknowledge(lastAcked);
        }
        if (acking) return;
        acking = true;
        // Frames are acknowledged once what they carried has been handled: when the host is idle.
        (node as unknown as ActorSystemImpl).idle().then(() => {
          acking = false;
          if (t.received > lastAcked) {
            lastAcked = t.received;
            t.acknowledge(lastAcked);
          }
        });
      },
    });
    transport = t;
    const node = (await createNode({
      name: message.system,
      node: message.node,
      askTimeoutMs: message.askTimeoutMs,
      devChecks: message.devChecks,
      transport: t,
    })) as ActorSystemImpl;
    system = node;
    const running = runningRecorder(message.running, send);
    node.handlerProbe = running.probe;
    node.events$.subscribe(forward);
    // The heartbeat runs on real time: it tells the parent this thread's event loop turns, which is
    // what the CPU budget measures (a simulated clock would not show a blocked thread).
    const beat = () => {
      send({ t: 'beat' });
      running.beat();
      realClock.setTimeout(beat, message.beatMs);
    };
    realClock.setTimeout(beat, message.beatMs);
    send({ t: 'ready' });
    for (const waiting of early.splice(0)) handle(waiting);
  };

  port.listen((message) => {
    if (transport !== undefined) return; // The transport reads the port from now on.
    if (Array.isArray(message) && message[0] === 3) handle(message[1] as ToHost);
  });
  send({ t: 'booted' });
}

/** The behaviour `name` of a loaded module. */
function exportOf(loaded: Record<string, unknown>, module: string, name: string): Behavior<any, any> {
  if (!Object.hasOwn(loaded, name)) {
    throw new TroupeError('ERR_EXPORT_NOT_FOUND', `${module} has no export "${name}"`, {
      details: { module, export: name, exports: Object.keys(loaded) },
    });
  }
  const value = loaded[name] as { table?: unknown; protocols?: unknown } | null;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof value.table !== 'object' ||
    !Array.isArray(value.protocols)
  ) {
    throw new TroupeError(
      'ERR_NOT_A_BEHAVIOR',
      `export "${name}" of ${module} is not a behaviour (build it with behavior())`,
      {
        details: { module, export: name },
      },
    );
  }
  return value as unknown as Behavior<any, any>;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
