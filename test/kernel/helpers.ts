/**
 * Shared helpers of the kernel tests: systems that are closed after each test, recorded events,
 * gates (promises a test opens by hand) and a real-time bound for promises that must settle.
 */
import { afterEach } from 'vitest';
import {
  type ActorSystem,
  createSystem,
  type DeadLetterEvent,
  type SystemEvent,
  type SystemOptions,
  TroupeError,
} from '../../index.js';

const open: ActorSystem[] = [];

/** Registers an afterEach that closes every system made through {@link makeSystem} in this file. */
export function closeSystemsAfterEach(): void {
  afterEach(async () => {
    const systems = open.splice(0);
    await Promise.all(systems.map((s) => s.close()));
  });
}

export interface Harness {
  readonly system: ActorSystem;
  /** Every event, in order. */
  readonly events: SystemEvent[];
  /** The dead letters only. */
  readonly dead: DeadLetterEvent[];
}

/** A system that is closed after the test; its events are recorded unless `observe` is false. */
export function makeSystem(options: SystemOptions = {}, observe = true): Harness {
  const system = createSystem({ deadLetterLog: () => {}, ...options });
  open.push(system);
  const events: SystemEvent[] = [];
  const dead: DeadLetterEvent[] = [];
  if (observe) {
    system.events$.subscribe((e) => {
      events.push(e);
      if (e.type === 'dead-letter') dead.push(e);
    });
  }
  return { system, events, dead };
}

/** Tracks a system made elsewhere (e.g. with `createSystem` directly) so it is closed after the test. */
export function track(system: ActorSystem): ActorSystem {
  open.push(system);
  return system;
}

/** A promise the test resolves by hand. */
export interface Gate {
  readonly promise: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Resolves with the outcome of `promise`, or rejects if it has not settled within `ms` of real time. */
export function within<T>(promise: Promise<T>, ms: number, what = 'promise'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** The error a promise rejects with (fails if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<TroupeError> {
  try {
    await promise;
  } catch (error) {
    if (!TroupeError.is(error)) throw new Error(`expected a TroupeError, got ${String(error)}`);
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** The TroupeError a function throws (fails if it does not throw). */
export function thrown(fn: () => unknown): TroupeError {
  try {
    fn();
  } catch (error) {
    if (!TroupeError.is(error)) throw new Error(`expected a TroupeError, got ${String(error)}`);
    return error;
  }
  throw new Error('expected the call to throw, but it returned');
}

/** Tracks whether a promise has settled, without letting an early rejection go unhandled. */
export function watchPromise<T>(promise: Promise<T>): {
  readonly settled: boolean;
  readonly result: Promise<T>;
} {
  const state = { settled: false };
  promise.then(
    () => {
      state.settled = true;
    },
    () => {
      state.settled = true;
    },
  );
  return {
    get settled() {
      return state.settled;
    },
    result: promise,
  };
}
