import { type Address, invalidOption, parseAddress } from '../protocols/index.js';
import { type ActorSystem, every, type SystemEvent, type TreeNode } from '../runtime/index.js';

/** Options of {@link renderTree}. */
export interface RenderTreeOptions {
  /** Colour statuses and restart counts with ANSI escape codes. Defaults to false (plain text). */
  readonly color?: boolean;
}

/** Options of {@link renderEvent}. */
export interface RenderEventOptions {
  /** Colour the event kind with ANSI escape codes. Defaults to false (plain text). */
  readonly color?: boolean;
}

/** Options of {@link watchSystem}. */
export interface WatchOptions {
  /** Where frames go. Defaults to `process.stdout.write`. */
  readonly write?: (text: string) => void;
  /** Time between frames. Defaults to 1000 ms. */
  readonly intervalMs?: number;
  /** Colour the output with ANSI escape codes. Defaults to false. */
  readonly color?: boolean;
  /**
   * Replace the previous frame in place (ANSI cursor movement; for a terminal) instead of appending
   * a new snapshot. Defaults to false.
   */
  readonly redraw?: boolean;
  /** How many recent events a frame lists. Defaults to 10. */
  readonly events?: number;
  /** Cut lines longer than this many visible characters (so an in-place redraw never wraps). No limit by default. */
  readonly width?: number;
}

/** The defaults of {@link WatchOptions}. */
export const watchDefaults = {
  intervalMs: 1000,
  color: false,
  redraw: false,
  events: 10,
} as const;

/** The event types a watch lists: what went wrong and what the supervisors did about it. */
const NOTABLE: ReadonlySet<SystemEvent['type']> = new Set([
  'actor-crashed',
  'actor-restarted',
  'restart-scheduled',
  'supervisor-escalated',
  'dead-letter',
  'mailbox-overflow',
  'hook-failed',
  'breaker-listener-failed',
  'snapshot-failed',
  'journal-defect',
  'system-draining',
  'system-stopped',
]);

const ESC = '\x1b[';
const RESET = `${ESC}0m`;
const STYLES = {
  bold: '1',
  dim: '2',
  red: '31',
  green: '32',
  yellow: '33',
  blue: '34',
  magenta: '35',
  cyan: '36',
} as const;
type Style = keyof typeof STYLES;

function paint(text: string, style: Style | undefined, color: boolean): string {
  return color && style !== undefined && text.length > 0 ? `${ESC}${STYLES[style]}m${text}${RESET}` : text;
}

const STATUS_STYLE: Record<TreeNode['status'], Style> = {
  starting: 'cyan',
  running: 'green',
  suspended: 'red',
  restarting: 'yellow',
  stopping: 'magenta',
  stopped: 'dim',
};

interface Row {
  readonly label: string;
  readonly lines: string;
  readonly node: TreeNode;
}

/**
 * Renders a supervision tree (from `system.tree()`) as ASCII art, one actor a line:
 * name, kind (with the strategy for supervisors), status, restart count and mailbox size.
 * Columns are aligned; colours are added only with `color: true`.
 *
 * @example
 * ```ts
 * console.log(renderTree(system.tree()));
 * // troupe://shop/local  guardian one_for_one     running  restarts=0  mailbox=0
 * // `-- app              supervisor rest_for_one  running  restarts=0  mailbox=0
 * ```
 */
