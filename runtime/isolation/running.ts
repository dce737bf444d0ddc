/**
 * What a host is running, as its parent sees it: the watchdog that ends a host blocked past its CPU
 * budget names the actor and the message whose handler was running, not only the host.
 *
 * The host numbers each actor and each message type once, and tells the parent the names behind the
 * numbers once. Before each handler it writes the pair of numbers: a worker into memory it shares
 * with its parent (two stores per message, nothing posted), a process (which shares no memory) in a
 * control message only when the pair changes since its last heartbeat. A blocked thread cannot post,
 * but what it wrote before it blocked is there to read.
 */
import type { Cell, HandlerProbe } from '../kernel/cell.js';
import type { FromHost } from './wire.js';

/** Slot 0: the running actor's number; slot 1: its message type's; 0 while no handler runs. */
const ACTOR = 0;
const TYPE = 1;

/** The shared memory of a worker host's record (two 32-bit slots). */
export function runningMemory(): SharedArrayBuffer {
  return new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT);
}

/** The host's side: the probe the kernel calls, and what a heartbeat resets. */
export interface RunningRecorder {
  readonly probe: HandlerProbe;
  /** A heartbeat went out (the thread turned): a process host posts its next pair again. */
  beat(): void;
}

/** Records what the host runs: into `memory` (a worker), else through `send` (a process). */
export function runningRecorder(
  memory: SharedArrayBuffer | undefined,
  send: (m: FromHost) => void,
): RunningRecorder {
  const slots = memory === undefined ? undefined : new Int32Array(memory);
  const actors = new WeakMap<Cell, number>();
  const types = new WeakMap<object, number>();
  const unknownTypes = new Map<string, number>();
  let nextActor = 1;
  let nextType = 1;
  let lastCell: Cell | undefined;
  let lastType: string | undefined;
  let actor = 0;
  let type = 0;
  let postedActor = 0;
  let postedType = 0;

  const actorOf = (cell: Cell): number => {
    let id = actors.get(cell);
    if (id === undefined) {
      id = nextActor++;
      actors.set(cell, id);
      send({ t: 'actor-name', id, address: cell.address });
    }
    return id;
  };
  const typeOf = (cell: Cell, name: string): number => {
    const spec = cell.behavior.specs[name];
    let id = spec === undefined ? unknownTypes.get(name) : types.get(spec);
    if (id === undefined) {
      id = nextType++;
      if (spec === undefined) unknownTypes.set(name, id);
      else types.set(spec, id);
      send({ t: 'type-name', id, type: spec === undefined ? name : `${spec.protocol}.${name}` });
    }
    return id;
  };

  const probe: HandlerProbe = (cell, name) => {
    if (name === undefined) {
      if (slots !== undefined) {
        slots[ACTOR] = 0;
        slots[TYPE] = 0;
      }
      return;
    }
    if (cell !== lastCell || name !== lastType) {
      actor = actorOf(cell);
      type = typeOf(cell, name);
      lastCell = cell;
      lastType = name;
    }
    if (slots !== undefined) {
      slots[ACTOR] = actor;
      slots[TYPE] = type;
    } else if (actor !== postedActor || type !== postedType) {
      postedActor = actor;
      postedType = type;
      send({ t: 'running', actor, type });
    }
  };
  return {
    probe,
    beat() {
      postedActor = 0;
      postedType = 0;
    },
  };
}

/** What the parent knows of the handler a host runs. */
export interface RunningHandler {
  readonly address: string;
  readonly messageType: string;
}

/** The parent's side: the names behind the numbers, and the last pair the host recorded. */
export class RunningReader {
  private readonly slots: Int32Array | undefined;
  private readonly actors = new Map<number, string>();
  private readonly types = new Map<number, string>();
  private posted: [number, number] = [0, 0];

  /** With `memory` for a worker host; without, the pairs come in control messages. */
  constructor(readonly memory: SharedArrayBuffer | undefined) {
    this.slots = memory === undefined ? undefined : new Int32Array(memory);
  }

  /** Takes the host's control messages about what it runs; false for other messages. */
  control(message: FromHost): boolean {
    switch (message.t) {
      case 'actor-name':
        this.actors.set(message.id, message.address);
        return true;
      case 'type-name':
        this.types.set(message.id, message.type);
        return true;
      case 'running':
        this.posted = [message.actor, message.type];
        return true;
      case 'beat':
        // The thread turned since it posted its pair: that handler is over.
        this.posted = [0, 0];
        return false;
      default:
        return false;
    }
  }

  /** The handler the host was running when it last wrote, if any and if its names arrived. */
  current(): RunningHandler | undefined {
    const [actor, type] =
      this.slots === undefined
        ? this.posted
        : [Atomics.load(this.slots, ACTOR), Atomics.load(this.slots, TYPE)];
    if (actor === 0) return undefined;
    const address = this.actors.get(actor);
    const messageType = this.types.get(type);
    return address === undefined || messageType === undefined ? undefined : { address, messageType };
  }
}
