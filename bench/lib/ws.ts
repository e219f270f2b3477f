/**
 * A minimal graphql-transport-ws client for the live scenarios: one `ws` socket, many subscriptions, and
 * the arrival time of every `next` message taken before any parsing, so the client's own cost (10,000
 * graphql-ws client objects and JSON parses) does not stretch what is measured.
 */
import WebSocket from 'ws';

export interface Arrival {
  readonly at: number;
  readonly subscription: number;
  readonly data: string;
}

export class LiveSocket {
  private readonly ws: WebSocket;
  readonly opened: Promise<void>;
  private nextId = 0;

  private constructor(url: string, onNext: (a: Arrival) => void) {
    this.ws = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('error', reject);
      this.ws.once('open', () => this.ws.send(JSON.stringify({ type: 'connection_init', payload: {} })));
      this.ws.on('message', (raw: Buffer) => {
        const at = performance.timeOrigin + performance.now();
        const text = raw.toString();
        if (text.startsWith('{"type":"connection_ack"') || text.includes('"connection_ack"'))
          return resolve();
        if (text.includes('"type":"ping"')) return this.ws.send('{"type":"pong"}');
        const m = /"id":"(\d+)"/.exec(text);
        if (text.includes('"type":"next"') && m?.[1] !== undefined)
          onNext({ at, subscription: Number(m[1]), data: text });
      });
    });
  }

  static async open(httpUrl: string, onNext: (a: Arrival) => void): Promise<LiveSocket> {
    const s = new LiveSocket(`${httpUrl.replace(/^http/, 'ws')}/graphql`, onNext);
    await s.opened;
    return s;
  }

  /** Starts a subscription; returns its id (numbers, unique per socket). */
  subscribe(query: string, variables: Record<string, unknown>): number {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id: String(id), type: 'subscribe', payload: { query, variables } }));
    return id;
  }

  close(): void {
    this.ws.close();
  }
}
