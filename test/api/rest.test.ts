/**
 * The REST resource (seed 002), health, metrics and routing on the same port (CONTRACT.md §3).
 */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { REST_FIELDS } from '../../src/views/user-information.js';
import { asOfOf, gql, http, makeUser, seededRandom, useTestApi } from '../utils/testkit.js';

const random = seededRandom(7);
const users = [
  ...Array.from({ length: 300 }, (_, i) => makeUser(i + 1, random)),
  makeUser(0, undefined, { userId: 'a b/é?x' }),
];

describe('GET /users/:userId', () => {
  const t = useTestApi({ users });

  it('matches user(id) field for field on 100 random users', async () => {
    const pick = seededRandom(11);
    const query = `query($id: ID!) { user(id: $id) { ${REST_FIELDS.join(' ')} } }`;
    for (let i = 0; i < 100; i++) {
      const user = users[Math.floor(pick() * 300)];
      if (user === undefined) throw new Error('fixture');
      const rest = await http(`${t.url}/users/${encodeURIComponent(user.userId)}`);
      expect(rest.status).toBe(200);
      expect(rest.headers.get('content-type')).toBe('application/json; charset=utf-8');
      const graphql = await gql(t.url, { query, variables: { id: user.userId } });
      const fromGraphql = graphql.json<{ data: { user: Record<string, unknown> } }>().data.user;
      const fromRest = rest.json();
      expect(Object.keys(fromRest)).toEqual([...REST_FIELDS]);
      expect(fromRest).toEqual(fromGraphql);
    }
  });

  it('decodes percent-encoded ids', async () => {
    const res = await http(`${t.url}/users/${encodeURIComponent('a b/é?x')}`);
    expect(res.json()).toMatchObject({ userId: 'a b/é?x' });
  });

  it('answers 404 USER_NOT_FOUND with a JSON error for unknown ids', async () => {
    const res = await http(`${t.url}/users/nobody`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.json()).toEqual({
      error: { code: 'USER_NOT_FOUND', message: 'No user with userId "nobody".' },
    });
  });

  it('answers 400 for malformed percent-encoding', async () => {
    const res = await http(`${t.url}/users/%E0%A4%A`);
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: 'BAD_REQUEST' } });
  });

  it('serves HEAD without a body', async () => {
    const res = await http(`${t.url}/users/1`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.text).toBe('');
  });
});

