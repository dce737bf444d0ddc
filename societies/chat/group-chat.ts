import { z } from 'zod';
import type { AgentProtocol } from '../../agents/index.js';
import {
  type Journal,
  type PersistentStream,
  recoverStream,
  type StreamDefinition,
} from '../../memory/index.js';
import { invalidOption, TroupeError } from '../../protocols/index.js';
import {
  type ActorContext,
  type ActorRef,
  type ActorSystem,
  type Behavior,
  behavior,
  type MailboxOptions,
} from '../../runtime/index.js';
import { failureOf } from '../members.js';
import { recordEvents } from '../record.js';
import {
  type ChatOutcome,
  type ChatStatus,
  type ChatTurn,
  chatOutcomeSchema,
  chatTurnSchema,
  GroupChatInternal,
  GroupChatProtocol,
} from './protocol.js';
import { nextInOrder, type SelectionOption, type SpeakerSelection, toSelection } from './selection.js';
import type { ChatView, Stop, Termination } from './termination.js';

/** A participant of a group chat. */
export interface Participant {
  /** Its name in the transcript and for speaker selection; unique in the chat. */
  readonly name: string;
  /** What it does, for a selector model. */
  readonly description?: string;
  /**
   * Who speaks: an agent, or any actor answering the agent protocol's `run` with its turn (a person's
   * UI behind an actor: the chat waits for its answer until `turnTimeoutMs`). A function of the
   * system gives the ref on whichever node hosts the chat (a named actor: `system.actorOf(...)`).
   */
  readonly ref: ActorRef<typeof AgentProtocol> | ((system: ActorSystem) => ActorRef<typeof AgentProtocol>);
  /** How long its turn may take. Defaults to the chat's `turnTimeoutMs`. */
  readonly turnTimeoutMs?: number;
}

/** Options of {@link groupChat}. */
export interface GroupChatOptions {
  readonly participants: readonly Participant[];
  /**
   * Who speaks next: {@link roundRobin} (default), a {@link selector} model, {@link handoffs}, or a
   * function of the chat giving a name.
   */
  readonly selection?: SelectionOption;
  /** When the chat ends, checked before every turn: `maxTurns(20)`, `anyOf(textMention('DONE'), maxTurns(50))`. */
  readonly termination: Termination;
  /**
   * The transcript's journal: every turn is an event, appended before the next turn starts, so a chat
   * whose host crashes or moves continues from its last recorded turn and never takes it again.
   * Without one the transcript lives in memory only.
   */
  readonly journal?: Journal;
  /** The chat's stream. Defaults to `chat-<name>` (its name: the last part of its path; a named actor's key). */
  readonly persistenceId?: (self: { readonly address: string; readonly name: string }) => string;
  /** How long a turn may take. Defaults to 60 s. */
  readonly turnTimeoutMs?: number;
  /** Attempts to get a known name from the selection before round-robin picks. Defaults to 3. */
  readonly maxSelectionAttempts?: number;
  /** Failed turns in a row that end the chat (`reason: 'failed'`). Defaults to 3. */
  readonly maxFailedTurns?: number;
  /**
   * The input of a turn. Defaults to the task and the turns since the speaker last spoke (all of
   * them for its first turn), as `name: text` lines: an agent keeps its own conversation.
   */
  readonly render?: (view: ChatView, speaker: string) => string;
  readonly mailbox?: MailboxOptions;
}

/** Defaults of {@link groupChat}'s options. */
export const groupChatDefaults = {
  turnTimeoutMs: 60_000,
  maxSelectionAttempts: 3,
  maxFailedTurns: 3,
} as const;

interface ChatData {
  readonly phase: 'idle' | 'running' | 'ended';
  readonly task?: string;
  readonly turns: readonly ChatTurn[];
  readonly usage: { readonly inputTokens: number; readonly outputTokens: number };
  readonly outcome?: ChatOutcome;
}

/** The chat's actor state: its data, its stream, and the turn it has out. */
export interface GroupChatState {
  data: ChatData;
  stream: PersistentStream<ChatData> | undefined;
  /** This incarnation's id: an answer for an older one is ignored. */
  epoch: string;
  inflight: AbortController | undefined;
}

