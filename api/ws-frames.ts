/**
 * Serialize each subscription result once, however many connections it goes to (issue 7, fan-out).
 *
 * graphql-ws builds every `next` frame itself as `JSON.stringify({ id, type: 'next', payload })`, so a
 * result shared by 10,000 watchers (api/shared-results.ts) used to be serialized 10,000 times. Instead, the
 * `onNext` hook hands graphql-ws a stand-in payload whose `toJSON` is a short token; the frame then reads
 * `{"id":"…","type":"next","payload":"\u0000matview-json:<n>"}` and the connection's `send` swaps the
 * token for the result's JSON, computed once per result object. The bytes on the wire are exactly what
 * graphql-ws would have sent (`payload` is the last key it writes; a test compares them).
 *
 * Tokens are per connection and used once: `onNext` registers one, the next `send` of that connection with
 * that token takes it. A token whose frame is never sent (the socket closed in between) is dropped with the
 * connection. A result a compiled plan wrote (`PrerenderedResult`, api/shared-results.ts) brings its JSON.
 */
import type { FormattedExecutionResult } from 'graphql';
import { PrerenderedResult } from './shared-results.js';

const MARK = '\u0000matview-json:';
/** How JSON.stringify writes the token at the end of a frame: `"payload":"\u0000matview-json:`. */
const FRAME_TAIL = `"payload":${JSON.stringify(MARK).slice(0, -1)}`;

/** Per server: the JSON of each result, and the tokens each connection has yet to send. */
export interface FrameSerializer {
  /** The payload to return from graphql-ws `onNext` for an error-free result sent on `connection`. */
  payloadFor(connection: object, result: object): FormattedExecutionResult;
  /** The frame to put on the wire: `frame` with its token (if any) replaced by the result's JSON. */
  expand(connection: object, frame: unknown): unknown;
}

/** The stand-in payload: serializes as its token. */
class Token {
  constructor(private readonly token: number) {}
  toJSON(): string {
    return MARK + String(this.token);
  }
}

export function createFrameSerializer(): FrameSerializer {
  const json = new WeakMap<object, string>();
  const pending = new WeakMap<object, Map<number, string>>();
  let nextToken = 0;

  return {
    payloadFor(connection, result) {
      let text = json.get(result);
      if (text === undefined)
        json.set(result, (text = result instanceof PrerenderedResult ? result.json : JSON.stringify(result)));
      let tokens = pending.get(connection);
      if (tokens === undefined) pending.set(connection, (tokens = new Map()));
      const token = nextToken++;
      tokens.set(token, text);
      return new Token(token) as unknown as FormattedExecutionResult;
    },
    expand(connection, frame) {
      if (typeof frame !== 'string' || !frame.endsWith('"}')) return frame;
      const at = frame.lastIndexOf(FRAME_TAIL);
      if (at === -1) return frame;
      const token = Number(frame.slice(at + FRAME_TAIL.length, -2));
      const tokens = pending.get(connection);
      const text = tokens?.get(token);
      if (text === undefined) return frame;
      tokens?.delete(token);
      return `${frame.slice(0, at)}"payload":${text}}`;
    },
  };
}
