/**
 * Issue 18, point 1, in a real browser: a page served from another origin calls matview with `fetch` and a
 * WebSocket from headless Chromium (playwright-core, as test/live/page.test.ts). From an origin in
 * CORS_ORIGINS the preflighted POST, the Apollo-style GET, the REST route with a conditional request and the
 * health route all work and the subscription socket is acknowledged; from any other origin the browser
 * withholds every response and the socket is refused.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachLiveWebSocket, type LiveWebSocket } from '../../api/ws.js';
import { silentLogger } from '../../src/ops/logger.js';
import { launchChromium } from '../utils/browser.js';
import { asOfOf, makeUser, startTestApi, testConfig, type TestApi } from '../utils/testkit.js';

let app: Server;
let appPort: number;
let api: TestApi;
let socket: LiveWebSocket;
let browser: Browser | undefined;

beforeAll(async () => {
  // The frontend: any page will do; what matters is its origin.
  app = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>app</title>');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  appPort = (app.address() as AddressInfo).port;
  const env = { CORS_ORIGINS: `http://127.0.0.1:${appPort}` };
  api = await startTestApi({ users: [makeUser(1)], env });
  socket = attachLiveWebSocket({ api: api.api, config: testConfig(env), logger: silentLogger });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await socket?.close();
  await api?.close();
  await new Promise((resolve) => app?.close(resolve));
});

/** Everything the page tries, each as a short outcome string (or the browser's error). */
async function tryEverything(page: Page, apiUrl: string): Promise<Record<string, string>> {
  return page.evaluate(async (base) => {
    const attempt = async (f: () => Promise<string>): Promise<string> => {
      try {
        return await f();
      } catch (e) {
        return `blocked: ${(e as Error).name}`;
      }
    };
    const out: Record<string, string> = {};
    out['POST /graphql'] = await attempt(async () => {
      const res = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ user(id: "1") { username } }' }),
      });
      return `${res.status} ${await res.text()}`;
    });
    out['GET /graphql'] = await attempt(async () => {
      const query = encodeURIComponent('{ user(id: "1") { tweetCount } }');
      const res = await fetch(`${base}/graphql?query=${query}`, {
        headers: { 'apollo-require-preflight': 'true' },
      });
      return `${res.status} ${await res.text()}`;
    });
    out['GET /users/1'] = await attempt(async () => {
      const first = await fetch(`${base}/users/1`);
      const etag = first.headers.get('etag');
      // An author-set If-None-Match bypasses the HTTP cache (Fetch §4.5): the 304 reaches the script.
      const again = await fetch(`${base}/users/1`, { headers: { 'if-none-match': etag ?? '' } });
      return `${first.status} etag:${etag === null ? 'hidden' : 'readable'} then ${again.status}`;
    });
    out['GET /health/ready'] = await attempt(async () => {
      const res = await fetch(`${base}/health/ready`);
      return `${res.status} ${await res.text()}`;
    });
    out['WebSocket'] = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`${base.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
      ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init' }));
      ws.onmessage = (m) => {
        resolve(String(m.data));
        ws.close();
      };
      ws.onerror = () => resolve('blocked');
    });
    return out;
  }, apiUrl);
}

describe('CORS from headless Chromium', () => {
  it('lets a page on a listed origin read everything, and withholds it all from another origin', async () => {
    const asOf = JSON.stringify(asOfOf(api));
    const listed = await browser!.newPage();
    await listed.goto(`http://127.0.0.1:${appPort}/`);
    expect(await tryEverything(listed, api.url)).toEqual({
      'POST /graphql': `200 {"data":{"user":{"username":"user1"}},"extensions":${asOf}}\n`,
      'GET /graphql': `200 {"data":{"user":{"tweetCount":1}},"extensions":${asOf}}\n`,
      'GET /users/1': '200 etag:readable then 304',
      'GET /health/ready': '200 {"status":"ready"}',
      WebSocket: '{"type":"connection_ack"}',
    });
    await listed.close();

    // Same port, other host name: another origin, not in the list.
    const other = await browser!.newPage();
    await other.goto(`http://localhost:${appPort}/`);
    expect(await tryEverything(other, api.url)).toEqual({
      'POST /graphql': 'blocked: TypeError',
      'GET /graphql': 'blocked: TypeError',
      'GET /users/1': 'blocked: TypeError',
      'GET /health/ready': 'blocked: TypeError',
      WebSocket: 'blocked',
    });
    await other.close();
  });
});