export function renderTree(tree: TreeNode, options: RenderTreeOptions = {}): string {
  const color = options.color === true;
  const rows: Row[] = [];
  const walk = (node: TreeNode, prefix: string, branch: string) => {
    rows.push({
      label: node.kind === 'guardian' ? rootLabel(node) : node.name,
      lines: prefix + branch,
      node,
    });
    const children = node.children;
    const below = prefix + (branch === '' ? '' : branch === '`-- ' ? '    ' : '|   ');
    for (const [i, child] of children.entries()) {
      walk(child, below, i === children.length - 1 ? '`-- ' : '|-- ');
    }
  };
  walk(tree, '', '');
  const labelWidth = Math.max(...rows.map((r) => r.lines.length + r.label.length));
  const kinds = rows.map((r) => kindText(r.node));
  const kindWidth = Math.max(...kinds.map((k) => k.length));
  const statusWidth = Math.max(...rows.map((r) => r.node.status.length));
  return rows
    .map((row, i) => {
      const { node } = row;
      const pad = ' '.repeat(labelWidth - row.lines.length - row.label.length);
      const name = paint(row.label, node.kind === 'worker' ? undefined : 'bold', color);
      const kind = paint(kinds[i]!.padEnd(kindWidth), 'dim', color);
      const status = paint(node.status.padEnd(statusWidth), STATUS_STYLE[node.status], color);
      const restarts = paint(`restarts=${node.restarts}`, node.restarts > 0 ? 'yellow' : undefined, color);
      const mailbox = paint(`mailbox=${node.mailboxSize}`, node.mailboxSize > 0 ? 'cyan' : undefined, color);
      return `${paint(row.lines, 'dim', color)}${name}${pad}  ${kind}  ${status}  ${restarts}  ${mailbox}`;
    })
    .join('\n');
}

function rootLabel(node: TreeNode): string {
  return node.address.endsWith('/') ? node.address.slice(0, -1) : node.address;
}

function kindText(node: TreeNode): string {
  return node.kind === 'worker' ? 'worker' : `${node.kind} ${node.strategy}`;
}

/**
 * The path of an address (`troupe://shop/local/app/db` → `app/db`), or the address itself when it
 * cannot be parsed.
 */
export function shortAddress(address: Address): string {
  try {
    return parseAddress(address).path;
  } catch {
    return address;
  }
}