const initialData = (): ChatData => ({
  phase: 'idle',
  turns: [],
  usage: { inputTokens: 0, outputTokens: 0 },
});

const chatEvents = {
  started: z.object({ task: z.string() }),
  turn: chatTurnSchema,
  ended: chatOutcomeSchema,
};

const applyEvents = {
  started: (s: ChatData, e: { task: string }): ChatData => ({ ...s, phase: 'running', task: e.task }),
  turn: (s: ChatData, turn: ChatTurn): ChatData => ({
    ...s,
    turns: [...s.turns, turn],
    usage: {
      inputTokens: s.usage.inputTokens + turn.usage.inputTokens,
      outputTokens: s.usage.outputTokens + turn.usage.outputTokens,
    },
  }),
  ended: (s: ChatData, outcome: ChatOutcome): ChatData => ({ ...s, phase: 'ended', outcome }),
};

type ChatEvent =
  | { type: 'started'; data: { task: string } }
  | { type: 'turn'; data: ChatTurn }
  | { type: 'ended'; data: ChatOutcome };

type Protocols = typeof GroupChatProtocol | typeof GroupChatInternal;
type Ctx = ActorContext<GroupChatState, Protocols>;

/**
 * A group chat (the AutoGen shape): participants take turns on a shared transcript until the
 * termination is met. `start` gives it its task; each turn the selection picks a speaker (an unknown
 * name goes back to the selection as `ERR_UNKNOWN_SPEAKER`, never a crash), the speaker's `run` is
 * asked with its input and a deadline, and the answer (or the turn's failure: a timeout, a crash, a
 * failed run) is recorded as a turn. Each turn is a `group-chat-turn` event on the system's stream,
 * and the end a `group-chat-ended` event.
 *
 * With a journal the transcript is event-sourced: spawned again (or a named actor activated on another
 * node), the chat recovers its turns and goes on from the last one recorded. A turn that was in
 * flight at a crash is taken again (its `runId` is the same: `<stream>-<turn>`). A named chat resumes
 * at its next message (any: `status` will do); while it waits on a long turn (a person) its mailbox is
 * idle, so give its kind a `passivateAfterMs` above the longest turn.
 *
 * @throws TroupeError `ERR_INVALID_OPTION` naming the part: no participants, a name twice, no
 * termination, a bad selection or timeout.
 * @example
 * ```ts
 * const chat = system.spawn(
 *   groupChat({
 *     participants: [
 *       { name: 'writer', ref: writer },
 *       { name: 'critic', ref: critic },
 *     ],
 *     termination: anyOf(textMention('APPROVED'), maxTurns(6)),
 *   }),
 *   { name: 'review' },
 * );
 * await chat.ask('start', { task: 'A haiku about tides' });
 * const outcome = await chat.ask('outcome', {}, { timeoutMs: 60_000 });
 * ```
 */
