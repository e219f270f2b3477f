/**
 * Issue 5, acceptance 6: the page at `/` in a real browser (headless Debian Chromium via playwright-core).
 * It connects over graphql-transport-ws, shows the watched users, and a produced record changes a count on
 * screen. A screenshot is kept under test-results/ as an artifact.
 */
import { describe, expect, it } from 'vitest';
import { keepScreenshot, usePageTest } from '../utils/browser.js';
import { startTcpProxy } from '../utils/tcp-proxy.js';
import { WAIT_MS } from './helpers.js';

const t = usePageTest();
const send = (topic: string, key: string, value: object) => t.send(topic, [[key, value]]);

describe('the live page', () => {
  it('should show the watched users and a count changing after a produced record', async () => {
    await send(t.topics.users, 'p1', { userId: 'p1', username: 'ada', name: 'Ada Lovelace' });
    // Changed before p1's last change: resuming after p1's event resends nothing for it.
    await send(t.topics.users, 'p3', { userId: 'p3', username: 'grace' });
    await send(t.topics.tweets, 'pt1', { tweetId: 'pt1', userId: 'p1' });
    const { page, problems } = await t.open({ width: 1100, height: 420 });

    await page.goto(`${t.server().url}/?ids=p1,p2`);
    const cell = (user: string, field: string) =>
      page.locator(`tr[data-user="${user}"] td[data-field="${field}"]`);
    await cell('p1', 'tweetCount').filter({ hasText: /^1$/ }).waitFor({ timeout: WAIT_MS });
    expect(await cell('p1', 'username').textContent()).toBe('ada');
    expect(await cell('p2', 'username').textContent()).toBe('(no users row)');
    expect(await page.locator('#status').getAttribute('data-state')).toBe('live');

    await send(t.topics.tweets, 'pt2', { tweetId: 'pt2', userId: 'p1' });
    await cell('p1', 'tweetCount').filter({ hasText: /^2$/ }).waitFor({ timeout: WAIT_MS });
    expect(await cell('p1', 'kind').textContent()).toBe('UPDATED');

    // The socket drops (a TCP cut, no close frame) and a change happens meanwhile: the page reconnects with
    // `after` and receives that change as an UPDATED, and nothing for the user that did not change.
    const proxy = await startTcpProxy(t.server().url);
    try {
      await page.goto(`${proxy.url}/?ids=p1,p3`);
      await cell('p1', 'tweetCount').filter({ hasText: /^2$/ }).waitFor({ timeout: WAIT_MS });
      await cell('p3', 'username')
        .filter({ hasText: /^grace$/ })
        .waitFor({ timeout: WAIT_MS });
      await page.locator('#status[data-state="live"]').waitFor({ timeout: WAIT_MS });
      expect(await page.locator('#events').textContent()).toBe('2 events'); // the two snapshots
      proxy.cut();
      await send(t.topics.tweets, 'pt3', { tweetId: 'pt3', userId: 'p1' });
      await cell('p1', 'tweetCount').filter({ hasText: /^3$/ }).waitFor({ timeout: WAIT_MS });
      expect(await cell('p1', 'kind').textContent()).toBe('UPDATED');
      expect(await cell('p3', 'kind').textContent()).toBe('SNAPSHOT');
      expect(await page.locator('#events').textContent()).toBe('3 events');
      expect(proxy.connections()).toBeGreaterThanOrEqual(2);
    } finally {
      await proxy.close();
    }

    await keepScreenshot(page, 'live-page');
    expect(problems).toEqual([]);
    await page.close();
  });
});