/** Renders one system event as a single line: time on the system's clock, kind, actor and what happened. */
export function renderEvent(event: SystemEvent, options: RenderEventOptions = {}): string {
  const color = options.color === true;
  const [kind, style, subject, text] = describeEvent(event);
  // Messages name actors by full address; within one system the path says enough.
  const detail = text.replace(/troupe:\/\/[^/\s]+\/[^/\s]+\//g, '');
  return `${paint(formatTime(event.at), 'dim', color)}  ${paint(kind.padEnd(11), style, color)}  ${subject}${
    detail === '' ? '' : `  ${paint(detail, 'dim', color)}`
  }`;
}

/**
 * One event in words, without its time: a short kind (`crashed`, `restarted`, `dead-letter`...), its
 * subject (an actor's path, a breaker, a member) and what happened.
 */
export function describeSystemEvent(event: SystemEvent): { kind: string; subject: string; detail: string } {
  const [kind, , subject, detail] = describeEvent(event);
  return { kind, subject, detail: detail.replace(/troupe:\/\/[^/\s]+\/[^/\s]+\//g, '') };
}

function describeEvent(event: SystemEvent): [string, Style | undefined, string, string] {
  switch (event.type) {
    case 'actor-spawned':
      return ['spawned', undefined, shortAddress(event.address), ''];
    case 'actor-started':
      return ['started', 'green', shortAddress(event.address), ''];
    case 'actor-stopped':
      return ['stopped', 'dim', shortAddress(event.address), event.reason];
    case 'actor-crashed':
      return [
        'crashed',
        'red',
        shortAddress(event.address),
        `${event.error.message}${event.message === undefined ? '' : ` (handling "${event.message.type}")`}`,
      ];
    case 'actor-restarted':
      return ['restarted', 'yellow', shortAddress(event.address), `restart #${event.restarts}`];
    case 'restart-scheduled':
      return [
        'backoff',
        'yellow',
        shortAddress(event.supervisor),
        `restarts ${event.children.map(shortAddress).join(', ')} in ${event.delayMs} ms`,
      ];
    case 'hook-failed':
      return ['hook-fail', 'red', shortAddress(event.address), event.error.message];
    case 'supervisor-escalated':
      return ['escalated', 'magenta', shortAddress(event.address), event.error.message];
    case 'dead-letter':
      return ['dead-letter', 'blue', shortAddress(event.to), `"${event.messageType}" (${event.reason})`];
    case 'mailbox-overflow':
      return [
        'overflow',
        'blue',
        shortAddress(event.address),
        `capacity ${event.capacity}, policy ${event.policy}`,
      ];
    case 'system-draining':
      return ['draining', 'cyan', 'system', ''];
    case 'system-stopped':
      return [
        'stopped',
        event.error === undefined ? 'cyan' : 'red',
        'system',
        event.error?.message ?? (event.drainTimedOut ? 'drain timed out' : ''),
      ];
    case 'member-up':
      return ['member-up', 'green', event.node, ''];
    case 'member-suspect':
      return ['suspect', 'yellow', event.node, 'missed a heartbeat'];
    case 'member-leaving':
      return ['leaving', 'cyan', event.node, ''];
    case 'member-down':
      return ['member-down', 'red', event.node, event.reason];
    case 'activation-started':
      return ['activated', 'green', shortAddress(event.address), `on ${event.node}, fence ${event.fence}`];
    case 'activation-stopped':
      return ['deactivated', 'dim', shortAddress(event.address), event.reason];
    case 'activation-failed':
      return [
        'key-failed',
        'red',
        shortAddress(event.address),
        `refused for ${event.quarantineMs} ms: ${event.error.message}`,
      ];
    case 'breaker-transition':
      return [
        'breaker',
        event.to === 'open' ? 'red' : event.to === 'closed' ? 'green' : 'yellow',
        event.breaker,
        `${event.from} -> ${event.to}`,
      ];
    case 'breaker-listener-failed':
      return [
        'hook-fail',
        'red',
        event.breaker,
        `onTransition (${event.from} -> ${event.to}): ${event.error.message}`,
      ];
    case 'bulkhead-rejected':
      return [
        'bulkhead',
        'yellow',
        event.bulkhead,
        `refused: ${event.active}/${event.maxConcurrent} running, ${event.queued}/${event.maxQueue} waiting`,
      ];
    case 'budget-exhausted':
      return [
        'budget',
        'yellow',
        shortAddress(event.agent),
        `refused: ${event.limit} budget of ${shortAddress(event.scope)}: ${event.used} of ${event.max} used, needs ${event.needed}`,
      ];
    case 'snapshot-failed':
      return [
        'snapshot',
        'red',
        shortAddress(event.address),
        `"${event.stream}" at version ${event.version}: ${event.error.message}`,
      ];
    case 'journal-defect':
      return ['journal', 'red', 'journal', event.error.message];
    case 'agent-step':
      return [
        'agent-step',
        event.error === undefined ? undefined : 'yellow',
        shortAddress(event.agent),
        `#${event.step} ${event.kind} ${event.name} ${Math.round(event.ms)} ms${event.error === undefined ? '' : ` ${event.error}`}`,
      ];
    case 'agent-run':
      return [
        'agent-run',
        event.phase === 'failed' ? 'red' : event.phase === 'finished' ? 'green' : undefined,
        shortAddress(event.agent),
        `${event.phase} after ${event.steps} steps${event.error === undefined ? '' : ` (${event.error})`}`,
      ];
  }
  // An event an application declared for itself (see TroupeEvents): its type and its fields. (No
  // exhaustiveness check on the cases above: any augmentation in a program, a test's included,
  // would break it.)
  const { type, at: _at, ...fields } = event as unknown as { type: string; at: number };
  return [type, undefined, '', jsonOf(fields)];
}

/** JSON text of an event's fields; never throws (a field may be a cycle or a BigInt). */
function jsonOf(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return '';
  }
}

/** The system clock's time (milliseconds from an arbitrary origin) as seconds. */
function formatTime(at: number): string {
  return `${(at / 1000).toFixed(3)}s`.padStart(9);
}

/**
 * Shows a live view of `system` on a terminal (or any text sink): a header with running totals, the
 * supervision tree and the last few notable events (crashes, restarts, escalations, dead letters,
 * overflows). It observes the system only through `events$` and `tree()`.
 *
 * A frame is drawn at once, then every `intervalMs`; when the system stops, a last frame is drawn and
 * the watch ends. The interval does not keep the process alive. While it watches, the system has a
 * subscriber, so it builds events and no longer writes dead letters to its `deadLetterLog`.
 *
 * @returns A function that stops the watch after drawing a last frame (idempotent).
 * @throws TroupeError `ERR_INVALID_OPTION` when `intervalMs`, `events` or `width` is out of range.
 * @example
 * ```ts
 * const stop = watchSystem(system, { redraw: process.stdout.isTTY, color: process.stdout.isTTY });
 * // ...
 * stop();
 * ```
 */
export function watchSystem(system: ActorSystem, options: WatchOptions = {}): () => void {
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const intervalMs = options.intervalMs ?? watchDefaults.intervalMs;
  const color = options.color ?? watchDefaults.color;
  const redraw = options.redraw ?? watchDefaults.redraw;
  const keep = options.events ?? watchDefaults.events;
  const width = options.width;
  if (!(intervalMs > 0)) throw invalidOption('intervalMs', 'must be a number > 0', intervalMs);
  if (!Number.isInteger(keep) || keep < 0)
    throw invalidOption('events', 'must be an integer >= 0', options.events);
  if (width !== undefined && !(Number.isInteger(width) && width >= 1)) {
    throw invalidOption('width', 'must be an integer >= 1', options.width);
  }

  const recent: SystemEvent[] = [];
  const totals = { crashes: 0, restarts: 0, escalations: 0, deadLetters: 0 };
  let lastTree: TreeNode | undefined;
  let previousLines = 0;
  let frames = 0;
  let stopped = false;

  const frame = () => {
    // Once the system drains or stops its tree empties; the last live tree tells more.
    const status = system.status.tag;
    if (status === 'running' || lastTree === undefined) lastTree = system.tree();
    const header = [
      paint(`troupe · ${system.name}`, 'bold', color),
      paint(status, status === 'running' ? 'green' : status === 'failed' ? 'red' : 'yellow', color),
      `crashes ${totals.crashes}`,
      `restarts ${totals.restarts}`,
      `escalations ${totals.escalations}`,
      `dead letters ${totals.deadLetters}`,
    ].join('  ·  ');
    const lines = [header, '', ...renderTree(lastTree, { color }).split('\n')];
    if (keep > 0) {
      lines.push('', paint(`last ${keep} events`, 'bold', color));
      if (recent.length === 0) lines.push(paint('  (none yet)', 'dim', color));
      for (const event of recent) lines.push(`  ${renderEvent(event, { color })}`);
    }
    const shown = width === undefined ? lines : lines.map((line) => cut(line, width));
    let out: string;
    if (redraw) {
      // Move up over the previous frame and clear to the end of the screen, then draw over it.
      out = `${previousLines > 0 ? `${ESC}${previousLines}F${ESC}0J` : ''}${shown.join('\n')}\n`;
      previousLines = shown.length;
    } else {
      out = `${frames > 0 ? '\n' : ''}${shown.join('\n')}\n`;
    }
    frames++;
    write(out);
  };

  let stopTimer: (() => void) | undefined;
  let subscription: ReturnType<ActorSystem['events$']['subscribe']> | undefined;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    stopTimer?.();
    subscription?.unsubscribe();
    frame();
  };
  subscription = system.events$.subscribe({
    next: (event) => {
      if (event.type === 'actor-crashed') totals.crashes++;
      else if (event.type === 'actor-restarted') totals.restarts++;
      else if (event.type === 'supervisor-escalated') totals.escalations++;
      else if (event.type === 'dead-letter') totals.deadLetters++;
      // Draining stops the tree; remember it as it was.
      else if (event.type === 'system-draining') lastTree = system.tree();
      if (keep === 0 || !NOTABLE.has(event.type)) return;
      recent.push(event);
      if (recent.length > keep) recent.shift();
    },
    // A stopped system completes the stream at once, so this can run before `subscribe` returns.
    complete: stop,
  });
  if (stopped) {
    subscription.unsubscribe();
    return stop;
  }
  // On the system's clock, as housekeeping: it never holds the process.
  stopTimer = every(system.clock, intervalMs, frame);
  frame();
  return stop;
}

/** Cuts `line` to `width` visible characters (the last one an ellipsis), keeping ANSI sequences intact. */
function cut(line: string, width: number): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences start with ESC.
  if (line.replace(/\x1b\[[0-9;]*m/g, '').length <= width) return line;
  let visible = 0;
  let i = 0;
  while (i < line.length && visible < width - 1) {
    if (line.startsWith(ESC, i)) {
      const end = line.indexOf('m', i);
      i = end < 0 ? line.length : end + 1;
    } else {
      visible++;
      i++;
    }
  }
  return `${line.slice(0, i)}…${line.includes(ESC) ? RESET : ''}`;
}