export function groupChat(options: GroupChatOptions): Behavior<typeof GroupChatProtocol, GroupChatState> {
  const settings = resolveOptions(options);
  const { participants, termination, selection, journal, render, maxSelectionAttempts, maxFailedTurns } =
    settings;
  const byName = new Map(participants.map((p) => [p.name, p]));
  const names = participants.map((p) => p.name);
  const roster = participants.map((p) => ({ name: p.name, description: p.description ?? '' }));
  const persistenceId = options.persistenceId ?? (({ name }) => `chat-${name}`);
  const definition: StreamDefinition<ChatData, typeof chatEvents> | undefined =
    journal === undefined
      ? undefined
      : { journal, persistenceId, initialState: initialData, events: chatEvents, apply: applyEvents };
  const refs = new WeakMap<ActorSystem, Map<string, ActorRef<typeof AgentProtocol>>>();
  const refOf = (system: ActorSystem, p: Participant): ActorRef<typeof AgentProtocol> => {
    if (typeof p.ref !== 'function') return p.ref;
    let known = refs.get(system);
    if (known === undefined) {
      known = new Map();
      refs.set(system, known);
    }
    let ref = known.get(p.name);
    if (ref === undefined) {
      ref = p.ref(system);
      known.set(p.name, ref);
    }
    return ref;
  };

  const viewOf = (data: ChatData): ChatView => ({
    task: data.task ?? '',
    turns: data.turns,
    participants: roster,
    usage: data.usage,
  });

  const statusOf = (data: ChatData): ChatStatus => ({
    phase: data.phase,
    turns: data.turns.length,
    ...(data.task === undefined ? {} : { task: data.task }),
    ...(data.outcome === undefined ? {} : { outcome: data.outcome }),
  });

  const append = async (ctx: Ctx, events: readonly ChatEvent[]): Promise<void> => {
    const live = ctx.state;
    live.data = await recordEvents(live.stream, live.data, events, applyEvents);
  };

  const end = async (ctx: Ctx, stop: Stop): Promise<void> => {
    const { data } = ctx.state;
    const last = [...data.turns].reverse().find((t) => t.error === undefined);
    const outcome: ChatOutcome = {
      reason: stop.reason,
      detail: stop.detail,
      turns: data.turns.length,
      usage: data.usage,
      ...(last === undefined ? {} : { last: last.text }),
    };
    ctx.state.inflight?.abort(new TroupeError('ERR_ACTOR_STOPPED', 'the chat ended'));
    ctx.state.inflight = undefined;
    await append(ctx, [{ type: 'ended', data: outcome }]);
    ctx.system.publish({ type: 'group-chat-ended', chat: ctx.self.address, ...outcome });
    ctx.unstashAll();
  };

  /** Starts the next turn, or ends the chat when its termination is met. */
  const advance = async (ctx: Ctx): Promise<void> => {
    const live = ctx.state;
    if (live.data.phase !== 'running' || live.inflight !== undefined) return;
    const view = viewOf(live.data);
    let stop: Stop | undefined;
    try {
      stop = termination.check(view);
    } catch (error) {
      const { code, message } = failureOf(error);
      stop = { reason: 'failed', detail: `the termination threw: ${code} ${message}` };
    }
    if (stop !== undefined) return end(ctx, stop);
    const failedInRow = countFailedInRow(view.turns);
    if (failedInRow >= maxFailedTurns)
      return end(ctx, { reason: 'failed', detail: `${failedInRow} failed turns in a row` });
    const controller = new AbortController();
    const onEnd = () => controller.abort(ctx.signal.reason);
    ctx.signal.addEventListener('abort', onEnd, { once: true });
    live.inflight = controller;
    const { epoch } = live;
    const stream = live.stream?.name ?? ctx.self.address;
    const self = ctx.self as unknown as ActorRef<typeof GroupChatInternal>;
    const noUsage = { inputTokens: 0, outputTokens: 0 };
    void takeTurn(ctx.system, view, stream, controller.signal)
      // A defect in the turn (a render or ref function that threw) is the turn's failure, not a stall.
      .catch(
        (error: unknown): ChatTurn => ({
          turn: view.turns.length + 1,
          speaker: nextInOrder(view),
          text: '',
          usage: noUsage,
          error: failureOf(error),
        }),
      )
      .then((result) => {
        ctx.signal.removeEventListener('abort', onEnd);
        if (!controller.signal.aborted) self.tell('turnDone', { epoch, result });
      });
  };

  const takeTurn = async (
    system: ActorSystem,
    view: ChatView,
    stream: string,
    signal: AbortSignal,
  ): Promise<ChatTurn> => {
    const turn = view.turns.length + 1;
    const selectionErrors: { code: string; message: string }[] = [];
    const feedback: TroupeError[] = [];
    let speaker: string | undefined;
    for (let attempt = 0; attempt < maxSelectionAttempts && speaker === undefined; attempt++) {
      let problem: TroupeError;
      try {
        const name = await selection.select(view, feedback, signal);
        if (typeof name === 'string' && byName.has(name.trim())) {
          speaker = name.trim();
          break;
        }
        problem = new TroupeError(
          'ERR_UNKNOWN_SPEAKER',
          `"${String(name)}" is not a participant of the chat; choose one of: ${names.join(', ')}`,
          { details: { name, participants: names } },
        );
      } catch (error) {
        if (signal.aborted) break;
        problem = TroupeError.is(error)
          ? error
          : new TroupeError(
              'ERR_UNKNOWN_SPEAKER',
              `the speaker selection failed: ${failureOf(error).message}`,
              {
                cause: error,
              },
            );
      }
      feedback.push(problem);
      selectionErrors.push({ code: problem.code, message: problem.message });
    }
    speaker ??= nextInOrder(view);
    const participant = byName.get(speaker)!;
    const base = {
      turn,
      speaker,
      ...(selectionErrors.length === 0 ? {} : { selectionErrors }),
    };
    const noUsage = { inputTokens: 0, outputTokens: 0 };
    try {
      const outcome = await refOf(system, participant).ask(
        'run',
        { input: render(view, speaker), runId: `${stream}-${turn}` },
        { timeoutMs: participant.turnTimeoutMs ?? settings.turnTimeoutMs, signal },
      );
      if (outcome.ok) return { ...base, text: outcome.output, usage: outcome.usage };
      return { ...base, text: '', usage: outcome.usage, error: outcome.error };
    } catch (error) {
      return { ...base, text: '', usage: noUsage, error: failureOf(error) };
    }
  };

  const start = async (ctx: Ctx): Promise<void> => {
    ctx.state.epoch = `${ctx.system.random().toString(36).slice(2)}`;
    if (definition !== undefined) {
      const { stream, state } = await recoverStream(ctx, definition);
      ctx.state.stream = stream;
      ctx.state.data = state;
    }
    await advance(ctx);
  };

  const handlers = {
    start: async ({ task }: { task: string }, ctx: Ctx): Promise<ChatStatus> => {
      if (ctx.state.data.phase === 'idle') {
        await append(ctx, [{ type: 'started', data: { task } }]);
        await advance(ctx);
      }
      return statusOf(ctx.state.data);
    },
    status: (_: object, ctx: Ctx): ChatStatus => statusOf(ctx.state.data),
    transcript: ({ from = 1 }: { from?: number | undefined }, ctx: Ctx): ChatTurn[] =>
      ctx.state.data.turns.slice(from - 1),
    outcome: (_: object, ctx: Ctx): ChatOutcome => {
      const { outcome } = ctx.state.data;
      if (outcome !== undefined) return outcome;
      // Answered when the chat ends: the ask waits (up to its own timeout) without holding the mailbox.
      ctx.stash();
      return undefined as unknown as ChatOutcome;
    },
    stop: async ({ reason }: { reason?: string | undefined }, ctx: Ctx): Promise<void> => {
      if (ctx.state.data.phase === 'ended') return;
      if (ctx.state.data.phase === 'idle') await append(ctx, [{ type: 'started', data: { task: '' } }]);
      await end(ctx, { reason: 'stopped', detail: reason ?? 'a stop message' });
    },
    turnDone: async ({ epoch, result }: { epoch: string; result: ChatTurn }, ctx: Ctx): Promise<void> => {
      const live = ctx.state;
      if (epoch !== live.epoch || live.data.phase !== 'running' || live.inflight === undefined) return;
      if (result.turn !== live.data.turns.length + 1) return;
      live.inflight = undefined;
      await append(ctx, [{ type: 'turn', data: result }]);
      ctx.system.publish({
        type: 'group-chat-turn',
        chat: ctx.self.address,
        turn: result.turn,
        speaker: result.speaker,
        ok: result.error === undefined,
        ...(result.error === undefined ? {} : { error: result.error.code }),
        ...(result.selectionErrors === undefined ? {} : { selectionErrors: result.selectionErrors.length }),
      });
      await advance(ctx);
    },
  };

  return behavior<Protocols, GroupChatState>({
    protocols: [GroupChatProtocol, GroupChatInternal],
    initialState: () => ({ data: initialData(), stream: undefined, epoch: '', inflight: undefined }),
    handlers: handlers as never,
    preStart: start,
    postStop: (ctx) => {
      ctx.state.inflight?.abort(new TroupeError('ERR_ACTOR_STOPPED', 'the chat stopped'));
    },
    ...(options.mailbox === undefined ? {} : { mailbox: options.mailbox }),
  }) as unknown as Behavior<typeof GroupChatProtocol, GroupChatState>;
}

