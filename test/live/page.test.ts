/**
 * Issue 5, acceptance 6: the page at `/` in a real browser (headless Debian Chromium via playwright-core).
 * It connects over graphql-transport-ws, shows the watched users, and a produced record changes a count on
 * screen. A screenshot is kept under test-results/ as an artifact.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../utils/chromium.js';
import { freshTopics, startTestServer, type TestServer } from '../utils/server.js';
import { startTcpProxy } from '../utils/tcp-proxy.js';
import { WAIT_MS } from './helpers.js';

const ARTIFACTS = join(process.cwd(), 'test-results');
const topics = freshTopics();
let server: TestServer;
let browser: Browser | undefined;

beforeAll(async () => {
  server = await startTestServer({ topics });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const send = (topic: string, key: string, value: object) =>
  server.running.writer.send(topic, [{ key, value: JSON.stringify(value) }]);

describe('the live page', () => {
  it('should show the watched users and a count changing after a produced record', async () => {
    await send(topics.users, 'p1', { userId: 'p1', username: 'ada', name: 'Ada Lovelace' });
    await send(topics.tweets, 'pt1', { tweetId: 'pt1', userId: 'p1' });
    const page = await browser!.newPage({ viewport: { width: 1100, height: 420 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text()); // e.g. a Content-Security-Policy violation
    });
    page.on('pageerror', (e) => problems.push(e.message));

    await page.goto(`${server.url}/?ids=p1,p2`);
    const cell = (user: string, field: string) =>
      page.locator(`tr[data-user="${user}"] td[data-field="${field}"]`);
    await cell('p1', 'tweetCount').filter({ hasText: /^1$/ }).waitFor({ timeout: WAIT_MS });
    expect(await cell('p1', 'username').textContent()).toBe('ada');
    expect(await cell('p2', 'username').textContent()).toBe('(no users row)');
    expect(await page.locator('#status').getAttribute('data-state')).toBe('live');

    await send(topics.tweets, 'pt2', { tweetId: 'pt2', userId: 'p1' });
    await cell('p1', 'tweetCount').filter({ hasText: /^2$/ }).waitFor({ timeout: WAIT_MS });
    expect(await cell('p1', 'kind').textContent()).toBe('UPDATED');

    // The socket drops (a TCP cut, no close frame) and a change happens meanwhile: the page reconnects with
    // `after` and receives that change as an UPDATED, and nothing for the user that did not change.
    const proxy = await startTcpProxy(server.url);
    try {
      await page.goto(`${proxy.url}/?ids=p1,p2`);
      await cell('p1', 'tweetCount').filter({ hasText: /^2$/ }).waitFor({ timeout: WAIT_MS });
      await page.locator('#status[data-state="live"]').waitFor({ timeout: WAIT_MS });
      const before = await page.locator('#events').textContent();
      expect(before).toBe('2 events'); // the two snapshots
      proxy.cut();
      await send(topics.tweets, 'pt3', { tweetId: 'pt3', userId: 'p1' });
      await cell('p1', 'tweetCount').filter({ hasText: /^3$/ }).waitFor({ timeout: WAIT_MS });
      expect(await cell('p1', 'kind').textContent()).toBe('UPDATED');
      expect(await page.locator('#events').textContent()).toBe('3 events');
      expect(proxy.connections()).toBeGreaterThanOrEqual(2);
    } finally {
      await proxy.close();
    }

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'live-page.png') });
    expect(problems).toEqual([]);
    await page.close();
  });
});
