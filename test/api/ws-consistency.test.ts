/**
 * Issue 18, point 3 over WebSocket: `extensions.asOf` on subscription events (the commit of the event's state)
 * and on queries run over the socket, and `extensions.minOffsets` on a `subscribe` (the operation starts once
 * the offsets are applied; NOT_YET_APPLIED after the timeout; BAD_REQUEST when malformed).
 */
import { describe, expect, it } from 'vitest';
import { attachLiveWebSocket } from '../../api/ws.js';
import type { LiveSource } from '../../src/live/types.js';
import { silentLogger } from '../../src/ops/logger.js';
import { RawSocket } from '../live/helpers.js';
import { eventually } from '../utils/server.js';
import { makeUser, testConfig, useTestApi, userLive, type TestApi } from '../utils/testkit.js';

const user = makeUser(1);
/** Two events: a SNAPSHOT that says which commit it comes from, and one from a source that does not know. */
const live: LiveSource = userLive(() => ({
  async *[Symbol.asyncIterator]() {
    yield { userId: '1', kind: 'SNAPSHOT', user, sequence: 1001n };
    yield { userId: '1', kind: 'UPDATED', user };
  },
}));
const SUBSCRIPTION = 'subscription { userChanged(id: "1") { kind user { version { sequence } } } }';

async function socketOf(
  t: TestApi,
  env: Record<string, string>,
): Promise<{ raw: RawSocket; close(): Promise<void> }> {
  const ws = attachLiveWebSocket({ api: t.api, config: testConfig(env), logger: silentLogger });
  const raw = await RawSocket.open(t.url);
  await raw.init();
  return {
    raw,
    close: async () => {
      raw.close();
      await ws.close();
    },
  };
}

const subscribe = (id: string, query: string, extensions?: object) => ({
  id,
  type: 'subscribe',
  payload: { query, ...(extensions === undefined ? {} : { extensions }) },
});
const payloadsOf = (raw: RawSocket, id: string) =>
  raw.messages.filter((m) => m['id'] === id && m['type'] !== 'complete').map((m) => m['payload']);

describe('extensions over WebSocket', () => {
  const env = { MIN_OFFSETS_TIMEOUT_MS: '60000' };
  const t = useTestApi({ users: [user], live, env });

  it('puts the commit of each event, and of each query, in extensions.asOf', async () => {
    const { raw, close } = await socketOf(t, env);
    t.feed.lag = 5;
    try {
      raw.send(subscribe('s', SUBSCRIPTION));
      await raw.waitFor((m) => m['id'] === 's' && m['type'] === 'complete', 'the end of the subscription');
      const current = String(t.reader.sequence());
      expect(payloadsOf(raw, 's')).toEqual([
        {
          data: { userChanged: { kind: 'SNAPSHOT', user: { version: { sequence: '1001' } } } },
          extensions: { asOf: { sequence: '1001', lagRecords: 5 } },
        },
        {
          data: { userChanged: { kind: 'UPDATED', user: { version: { sequence: '1001' } } } },
          extensions: { asOf: { sequence: current, lagRecords: 5 } },
        },
      ]);
      raw.send(subscribe('q', '{ user(id: "1") { tweetCount } }'));
      await raw.waitFor((m) => m['id'] === 'q' && m['type'] === 'complete', 'the query');
      expect(payloadsOf(raw, 'q')).toEqual([
        { data: { user: { tweetCount: 1 } }, extensions: { asOf: { sequence: current, lagRecords: 5 } } },
      ]);
    } finally {
      t.feed.lag = 0;
      await close();
    }
  });

  it('starts a subscribe carrying minOffsets once they are applied, and refuses a malformed one', async () => {
    const { raw, close } = await socketOf(t, env);
    try {
      t.reader.setPositions([{ topic: 'tweets', partition: 0, next: '3' }]);
      raw.send(subscribe('w', SUBSCRIPTION, { minOffsets: { tweets: { '0': '3' } } }));
      await eventually(() => (t.api.minOffsets.pending() === 1 ? true : undefined));
      expect(payloadsOf(raw, 'w')).toEqual([]);
      t.reader.setPositions([{ topic: 'tweets', partition: 0, next: '4' }]);
      await raw.waitFor((m) => m['id'] === 'w' && m['type'] === 'complete', 'the subscription');
      expect(payloadsOf(raw, 'w')).toHaveLength(2);

      raw.send(subscribe('bad', SUBSCRIPTION, { minOffsets: { nope: { '0': '1' } } }));
      const refused = await raw.waitFor((m) => m['id'] === 'bad', 'the refusal');
      expect(refused).toMatchObject({
        type: 'error',
        payload: [{ extensions: { code: 'BAD_REQUEST' } }],
      });
    } finally {
      await close();
    }
  });
});

describe('minOffsets over WebSocket past the timeout', () => {
  const env = { MIN_OFFSETS_TIMEOUT_MS: '50' };
  const t = useTestApi({ users: [user], live, env });

  it('ends the operation with NOT_YET_APPLIED, never starting it', async () => {
    const { raw, close } = await socketOf(t, env);
    try {
      raw.send(subscribe('late', SUBSCRIPTION, { minOffsets: { tweets: { '0': '99' } } }));
      const refused = await raw.waitFor((m) => m['id'] === 'late', 'the refusal');
      expect(refused).toEqual({
        id: 'late',
        type: 'error',
        payload: [
          {
            message:
              'Not started: after 50 ms, tweets/0 offset 99 is not applied yet (nothing of that partition is applied yet). Retry later.',
            extensions: { code: 'NOT_YET_APPLIED' },
          },
        ],
      });
    } finally {
      await close();
    }
  });
});
