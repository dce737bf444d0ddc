/**
 * The message-port transport: the runtime's {@link Transport} port over one message channel between
 * a system and the host of its isolated actors (a worker thread's port, a child process's IPC). The
 * router above it batches per turn, so one `postMessage` carries every envelope of a turn as one
 * encoded frame: there is no structured clone per message, only one copy of the frame's bytes.
 */
import { TroupeError } from '../../protocols/index.js';
import { closeableOnce } from '../kernel/closeable.js';
import type { Frame, Transport, TransportSink } from '../remoting/transport.js';

/**
 * One end of a message channel: a worker's `parentPort`, a `Worker`, a `MessagePort`, a child
 * process's IPC. What goes through it is structured-cloned (arrays of strings, numbers and bytes).
 */
export interface HostPort {
  post(message: unknown): void;
  /** Calls `onMessage` for every message that arrives; returns a function that stops it. */
  listen(onMessage: (message: unknown) => void): () => void;
}

/** Tags of what travels on a host port: frames, acknowledgements, and the host's control messages. */
export const WIRE = { node: 0, reply: 1, ack: 2, control: 3 } as const;

/** Options of {@link messagePortTransport}. */
export interface MessagePortTransportOptions {
  /**
   * Keeps each frame sent until the other end acknowledges it, so that when the other end dies
   * (`failUnacknowledged`) its envelopes fail instead of vanishing. The side of the system that
   * hosts no actors of the other (the parent) sets it.
   */
  readonly retain?: boolean;
  /**
   * With `retain`: told of the envelopes of a frame kept as text that was never acknowledged (they
   * are decoded again only then). Without it such frames fail through `frame.fail` as any other.
   */
  readonly lost?: (text: string, error: TroupeError) => void;
  /** Messages of the port that are not frames (the host's control messages). */
  readonly control?: (message: unknown) => void;
  /** Told after each frame for this node was handed to the router (the host acknowledges from it). */
  readonly onReceive?: () => void;
  /** A frame for another node than this one: the parent relays it to that node's host. */
  readonly relay?: (channel: 'node' | 'reply', node: string, payload: string | Uint8Array) => boolean;
}

/** A message-port transport, with the hooks its owner (a host link) needs. */
export interface MessagePortTransport extends Transport {
  /** Sends a control message on the same port, in order with the frames. */
  control(message: unknown): void;
  /** Posts a frame another host sent for this port's node, as it is (no retention: its sender keeps it). */
  relay(channel: 'node' | 'reply', node: string, payload: string | Uint8Array): void;
  /** Acknowledges frames received up to `sequence` (the host does when it has handled them). */
  acknowledge(sequence: number): void;
  /** The sequence number of the last frame received. */
  readonly received: number;
  /** Fails every frame sent and not acknowledged (the other end died): each envelope fails with `error`. */
  failUnacknowledged(error: TroupeError): void;
  /** Frames sent and not yet acknowledged. */
  readonly unacknowledged: number;
}

/**
 * Makes a transport over `port`. Frames for this node go to the sink; with `relay`, frames for other
 * nodes go there. Frames are posted at once: the router already batched them per turn.
 */
export function messagePortTransport(
  port: HostPort,
  options: MessagePortTransportOptions = {},
): MessagePortTransport {
  let sink: TransportSink | undefined;
  let self: string | undefined;
  let stopListening: (() => void) | undefined;
  let sequence = 0;
  let received = 0;
  /**
   * Frames sent and not acknowledged (retain only), in order: the frame's text when the router gave
   * one and `lost` takes it (one string per frame: its envelopes need not live on, which keeps a
   * busy link's frames out of the old generation of the heap), else the frame.
   */
  const sent: { sequence: number; frame: Frame | string }[] = [];
  let sentHead = 0;
  const early: unknown[] = [];
  const onMessage = (message: unknown) => {
    if (!Array.isArray(message)) return;
    const tag = message[0];
    if (tag === WIRE.node || tag === WIRE.reply) {
      received = message[1] as number;
      const node = message[2] as string;
      const payload = message[3] as string | Uint8Array;
      const channel = tag === WIRE.node ? 'node' : 'reply';
      if (node !== self && options.relay?.(channel, node, payload) === true) return;
      if (sink === undefined) {
        early.push(message);
        return;
      }
      if (typeof payload === 'string') {
        if (tag === WIRE.node) {
          if (sink.inboundText !== undefined) sink.inboundText(payload);
          else sink.inbound(Buffer.from(payload, 'utf8'));
        } else if (sink.repliesText !== undefined) sink.repliesText(payload);
        else sink.replies(Buffer.from(payload, 'utf8'));
      } else if (tag === WIRE.node) sink.inbound(payload);
      else sink.replies(payload);
      options.onReceive?.();
    } else if (tag === WIRE.ack) {
      const upTo = message[1] as number;
      while (sentHead < sent.length && sent[sentHead]!.sequence <= upTo)
        sent[sentHead++] = undefined as never;
      if (sentHead > 64 && sentHead * 2 > sent.length) {
        sent.splice(0, sentHead);
        sentHead = 0;
      }
    } else if (tag === WIRE.control) {
      options.control?.(message[1]);
    }
  };
  stopListening = port.listen(onMessage);
  const lifecycle = closeableOnce(async () => {
    stopListening?.();
    stopListening = undefined;
    sink = undefined;
    const error = new TroupeError(
      'ERR_NOT_DELIVERED',
      'the host link closed before the frame was acknowledged',
    );
    failFrom(error);
  });
  const failFrom = (error: TroupeError) => {
    const frames = sent.splice(sentHead);
    sent.length = 0;
    sentHead = 0;
    for (const { frame } of frames) {
      try {
        if (typeof frame === 'string') options.lost?.(frame, error);
        else frame.fail(error);
      } catch {
        // The router reports its own defects.
      }
    }
  };
  return {
    kind: 'message-port',
    ...lifecycle,
    async open(_cluster, node, s) {
      self = node;
      sink = s;
      for (const message of early.splice(0)) onMessage(message);
    },
    publish(channel, node, frame) {
      if (stopListening === undefined) {
        frame.fail(new TroupeError('ERR_NOT_DELIVERED', 'the host link is closed', { details: { node } }));
        return;
      }
      const n = ++sequence;
      try {
        // Text when the router has it: a one-byte string clones as one copy, with no encoding on
        // either side.
        port.post([channel === 'node' ? WIRE.node : WIRE.reply, n, node, frame.text ?? frame.bytes]);
      } catch (cause) {
        frame.fail(new TroupeError('ERR_NOT_DELIVERED', 'the host port refused the frame', { cause }));
        return;
      }
      if (options.retain === true) {
        sent.push({
          sequence: n,
          frame: frame.text !== undefined && options.lost !== undefined ? frame.text : frame,
        });
      }
    },
    control(message) {
      port.post([WIRE.control, message]);
    },
    relay(channel, node, payload) {
      port.post([channel === 'node' ? WIRE.node : WIRE.reply, 0, node, payload]);
    },
    acknowledge(upTo) {
      port.post([WIRE.ack, upTo]);
    },
    get received() {
      return received;
    },
    get unacknowledged() {
      return sent.length - sentHead;
    },
    failUnacknowledged(error) {
      failFrom(error);
    },
  };
}