describe('GET /users/:userId conditional requests', () => {
  const t = useTestApi({ users: [makeUser(1), makeUser(2)] });

  it('tags each view with its version and answers If-None-Match with 304 until the view changes', async () => {
    const first = await http(`${t.url}/users/1`);
    const etag = first.headers.get('etag');
    expect(etag).toMatch(/^"[\w-]+\.1001"$/);
    expect(first.headers.get('cache-control')).toBe('no-cache');
    for (const ifNoneMatch of [etag!, `W/${etag!}`, `"other", ${etag!}`, '*']) {
      const again = await http(`${t.url}/users/1`, { headers: { 'if-none-match': ifNoneMatch } });
      expect({
        ifNoneMatch,
        status: again.status,
        body: again.text,
        etag: again.headers.get('etag'),
      }).toEqual({
        ifNoneMatch,
        status: 304,
        body: '',
        etag,
      });
    }
    const head = await http(`${t.url}/users/1`, { method: 'HEAD', headers: { 'if-none-match': etag! } });
    expect(head.status).toBe(304);
    // Another user's tag, or a tag of another process, does not match.
    const other = (await http(`${t.url}/users/2`)).headers.get('etag')!;
    expect((await http(`${t.url}/users/1`, { headers: { 'if-none-match': other } })).status).toBe(200);
    expect(
      (await http(`${t.url}/users/1`, { headers: { 'if-none-match': etag!.replace(/^"[^.]+/, '"x') } }))
        .status,
    ).toBe(200);

    t.reader.put(
      makeUser(1, undefined, { tweetCount: 5, version: { ...makeUser(1).version, sequence: '2000' } }),
    );
    const changed = await http(`${t.url}/users/1`, { headers: { 'if-none-match': etag! } });
    expect(changed.status).toBe(200);
    expect(changed.json()).toMatchObject({ tweetCount: 5 });
    expect(changed.headers.get('etag')).toBe(etag!.replace('.1001"', '.2000"'));
  });

  it('reads If-None-Match whatever the case of its name', async () => {
    const etag = (await http(`${t.url}/users/1`)).headers.get('etag')!;
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(`${t.url}/users/1`, { headers: { 'IF-NONE-MATCH': etag } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(304);
  });

  it('never tags a 404', async () => {
    const res = await http(`${t.url}/users/nobody`, { headers: { 'if-none-match': '*' } });
    expect(res.status).toBe(404);
    expect(res.headers.get('etag')).toBeNull();
  });
});

describe('health', () => {
  const t = useTestApi();

  it('/health/ready is 503 with the reason until the feed is ready, then 200', async () => {
    t.feed.isReady = false;
    t.feed.why = 'users/0 at 10 of 250';
    let res = await http(`${t.url}/health/ready`);
    expect(res.status).toBe(503);
    expect(res.json()).toEqual({ error: { code: 'NOT_READY', message: 'users/0 at 10 of 250' } });
    t.feed.isReady = true;
    t.feed.why = null;
    res = await http(`${t.url}/health/ready`);
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ status: 'ready' });
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('/health/live follows feed.live()', async () => {
    expect((await http(`${t.url}/health/live`)).status).toBe(200);
    t.feed.isLive = false;
    t.feed.why = 'feed crashed: broker unreachable';
    const res = await http(`${t.url}/health/live`);
    expect(res.status).toBe(503);
    expect(res.json()).toEqual({ error: { code: 'NOT_LIVE', message: 'feed crashed: broker unreachable' } });
    t.feed.isLive = true;
    t.feed.why = null;
  });

  it('feedStatus reports the monitor snapshot', async () => {
    const res = await gql(t.url, {
      query: `{ feedStatus { ready source state reason newestEventAgeSeconds sequence viewVersion
        partitions { topic partition next highWatermark lag } } }`,
    });
    expect(res.json()).toEqual({
      data: {
        feedStatus: {
          ready: true,
          source: 'EMBEDDED',
          state: 'RUNNING',
          reason: null,
          newestEventAgeSeconds: 0.25,
          sequence: '18446744073709551615',
          viewVersion: 1,
          partitions: [
            { topic: 'users', partition: 0, next: '42', highWatermark: '42', lag: '0' },
            { topic: 'tweets', partition: 0, next: '9007199254740993', highWatermark: null, lag: null },
          ],
        },
      },
      extensions: asOfOf(t),
    });
  });
});

describe('metrics and routing', () => {
  const t = useTestApi({ users: [makeUser(1)] });

  it('/metrics serves Prometheus text, including GraphQL request durations', async () => {
    await gql(t.url, { query: 'query ReadOne { user(id: "1") { userId } }' });
    await gql(t.url, { query: '{ feedStatus { ready } }', operationName: null });
    const res = await http(`${t.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.text).toContain('matview_graphql_request_seconds_count{operation="ReadOne"} 1');
    expect(res.text).toContain('matview_graphql_request_seconds_count{operation="anonymous"} 1');
  });

  it('unknown routes are a JSON 404', async () => {
    for (const path of ['/nope', '/users/', '/users/1/extra', '/graphql/x', '/health']) {
      const res = await http(`${t.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(res.json(), path).toMatchObject({ error: { code: 'NOT_FOUND' } });
    }
  });

  it('wrong methods are 405 with Allow', async () => {
    const cases: [string, string, string][] = [
      ['DELETE', '/users/1', 'GET, HEAD, OPTIONS'],
      ['POST', '/health/ready', 'GET, HEAD, OPTIONS'],
      ['PUT', '/metrics', 'GET, HEAD'],
      ['PUT', '/graphql', 'GET, POST, OPTIONS'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await http(`${t.url}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get('allow')).toBe(allow);
      expect(res.json()).toMatchObject({ error: { code: 'METHOD_NOT_ALLOWED' } });
    }
  });

  it('GET /graphql runs queries (with a CSRF-safe header) and refuses mutations', async () => {
    const url = `${t.url}/graphql?query=${encodeURIComponent('{ user(id: "1") { userId } }')}`;
    const blocked = await http(url);
    expect(blocked.status).toBe(400);
    const res = await http(url, { headers: { 'apollo-require-preflight': '1' } });
    expect(res.json()).toEqual({ data: { user: { userId: '1' } }, extensions: asOfOf(t) });
  });
});
