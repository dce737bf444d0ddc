import type { ModelPort } from '../../agents/index.js';
import { invalidOption, type TroupeError } from '../../protocols/index.js';
import type { ChatView } from './termination.js';

/**
 * Picks the next speaker by name. `feedback` holds what went wrong with the earlier attempts of this
 * turn (a name that is no participant: `ERR_UNKNOWN_SPEAKER`), so a selector can correct itself;
 * after `maxSelectionAttempts` the chat falls back to round-robin.
 */
export interface SpeakerSelection {
  select(view: ChatView, feedback: readonly TroupeError[], signal: AbortSignal): string | PromiseLike<string>;
}

/** A speaker selection, or a function giving the next speaker's name. */
export type SelectionOption =
  | SpeakerSelection
  | ((view: ChatView, feedback: readonly TroupeError[]) => string | PromiseLike<string>);

/** Each participant in turn, in the order given, after the last speaker. */
export function roundRobin(): SpeakerSelection {
  return { select: (view) => nextInOrder(view) };
}

/** The participant after the last speaker, in the order given (the first at the start). */
export function nextInOrder(view: ChatView): string {
  const names = view.participants.map((p) => p.name);
  const last = view.turns.at(-1)?.speaker;
  const at = last === undefined ? -1 : names.indexOf(last);
  return names[(at + 1) % names.length]!;
}

/** Options of {@link selector}. */
export interface SelectorOptions {
  /** The model that picks. */
  readonly model: ModelPort;
  /** Replaces the default instructions (the participants and a request for one name). */
  readonly instructions?: string;
  /** Turns of the transcript shown to the model, newest last. Defaults to 20. */
  readonly window?: number;
}

/**
 * A model picks the next speaker from the participants' names and descriptions and the transcript,
 * answering with one name. A name that is no participant goes back to it as an error, and it picks
 * again. The selector's own tokens are not counted in the chat's usage (guard its model with a budget).
 */
export function selector(options: SelectorOptions): SpeakerSelection {
  const { model, window = 20 } = options ?? {};
  if (typeof model?.complete !== 'function')
    throw invalidOption('selector.model', 'must be a model port', model);
  if (!(Number.isInteger(window) && window >= 1))
    throw invalidOption('selector.window', 'must be a positive integer', window);
  return {
    select: async (view, feedback, signal) => {
      const roster = view.participants.map((p) => `- ${p.name}: ${p.description}`).join('\n');
      const system =
        options.instructions ??
        `You choose who speaks next in a group chat. Participants:\n${roster}\nAnswer with exactly one name.`;
      const shown = view.turns
        .slice(-window)
        .filter((t) => t.error === undefined)
        .map((t) => `${t.speaker}: ${t.text}`)
        .join('\n');
      const messages: { role: 'user'; content: string }[] = [
        {
          role: 'user',
          content: `Task: ${view.task}\n\nTranscript:\n${shown || '(empty)'}\n\nWho speaks next?`,
        },
      ];
      for (const error of feedback)
        messages.push({ role: 'user', content: `${error.code}: ${error.message}` });
      const answer = await model.complete({ system, messages }, { signal });
      return answer.text.trim();
    },
  };
}

/** Options of {@link handoffs}. */
export interface HandoffOptions {
  /**
   * Reads the name of the next speaker from an answer, or undefined for none. Defaults to the name
   * after `HANDOFF:` (`HANDOFF: critic`).
   */
  readonly parse?: (text: string) => string | undefined;
  /** Who speaks when an answer names nobody (or nobody known). Defaults to {@link roundRobin}. */
  readonly fallback?: SpeakerSelection;
}

/** The last answer names the next speaker (`HANDOFF: <name>`); otherwise the fallback picks. */
export function handoffs(options: HandoffOptions = {}): SpeakerSelection {
  const parse = options.parse ?? ((text: string) => /HANDOFF:\s*([^\s.,;!]+)/i.exec(text)?.[1]);
  const fallback = options.fallback ?? roundRobin();
  if (typeof parse !== 'function') throw invalidOption('handoffs.parse', 'must be a function', parse);
  if (typeof fallback?.select !== 'function')
    throw invalidOption('handoffs.fallback', 'must be a speaker selection', fallback);
  return {
    select: (view, feedback, signal) => {
      const last = view.turns.at(-1);
      // The named one was unknown: the answer will not change, so the fallback picks.
      const named =
        feedback.length === 0 && last !== undefined && last.error === undefined
          ? parse(last.text)
          : undefined;
      return named ?? fallback.select(view, [], signal);
    },
  };
}

/** The option as a {@link SpeakerSelection}. */
export function toSelection(option: SelectionOption | undefined): SpeakerSelection {
  if (option === undefined) return roundRobin();
  if (typeof option === 'function') return { select: (view, feedback) => option(view, feedback) };
  if (typeof option?.select !== 'function')
    throw invalidOption('selection', 'must be a speaker selection or a function', option);
  return option;
}
