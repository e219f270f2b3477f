/** Pre-serialized `next` frames are byte for byte what graphql-ws would have sent (api/ws-frames.ts). */
import { describe, expect, it } from 'vitest';
import { createFrameSerializer } from '../../api/ws-frames.js';

/** graphql-ws' own frame for a result: `stringifyMessage({ id, type: 'next', payload })`. */
const frameOf = (id: string, payload: unknown): string => JSON.stringify({ id, type: 'next', payload });

describe('createFrameSerializer', () => {
  const results: object[] = [
    {
      data: {
        userChanged: { userId: '7', kind: 'UPDATED', user: { name: 'Ada "the first" \u2028 ✓', n: 1 } },
      },
    },
    { data: { usersChanged: { userId: '8', kind: 'DELETED', user: null } } },
    { data: null },
  ];

  it('puts exactly the result JSON in place of the token', () => {
    const frames = createFrameSerializer();
    const connection = {};
    for (const [i, result] of results.entries()) {
      for (const id of ['1', 'x"},"payload":"', '\u0000matview-json:0']) {
        const sent = frames.expand(connection, frameOf(id, frames.payloadFor(connection, result)));
        expect(sent).toBe(frameOf(id, result));
        expect(JSON.parse(sent as string)).toEqual({ id, type: 'next', payload: results[i] });
      }
    }
  });

  it('serializes a result once however many frames carry it', () => {
    const frames = createFrameSerializer();
    let reads = 0;
    const result = {
      get data() {
        reads++;
        return { a: 1 };
      },
    };
    const connections = [{}, {}, {}];
    for (const c of connections) frames.expand(c, frameOf('1', frames.payloadFor(c, result)));
    expect(reads).toBe(1);
  });

  it('uses a token once, on its own connection only', () => {
    const frames = createFrameSerializer();
    const [a, b] = [{}, {}];
    const frame = frameOf('1', frames.payloadFor(a, results[0]!));
    expect(frames.expand(b, frame)).toBe(frame);
    expect(frames.expand(a, frame)).toBe(frameOf('1', results[0]!));
    expect(frames.expand(a, frame)).toBe(frame);
  });

  it('leaves every other frame alone', () => {
    const frames = createFrameSerializer();
    const c = {};
    frames.payloadFor(c, results[0]!);
    for (const other of [
      '{"type":"connection_ack"}',
      '{"id":"1","type":"complete"}',
      frameOf('1', { data: { s: '\u0000matview-json:0' } }),
      Buffer.from('binary'),
    ])
      expect(frames.expand(c, other)).toBe(other);
  });
});
