/**
 * A scripted HTTP server on 127.0.0.1 for the model adapters' tests. Each test queues the replies the
 * next requests get, in order: JSON, raw text (a malformed body), a status with headers, Server-Sent
 * Events written in arbitrary chunks with pauses (then ended, cut or left hanging), or a hang before
 * the headers. Every request is recorded (method, path, headers, JSON body, when it arrived, and a
 * promise of its socket closing). `close()` ends every connection and timer.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, beforeEach, expect } from 'vitest';
import { TroupeError } from '../../protocols/index.js';

/** A request the server received. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The body parsed as JSON, or its text when it is not JSON. */
  readonly body: unknown;
  /** `performance.now()` when the request arrived. */
  readonly at: number;
  /** Resolves when the request's socket closes (the client aborted, or the server closed). */
  readonly socketClosed: Promise<void>;
}

/** A piece of a streamed body: text, bytes, or a pause before the next piece. */
export type StreamStep = string | Uint8Array | { readonly pauseMs: number };

/** How a streamed body ends: normally, by destroying the socket mid-body, or never. */
export type StreamEnd = 'end' | 'destroy' | 'hang';

/** What the server answers to one request. */
export type ScriptedReply =
  | {
      readonly kind: 'body';
      readonly status: number;
      readonly headers: Readonly<Record<string, string>>;
      readonly body: string;
    }
  | {
      readonly kind: 'stream';
      readonly status: number;
      readonly headers: Readonly<Record<string, string>>;
      readonly steps: readonly StreamStep[];
      readonly end: StreamEnd;
    }
  | { readonly kind: 'hang' };

/** Builders of {@link ScriptedReply}. */
export const reply = {
  /** A JSON body (status 200 unless given). */
  json(body: unknown, init: { status?: number; headers?: Record<string, string> } = {}): ScriptedReply {
    return {
      kind: 'body',
      status: init.status ?? 200,
      headers: { 'content-type': 'application/json', ...init.headers },
      body: JSON.stringify(body),
    };
  },
  /** A body sent as it is, labelled JSON by default: for malformed answers and plain-text errors. */
  text(body: string, init: { status?: number; headers?: Record<string, string> } = {}): ScriptedReply {
    return {
      kind: 'body',
      status: init.status ?? 200,
      headers: { 'content-type': 'application/json', ...init.headers },
      body,
    };
  },
  /** An error status with headers (`Retry-After`) and an optional JSON body. */
  status(status: number, init: { headers?: Record<string, string>; body?: unknown } = {}): ScriptedReply {
    return reply.json(init.body ?? { error: { message: `status ${status}` } }, {
      status,
      ...(init.headers === undefined ? {} : { headers: init.headers }),
    });
  },
  /** A `text/event-stream` body written step by step; `end` says how it ends (default: normally). */
  sse(steps: readonly StreamStep[], end: StreamEnd = 'end'): ScriptedReply {
    return { kind: 'stream', status: 200, headers: { 'content-type': 'text/event-stream' }, steps, end };
  },
  /** No answer at all: the request hangs until the client gives up or the server closes. */
  hang(): ScriptedReply {
    return { kind: 'hang' };
  },
};

/** One SSE event: `event:` (when named) and `data:` (JSON unless a string), then a blank line. */
export function sseEvent(data: unknown, event?: string): string {
  const text = typeof data === 'string' ? data : JSON.stringify(data);
  return `${event === undefined ? '' : `event: ${event}\n`}data: ${text}\n\n`;
}

/** `text` cut into pieces of `size` bytes (UTF-8), so that characters and lines split between chunks. */
export function bytePieces(text: string, size: number): Uint8Array[] {
  const bytes = new TextEncoder().encode(text);
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) pieces.push(bytes.subarray(at, at + size));
  return pieces;
}

/** `pieces` with a pause of `pauseMs` before every `every`-th piece (so that they arrive apart). */
export function withPauses(pieces: readonly StreamStep[], pauseMs: number, every = 3): StreamStep[] {
  return pieces.flatMap((piece, index) =>
    index === 0 || index % every !== 0 ? [piece] : [{ pauseMs }, piece],
  );
}

/** A running scripted server. */
export interface WireServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Queues replies for the next requests, in order. A request with none queued gets a 599. */
  reply(...replies: ScriptedReply[]): void;
  /** Closes every connection, stops every stream and timer, and the server. */
  close(): Promise<void>;
}

/** Starts a {@link WireServer} on 127.0.0.1, on a free port. */
export async function startWireServer(): Promise<WireServer> {
  const queue: ScriptedReply[] = [];
  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let closing = false;
  const server = createServer({ noDelay: true, keepAlive: true }, (req, res) => {
    void handle(req, res);
  });

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = performance.now();
    const socketClosed = closedPromise(req.socket);
    const text = await readBody(req);
    requests.push({
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      body: parsed(text),
      at,
      socketClosed,
    });
    const next = queue.shift();
    if (next === undefined) {
      res
        .writeHead(599, { 'content-type': 'application/json' })
        .end('{"error":{"message":"no scripted reply"}}');
      return;
    }
    if (next.kind === 'hang') return;
    if (next.kind === 'body') {
      res.writeHead(next.status, next.headers).end(next.body);
      return;
    }
    res.writeHead(next.status, next.headers);
    res.flushHeaders();
    for (const step of next.steps) {
      if (closing || res.destroyed) return;
      if (typeof step === 'object' && 'pauseMs' in step) await pause(step.pauseMs);
      else res.write(step);
    }
    if (closing || res.destroyed) return;
    if (next.end === 'end') res.end();
    else if (next.end === 'destroy') {
      // Give the last write a moment to leave, then cut the connection mid-body.
      await pause(10);
      req.socket.destroy();
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    reply: (...replies) => {
      queue.push(...replies);
    },
    close: async () => {
      closing = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** A URL on 127.0.0.1 where nothing listens: a server took the port, then closed. */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

function closedPromise(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function parsed(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Resolves with `promise`, or rejects when it takes longer than `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Every text an error exposes: JSON, String(), message, and each cause's message, stack and String(). */
export function exposedTexts(error: unknown): string[] {
  const texts = [JSON.stringify(error) ?? '', String(error)];
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    if (current instanceof Error) texts.push(current.message, current.stack ?? '', String(current));
    else texts.push(String(current));
    current = (current as { cause?: unknown }).cause;
  }
  return texts;
}

/**
 * A fresh server for every test of the calling file, closed after it: the returned object stands for
 * the current test's server.
 */
export function useWireServer(): WireServer {
  let current: WireServer | undefined;
  beforeEach(async () => {
    current = await startWireServer();
  });
  afterEach(async () => {
    await current?.close();
  });
  return new Proxy({} as WireServer, {
    get: (_target, key) => {
      const value = Reflect.get(current!, key);
      return typeof value === 'function' ? value.bind(current) : value;
    },
  });
}

/** The TroupeError a promise rejects with; fails the test when it resolves or rejects otherwise. */
export async function failure(promise: Promise<unknown>): Promise<TroupeError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(TroupeError.is(error)).toBe(true);
  return error as TroupeError;
}
