/**
 * Issue 5, acceptance 6: the page at `/` in a real browser (headless Debian Chromium via playwright-core).
 * It connects over graphql-transport-ws, shows the watched users, and a produced record changes a count on
 * screen. A screenshot is kept under test-results/ as an artifact.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepScreenshot, launchChromium, pageProblems } from '../utils/browser.js';
import { freshTopics, startTestServer, type TestServer } from '../utils/server.js';
import { WAIT_MS } from './helpers.js';

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
    const problems = pageProblems(page);

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

    await keepScreenshot(page, 'live-page');
    expect(problems).toEqual([]);
    await page.close();
  });
});
