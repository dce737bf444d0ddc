import type { NewEvent, PersistentStream } from '../memory/index.js';

/**
 * Records a society's events: appended to its stream when it is durable (the new state is the
 * stream's fold), else folded in memory with the same `apply` functions. Shared by the patterns that
 * keep their state as events (the group chat, the blackboard).
 */
export async function recordEvents<S>(
  stream: PersistentStream<S> | undefined,
  state: S,
  events: readonly NewEvent[],
  apply: Readonly<Record<string, (state: S, data: any) => S>>,
): Promise<S> {
  if (stream !== undefined) return (await stream.append(state, events)).state;
  let next = state;
  for (const event of events) next = apply[event.type]!(next, event.data);
  return next;
}
