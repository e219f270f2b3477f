/**
 * A minimal graphql-transport-ws client for load (the benchmark's live scenarios, the load soak): one `ws`
 * socket, many subscriptions, and the arrival time of every `next` message taken before any parsing, so the
 * client's own cost (thousands of graphql-ws client objects and JSON parses) neither stretches what is
 * measured nor takes the CPU the server under test needs. Anything but `next` for a subscription (`error`,
 * `complete`) and a socket closed by the server are reported to `onProblem`.
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
  private closing = false;

  private constructor(url: string, onNext: (a: Arrival) => void, onProblem: (description: string) => void) {
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
        else if (text.includes('"type":"error"') || text.includes('"type":"complete"')) onProblem(text);
      });
      this.ws.on('close', (code: number, reason: Buffer) => {
        if (!this.closing) onProblem(`socket closed by the server: ${code} ${reason.toString()}`);
      });
    });
  }

  static async open(
    httpUrl: string,
    onNext: (a: Arrival) => void,
    onProblem: (description: string) => void = () => undefined,
  ): Promise<LiveSocket> {
    const s = new LiveSocket(`${httpUrl.replace(/^http/, 'ws')}/graphql`, onNext, onProblem);
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
    this.closing = true;
    this.ws.close();
  }
}
