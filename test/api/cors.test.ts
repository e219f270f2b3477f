/**
 * CORS on /graphql, REST and health (issue 18, point 1), over raw HTTP: the headers a browser decides on,
 * under the default (`*`), a list and `none`; and the Origin check on the WebSocket handshake. The same
 * rules seen from a real browser on another origin: test/api/cors-chromium.test.ts.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { attachLiveWebSocket } from '../../api/ws.js';
import { PREFLIGHT_MAX_AGE_SECONDS } from '../../api/http/cors.js';
import { silentLogger } from '../../src/ops/logger.js';
import { asOfOf, gql, http, makeUser, testConfig, useTestApi, type TestResponse } from '../utils/testkit.js';

const APP = 'https://app.example.com';
const OTHER = 'https://evil.example.net';
const QUERY = { query: '{ user(id: "1") { username } }' };

const corsHeaders = (res: TestResponse) => ({
  status: res.status,
  allowOrigin: res.headers.get('access-control-allow-origin'),
  allowMethods: res.headers.get('access-control-allow-methods'),
  allowHeaders: res.headers.get('access-control-allow-headers'),
  maxAge: res.headers.get('access-control-max-age'),
  expose: res.headers.get('access-control-expose-headers'),
  vary: res.headers.get('vary'),
});

const preflight = (url: string, origin: string, method = 'POST', headers = 'content-type') =>
  http(url, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      'access-control-request-headers': headers,
    },
  });

describe('CORS with the default CORS_ORIGINS (*), as Apollo Server standalone', () => {
  const t = useTestApi({ users: [makeUser(1)] });

  it('answers a preflight with 204, the route methods and the asked headers, for any origin', async () => {
    const res = await preflight(`${t.url}/graphql`, OTHER, 'POST', 'content-type,apollo-require-preflight');
    expect(corsHeaders(res)).toEqual({
      status: 204,
      allowOrigin: '*',
      allowMethods: 'GET, POST',
      allowHeaders: 'content-type,apollo-require-preflight',
      maxAge: String(PREFLIGHT_MAX_AGE_SECONDS),
      expose: null,
      vary: 'Access-Control-Request-Headers',
    });
    expect(res.text).toBe('');
  });

  it('lets any origin read GraphQL (fast path and Apollo), REST and health, and exposes ETag', async () => {
    const fast = await gql(t.url, QUERY, { origin: OTHER });
    const apollo = await gql(
      t.url,
      { query: '{ feedStatus { ready } __schema { queryType { name } } }' },
      {
        origin: OTHER,
      },
    );
    const rest = await http(`${t.url}/users/1`, { headers: { origin: OTHER } });
    const ready = await http(`${t.url}/health/ready`, { headers: { origin: OTHER } });
    for (const res of [fast, apollo, rest, ready]) {
      expect(corsHeaders(res)).toMatchObject({ allowOrigin: '*', expose: 'ETag', vary: null });
    }
    expect(fast.json()).toEqual({ data: { user: { username: 'user1' } }, extensions: asOfOf(t) });
  });

  it('adds nothing to a request without Origin, nor to /metrics and the live page', async () => {
    expect(corsHeaders(await gql(t.url, QUERY))).toMatchObject({ allowOrigin: null, vary: null });
    for (const path of ['/metrics', '/']) {
      const res = await http(`${t.url}${path}`, { headers: { origin: OTHER } });
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    }
    expect((await preflight(`${t.url}/metrics`, OTHER, 'GET')).status).toBe(405);
  });
});

describe('CORS with a list of origins', () => {
  const t = useTestApi({ users: [makeUser(1)], env: { CORS_ORIGINS: `${APP}, http://localhost:3000` } });

  it('allows exactly the listed origins, naming the origin and varying on it', async () => {
    const allowed = await gql(t.url, QUERY, { origin: APP });
    expect(corsHeaders(allowed)).toMatchObject({ status: 200, allowOrigin: APP, vary: 'Origin' });
    const refused = await gql(t.url, QUERY, { origin: OTHER });
    // The server still answers (CORS is enforced by the browser), without the header the browser needs.
    expect(corsHeaders(refused)).toMatchObject({
      status: 200,
      allowOrigin: null,
      expose: null,
      vary: 'Origin',
    });
    const noOrigin = await http(`${t.url}/users/1`);
    expect(corsHeaders(noOrigin)).toMatchObject({ allowOrigin: null, vary: 'Origin' });
  });

  it('answers preflights of every CORS route, without allow-origin for an unlisted origin', async () => {
    const routes = [
      ['/graphql', 'GET, POST'],
      ['/users/1', 'GET, HEAD'],
      ['/health/live', 'GET, HEAD'],
      ['/health/ready', 'GET, HEAD'],
    ] as const;
    for (const [path, methods] of routes) {
      const ok = await preflight(`${t.url}${path}`, 'http://localhost:3000', 'GET', 'if-none-match');
      expect({ path, ...corsHeaders(ok) }).toEqual({
        path,
        status: 204,
        allowOrigin: 'http://localhost:3000',
        allowMethods: methods,
        allowHeaders: 'if-none-match',
        maxAge: String(PREFLIGHT_MAX_AGE_SECONDS),
        expose: null,
        vary: 'Origin, Access-Control-Request-Headers',
      });
      const refused = await preflight(`${t.url}${path}`, OTHER, 'GET');
      expect({ path, ...corsHeaders(refused) }).toMatchObject({
        path,
        status: 204,
        allowOrigin: null,
        allowMethods: null,
        allowHeaders: null,
      });
    }
  });

  it('refuses a browser WebSocket from an unlisted origin, not one from a listed origin, the server itself or a non-browser', async () => {
    const socket = attachLiveWebSocket({
      api: t.api,
      config: testConfig({ CORS_ORIGINS: APP }),
      logger: silentLogger,
    });
    try {
      const host = new URL(t.url).host;
      const outcomes: Record<string, string> = {};
      for (const [name, origin] of [
        ['listed', APP],
        ['unlisted', OTHER],
        ['same origin', `http://${host}`],
        ['no origin', undefined],
      ] as const) {
        outcomes[name] = await handshake(`${t.url.replace('http', 'ws')}/graphql`, origin);
      }
      expect(outcomes).toEqual({
        listed: 'open',
        unlisted: 'refused 403',
        'same origin': 'open',
        'no origin': 'open',
      });
    } finally {
      await socket.close();
    }
  });
});

describe('CORS_ORIGINS=none', () => {
  const t = useTestApi({ users: [makeUser(1)], env: { CORS_ORIGINS: 'none' } });

  it('sends no allow-origin to anyone, preflight included', async () => {
    expect(corsHeaders(await gql(t.url, QUERY, { origin: APP }))).toMatchObject({ allowOrigin: null });
    expect(corsHeaders(await preflight(`${t.url}/graphql`, APP))).toMatchObject({
      status: 204,
      allowOrigin: null,
    });
  });
});

describe('CORS_ORIGINS validation', () => {
  it.each(['https://app.example.com/', 'app.example.com', 'https://app.example.com/path', 'ftp://x', ''])(
    'refuses %j with a message naming the variable',
    (value) => {
      if (value === '') {
        // Empty means unset: the default applies.
        expect(testConfig({ CORS_ORIGINS: value }).corsOrigins).toBe('*');
        return;
      }
      expect(() => testConfig({ CORS_ORIGINS: value })).toThrow(/CORS_ORIGINS=.* must be "\*", "none" or/);
    },
  );

  it('parses a list, * and none', () => {
    expect(testConfig({ CORS_ORIGINS: 'https://a.example, http://localhost:3000' }).corsOrigins).toEqual([
      'https://a.example',
      'http://localhost:3000',
    ]);
    expect(testConfig({ CORS_ORIGINS: '*' }).corsOrigins).toBe('*');
    expect(testConfig({ CORS_ORIGINS: 'none' }).corsOrigins).toEqual([]);
  });
});

/** Opens a WebSocket with the given Origin; `open`, or `refused <status>`. */
function handshake(url: string, origin: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'graphql-transport-ws', origin === undefined ? {} : { origin });
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(`refused ${res.statusCode ?? 0}`);
      ws.terminate();
    });
    ws.once('error', reject);
  });
}
