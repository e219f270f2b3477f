/**
 * Issue 18, point 3 over HTTP with a fake store: `extensions.asOf` on what the fast path and Apollo answer and
 * on the errors answered before Apollo; `extensions.minOffsets` answered at once when applied, after the commit
 * that applies it when not (woken by the commit, no polling), refused with NOT_YET_APPLIED after
 * MIN_OFFSETS_TIMEOUT_MS, and refused at once when malformed. With real Kafka offsets:
 * test/integration/read-your-writes.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { createMinOffsetsGate } from '../../api/consistency/min-offsets.js';
import { eventually } from '../utils/server.js';
import { asOfOf, gql, http, makeUser, useTestApi } from '../utils/testkit.js';

const QUERY = '{ user(id: "1") { userId tweetCount } }';
const at = (offset: string) => ({ minOffsets: { tweets: { '2': offset } } });
const positions = (next: string) => [
  { topic: 'users', partition: 0, next: '5' },
  { topic: 'tweets', partition: 2, next },
];

describe('extensions.asOf', () => {
  const t = useTestApi({ users: [makeUser(1)] });

  it('is on errors answered before Apollo too, with the store sequence and the feed lag', async () => {
    t.feed.lag = 42;
    try {
      const bad = await gql(t.url, '{ not json');
      expect(bad.json()).toEqual({
        errors: [{ message: 'Request body is not valid JSON.', extensions: { code: 'BAD_REQUEST' } }],
        extensions: { asOf: { sequence: String(t.reader.sequence()), lagRecords: 42 } },
      });
      t.feed.lag = null;
      expect((await gql(t.url, { query: QUERY })).json()).toMatchObject({ extensions: asOfOf(t) });
      // Refused by Apollo before any plugin runs (CSRF prevention): the answer still says where the store is.
      const blocked = await http(`${t.url}/graphql?query=${encodeURIComponent(QUERY)}`);
      expect(blocked.status).toBe(400);
      expect(blocked.json()).toMatchObject({
        errors: [{ extensions: { code: 'BAD_REQUEST' } }],
        extensions: asOfOf(t),
      });
    } finally {
      t.feed.lag = 0;
    }
  });
});

describe('extensions.minOffsets', () => {
  const t = useTestApi({ users: [makeUser(1)], env: { MIN_OFFSETS_TIMEOUT_MS: '60000' } });

  it('answers at once, through the fast path, when the offsets are applied', async () => {
    t.reader.setPositions(positions('10'));
    t.reader.resetCalls();
    const res = await gql(t.url, { query: QUERY, extensions: at('9') });
    expect(res.json()).toEqual({ data: { user: { userId: '1', tweetCount: 1 } }, extensions: asOfOf(t) });
    expect(t.reader.calls.getUsersUnversioned).toBe(1); // the fast path served it
  });

  it('waits for the commit that applies the offset, then answers with what it committed', async () => {
    t.reader.setPositions(positions('10'));
    const answer = gql(t.url, { query: QUERY, extensions: at('12') });
    await eventually(() => (t.api.minOffsets.pending() === 1 ? true : undefined));
    t.reader.setPositions(positions('12')); // offset 12 is not applied yet: next 12 means up to 11
    t.reader.put(makeUser(1, undefined, { tweetCount: 7 }));
    expect(t.api.minOffsets.pending()).toBe(1);
    t.reader.setPositions(positions('13'));
    const res = await answer;
    expect(res.json()).toEqual({ data: { user: { userId: '1', tweetCount: 7 } }, extensions: asOfOf(t) });
    expect(t.api.minOffsets.pending()).toBe(0);
  });

  it('waits on GET (the extensions parameter) and on a batch (the highest offset of all)', async () => {
    t.reader.setPositions(positions('20'));
    const get = http(
      `${t.url}/graphql?query=${encodeURIComponent(QUERY)}&extensions=${encodeURIComponent(JSON.stringify(at('25')))}`,
      { headers: { 'apollo-require-preflight': '1' } },
    );
    const batch = gql(t.url, [
      { query: QUERY, extensions: at('21') },
      { query: QUERY, extensions: at('30') },
    ]);
    await eventually(() => (t.api.minOffsets.pending() === 2 ? true : undefined));
    t.reader.setPositions(positions('26'));
    expect((await get).json()).toMatchObject({ data: { user: { userId: '1' } } });
    expect(t.api.minOffsets.pending()).toBe(1);
    t.reader.setPositions(positions('31'));
    expect((await batch).json()).toHaveLength(2);
  });

  it('refuses a malformed minOffsets at once with BAD_REQUEST', async () => {
    const cases: [unknown, RegExp][] = [
      [[1], /must be an object/],
      [
        { nope: { '0': '1' } },
        /names topic "nope", which this server does not consume \(it reads users, tweets, follows, likes\)/,
      ],
      [{ tweets: { x: '1' } }, /partition "x" with offset "1"/],
      [{ tweets: { '0': '-1' } }, /offset "-1"/],
      [{ tweets: { '0': 1.5 } }, /offset 1.5/],
    ];
    for (const [minOffsets, message] of cases) {
      const res = await gql(t.url, { query: QUERY, extensions: { minOffsets } });
      expect(res.status).toBe(400);
      const body = res.json<{ errors: { message: string; extensions: { code: string } }[] }>();
      expect(body.errors[0]?.extensions.code).toBe('BAD_REQUEST');
      expect(body.errors[0]?.message).toMatch(message);
    }
    // Offsets as JSON numbers are fine when exact.
    t.reader.setPositions(positions('10'));
    expect(
      (await gql(t.url, { query: QUERY, extensions: { minOffsets: { tweets: { '2': 3 } } } })).status,
    ).toBe(200);
  });
});

describe('extensions.minOffsets past MIN_OFFSETS_TIMEOUT_MS', () => {
  const t = useTestApi({ users: [makeUser(1)], env: { MIN_OFFSETS_TIMEOUT_MS: '50' } });

  it('answers 503 NOT_YET_APPLIED with Retry-After, naming the partition behind, and executes nothing', async () => {
    t.reader.setPositions(positions('10'));
    t.reader.resetCalls();
    const res = await gql(t.url, { query: QUERY, extensions: at('99') });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.json()).toEqual({
      errors: [
        {
          message:
            'Not answered: after 50 ms, tweets/2 offset 99 is not applied yet (the next offset to apply is 10). Retry later.',
          extensions: { code: 'NOT_YET_APPLIED' },
        },
      ],
      extensions: asOfOf(t),
    });
    expect(t.reader.calls).toMatchObject({ getUser: 0, getUsers: 0, getUsersUnversioned: 0, getUserJson: 0 });
    expect(t.api.minOffsets.pending()).toBe(0);
  });
});

describe('the minOffsets gate', () => {
  it('listens to commits only while a request waits, and checks every waiter on each commit', async () => {
    let positions = [{ topic: 'tweets', partition: 0, next: '5' }];
    const listeners = new Set<() => void>();
    const gate = createMinOffsetsGate({
      reader: { positions: () => positions },
      commits: {
        onCommit(listener) {
          listeners.add(listener);
          return () => listeners.delete(listener);
        },
      },
      topics: ['tweets'],
      timeoutMs: 60_000,
    });
    const commit = (next: string) => {
      positions = [{ topic: 'tweets', partition: 0, next }];
      for (const l of [...listeners]) l();
    };
    const required = (offset: string) =>
      gate.parse({ minOffsets: { tweets: { '0': offset } } }) as Map<string, bigint>;
    expect(await gate.wait(required('4'))).toBe(true);
    expect(listeners.size).toBe(0);
    const a = gate.wait(required('6'));
    const b = gate.wait(required('7'));
    expect([listeners.size, gate.pending()]).toEqual([1, 2]);
    commit('7');
    expect(await a).toBe(true);
    expect([listeners.size, gate.pending()]).toEqual([1, 1]);
    commit('8');
    expect(await b).toBe(true);
    expect([listeners.size, gate.pending()]).toEqual([0, 0]);
    expect(gate.parse({})).toBeUndefined();
    expect(gate.parse(undefined)).toBeUndefined();
  });
});