function countFailedInRow(turns: readonly ChatTurn[]): number {
  let n = 0;
  for (let i = turns.length - 1; i >= 0 && turns[i]!.error !== undefined; i--) n++;
  return n;
}

/** The default input of a turn: the task, then the turns since the speaker last spoke. */
function defaultRender(view: ChatView, speaker: string): string {
  let since = 0;
  for (let i = view.turns.length - 1; i >= 0; i--) {
    if (view.turns[i]!.speaker === speaker) {
      since = i + 1;
      break;
    }
  }
  const lines = view.turns
    .slice(since)
    .filter((t) => t.error === undefined)
    .map((t) => `${t.speaker}: ${t.text}`);
  const head = since === 0 ? `Task: ${view.task}\n` : '';
  return `${head}${lines.join('\n')}\n(You are ${speaker}; it is your turn.)`.trimStart();
}

interface Settings {
  readonly participants: readonly Participant[];
  readonly termination: Termination;
  readonly selection: SpeakerSelection;
  readonly journal: Journal | undefined;
  readonly render: (view: ChatView, speaker: string) => string;
  readonly turnTimeoutMs: number;
  readonly maxSelectionAttempts: number;
  readonly maxFailedTurns: number;
}

function resolveOptions(options: GroupChatOptions): Settings {
  if (typeof options !== 'object' || options === null)
    throw invalidOption('options', 'must be an object', options);
  const {
    participants,
    termination,
    journal,
    render = defaultRender,
    turnTimeoutMs = groupChatDefaults.turnTimeoutMs,
    maxSelectionAttempts = groupChatDefaults.maxSelectionAttempts,
    maxFailedTurns = groupChatDefaults.maxFailedTurns,
  } = options;
  if (!Array.isArray(participants) || participants.length === 0)
    throw invalidOption('participants', 'must be a non-empty list', participants);
  const seen = new Set<string>();
  participants.forEach((p, i) => {
    if (typeof p?.name !== 'string' || p.name.trim() === '' || p.name !== p.name.trim())
      throw invalidOption(
        `participants[${i}].name`,
        'must be a non-empty name without surrounding spaces',
        p?.name,
      );
    if (seen.has(p.name)) throw invalidOption(`participants[${i}].name`, `"${p.name}" is taken`, p.name);
    seen.add(p.name);
    if (typeof p.ref !== 'function' && typeof (p.ref as ActorRef | undefined)?.ask !== 'function')
      throw invalidOption(`participants[${i}].ref`, 'must be an actor ref or a function giving one', p.ref);
    if (p.turnTimeoutMs !== undefined && !(p.turnTimeoutMs > 0))
      throw invalidOption(`participants[${i}].turnTimeoutMs`, 'must be a positive number', p.turnTimeoutMs);
  });
  if (typeof termination?.check !== 'function')
    throw invalidOption(
      'termination',
      'must be a termination (maxTurns(n), textMention(...), ...)',
      termination,
    );
  if (journal !== undefined && typeof journal.append !== 'function')
    throw invalidOption('journal', 'must be a journal', journal);
  if (typeof render !== 'function') throw invalidOption('render', 'must be a function', render);
  if (!(turnTimeoutMs > 0)) throw invalidOption('turnTimeoutMs', 'must be a positive number', turnTimeoutMs);
  if (!(Number.isInteger(maxSelectionAttempts) && maxSelectionAttempts >= 1))
    throw invalidOption('maxSelectionAttempts', 'must be a positive integer', maxSelectionAttempts);
  if (!(Number.isInteger(maxFailedTurns) && maxFailedTurns >= 1))
    throw invalidOption('maxFailedTurns', 'must be a positive integer', maxFailedTurns);
  return {
    participants,
    termination,
    selection: toSelection(options.selection),
    journal,
    render,
    turnTimeoutMs,
    maxSelectionAttempts,
    maxFailedTurns,
  };
}
