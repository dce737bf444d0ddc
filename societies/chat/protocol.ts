import { z } from 'zod';
import { ask, defineProtocol, tell } from '../../protocols/index.js';

const usageSchema = z.object({ inputTokens: z.number(), outputTokens: z.number() });
const failureSchema = z.object({ code: z.string(), message: z.string() });

/** One turn of a chat: who spoke and what, or why the turn failed. */
export const chatTurnSchema = z.object({
  /** 1 for the first turn. */
  turn: z.number().int().min(1),
  speaker: z.string(),
  /** The answer ('' for a failed turn). */
  text: z.string(),
  usage: usageSchema,
  /** Why the turn failed (the participant timed out, crashed, or its run failed); the chat goes on. */
  error: failureSchema.optional(),
  /** Names the speaker selection gave that were no participant (`ERR_UNKNOWN_SPEAKER`), or its failures. */
  selectionErrors: z.array(failureSchema).optional(),
});

/** One turn of a chat. */
export type ChatTurn = z.infer<typeof chatTurnSchema>;

/** How a chat ended. */
export const chatOutcomeSchema = z.object({
  /**
   * The termination that ended it (`max-turns`, `mention`, `tokens`, `cost`, `function`, `external`,
   * `all`), `stopped` for a `stop` message, or `failed` after `maxFailedTurns` failed turns in a row.
   */
  reason: z.string(),
  detail: z.string(),
  turns: z.number(),
  usage: usageSchema,
  /** The last turn's answer. */
  last: z.string().optional(),
});

/** How a chat ended. */
export type ChatOutcome = z.infer<typeof chatOutcomeSchema>;

/** Where a chat is. */
export const chatStatusSchema = z.object({
  phase: z.enum(['idle', 'running', 'ended']),
  task: z.string().optional(),
  turns: z.number(),
  outcome: chatOutcomeSchema.optional(),
});

/** Where a chat is. */
export type ChatStatus = z.infer<typeof chatStatusSchema>;

/**
 * What a group chat speaks. `start` gives it its task (again: the status, nothing new); `status`
 * and `transcript` read it; `outcome` answers once the chat has ended (within the ask's timeout);
 * `stop` ends it after no further turn.
 */
export const GroupChatProtocol = defineProtocol('troupe.society.group-chat', {
  start: ask(z.object({ task: z.string().min(1) }), chatStatusSchema),
  status: ask(z.object({}), chatStatusSchema),
  transcript: ask(z.object({ from: z.number().int().min(1).optional() }), z.array(chatTurnSchema)),
  outcome: ask(z.object({}), chatOutcomeSchema),
  stop: tell(z.object({ reason: z.string().optional() })),
});

/** The chat's messages to itself: a turn taken outside its mailbox came back. Not for callers. */
export const GroupChatInternal = defineProtocol('troupe.society.group-chat.internal', {
  turnDone: tell(z.object({ epoch: z.string(), result: chatTurnSchema })),
});
