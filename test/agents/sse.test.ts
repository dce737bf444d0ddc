/**
 * The Server-Sent Events parser shared by the model adapters: the WHATWG rules (line ends, blank
 * lines, comments, data joining, event names), and a property: however a byte stream is cut into
 * chunks (inside multi-byte UTF-8 characters, between `\r` and `\n`), the same events come out.
 * Replay a failure with FC_SEED=<seed>.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type SseEvent, SseParser } from '../../agents/http.js';
import { propertySeed, seeded } from '../harness/fast-check.js';

const SEED = propertySeed(20260611);
const encoder = new TextEncoder();

/** Parses `bytes` fed in the given chunks. */
function parseChunks(chunks: readonly Uint8Array[]): SseEvent[] {
  const parser = new SseParser();
  const events = chunks.flatMap((chunk) => parser.push(chunk));
  return [...events, ...parser.finish()];
}

/** `bytes` cut at `cuts` (positions, in any order, duplicates allowed). */
function cutAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(from, point));
    from = point;
  }
  return chunks;
}

describe('SseParser', () => {
  it('follows the format: line ends, comments, joined data, names, unfinished events', () => {
    const text =
      ': a comment\r\nevent: first\r\ndata: a\r\ndata:b\r\ndata\r\n\r\n' +
      'id: 7\rretry: 10\rdata:  two spaces\r\r' +
      'event: no-data\n\n' +
      'data: x\nevent: last\n\n' +
      'data: never finished\n';
    expect(parseChunks([encoder.encode(text)])).toEqual([
      { event: 'first', data: 'a\nb\n' },
      { event: 'message', data: ' two spaces' },
      { event: 'last', data: 'x' },
    ]);
  });

  it('gives the same events fed one byte at a time', () => {
    const text = 'data: é🌍\r\n\r\nevent: e\rdata: ü\r\rdata: z\n\n';
    const bytes = encoder.encode(text);
    const oneByOne = parseChunks([...bytes].map((byte) => Uint8Array.of(byte)));
    expect(oneByOne).toEqual(parseChunks([bytes]));
    expect(oneByOne).toEqual([
      { event: 'message', data: 'é🌍' },
      { event: 'e', data: 'ü' },
      { event: 'message', data: 'z' },
    ]);
  });

  it('yields the same events however the bytes are cut into chunks', () => {
    /** Text without line breaks, any code point (multi-byte UTF-8 included). */
    const lineText = fc.string({ unit: 'binary', maxLength: 12 }).map((s) => s.replace(/[\r\n]/g, ''));
    const ending = fc.constantFrom('\n', '\r\n', '\r');
    const eventArb = fc.record({
      name: fc.option(lineText, { nil: undefined }),
      data: fc.array(lineText, { minLength: 1, maxLength: 3 }),
      comment: fc.option(lineText, { nil: undefined }),
    });
    const streamArb = fc.record({
      events: fc.array(eventArb, { maxLength: 6 }),
      endings: fc.array(ending, { minLength: 40, maxLength: 40 }),
      cuts: fc.array(fc.nat(), { maxLength: 30 }),
    });
    fc.assert(
      fc.property(streamArb, ({ events, endings, cuts }) => {
        const lines = events.flatMap((event) => [
          ...(event.comment === undefined ? [] : [`:${event.comment}`]),
          ...(event.name === undefined ? [] : [`event: ${event.name}`]),
          ...event.data.map((data) => `data: ${data}`),
          '',
        ]);
        let previous = '';
        const text = lines
          .map((line, index) => {
            let end = endings[index % endings.length]!;
            // A blank line ended by "\n" right after a line ended by "\r" would read as one "\r\n".
            if (line === '' && previous === '\r' && end === '\n') end = '\r\n';
            previous = end;
            return line + end;
          })
          .join('');
        const expected = events.map((event) => ({
          event: event.name || 'message',
          data: event.data.join('\n'),
        }));
        const bytes = encoder.encode(text);
        expect(parseChunks([bytes])).toEqual(expected);
        expect(parseChunks(cutAt(bytes, cuts))).toEqual(expected);
      }),
      seeded('SSE chunking', SEED, 200),
    );
  });
});
