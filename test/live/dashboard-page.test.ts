/**
 * Issue 16: the dashboard at `/dashboard` in a real browser (headless Debian Chromium via playwright-core).
 * It connects over graphql-transport-ws, shows the four leaderboards and the totals, and they change after
 * produced records; its chart gets feed samples with a rate and a freshness. A screenshot is kept under
 * test-results/ as an artifact, next to the live page's.
 */
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { keepScreenshot, usePageTest } from '../utils/browser.js';
import { WAIT_MS } from './helpers.js';

const t = usePageTest();
const { topics, send } = t;

/** A leaderboard as shown: `username count` per row, in rank order. */
const board = (page: Page, ranking: string) =>
  page
    .locator(`[data-ranking="${ranking}"] li[data-user]`)
    .evaluateAll((rows) =>
      rows.map((r) => `${r.querySelector('.who')?.textContent} ${r.querySelector('.n')?.textContent}`),
    );

/** Waits (polling the page, never sleeping a fixed time) until a leaderboard shows `rows`. */
const waitForBoard = (page: Page, ranking: string, rows: string[]) =>
  expect.poll(() => board(page, ranking), { timeout: WAIT_MS, interval: 100 }).toEqual(rows);

const totals = (page: Page) =>
  page
    .locator('[data-total]')
    .evaluateAll((cells) =>
      Object.fromEntries(cells.map((c) => [c.getAttribute('data-total'), c.textContent])),
    );

describe('the dashboard page', () => {
  it('should show the leaderboards and totals, change them after produced records, and chart the feed', async () => {
    await send(topics.users, [
      ['d1', { userId: 'd1', username: 'ada', name: 'Ada Lovelace' }],
      ['d2', { userId: 'd2', username: 'grace', name: 'Grace Hopper' }],
      ['d3', { userId: 'd3', username: 'alan' }],
    ]);
    await send(topics.tweets, [
      ['dt1', { tweetId: 'dt1', userId: 'd1' }],
      ['dt2', { tweetId: 'dt2', userId: 'd1' }],
      ['dt3', { tweetId: 'dt3', userId: 'd2' }],
    ]);
    await send(topics.follows, [['df1', { followId: 'df1', followerId: 'd3', followeeId: 'd2' }]]);
    await send(topics.likes, [['dl1', { likeId: 'dl1', userId: 'd3', tweetId: 'dt1' }]]);

    const { page, problems } = await t.open({ width: 1280, height: 820 });
    await page.goto(`${t.server().url}/dashboard`);
    await waitForBoard(page, 'TWEETS', ['ada 2', 'grace 1', 'alan 0']);
    expect({
      FOLLOWERS: await board(page, 'FOLLOWERS'),
      LIKES: await board(page, 'LIKES'),
      FOLLOWING: await board(page, 'FOLLOWING'),
    }).toEqual({
      FOLLOWERS: ['grace 1', 'ada 0', 'alan 0'],
      LIKES: ['alan 1', 'ada 0', 'grace 0'],
      FOLLOWING: ['alan 1', 'ada 0', 'grace 0'],
    });
    await page.locator('[data-total="follows"]').filter({ hasText: /^1$/ }).waitFor({ timeout: WAIT_MS });
    expect(await totals(page)).toMatchObject({ users: '3', tweets: '3', follows: '1', likes: '1' });
    expect(await page.locator('#status').getAttribute('data-state')).toBe('live');

    // A first feed sample before the next records, so the chart sees them arrive.
    const chart = page.locator('#chart');
    await expect
      .poll(async () => Number(await chart.getAttribute('data-samples')), { timeout: WAIT_MS, interval: 100 })
      .toBeGreaterThanOrEqual(1);

    // grace overtakes ada; ada's second tweet is deleted; a users row goes away.
    await send(topics.tweets, [
      ['dt4', { tweetId: 'dt4', userId: 'd2' }],
      ['dt5', { tweetId: 'dt5', userId: 'd2' }],
      ['dt2', null],
    ]);
    await send(topics.users, [['d3', null]]);
    await waitForBoard(page, 'TWEETS', ['grace 3', 'ada 1']);
    await waitForBoard(page, 'LIKES', ['ada 0', 'grace 0']);
    await page.locator('[data-total="users"]').filter({ hasText: /^2$/ }).waitFor({ timeout: WAIT_MS });
    expect(await totals(page)).toMatchObject({ users: '2', tweets: '4', follows: '1', likes: '1' });

    // The chart: samples once a second from feedStatus; records were consumed since the page opened.
    await expect
      .poll(async () => Number(await chart.getAttribute('data-peak-rate')), {
        timeout: WAIT_MS,
        interval: 100,
      })
      .toBeGreaterThan(0);
    expect(Number(await chart.getAttribute('data-samples'))).toBeGreaterThanOrEqual(2);
    expect(await page.locator('#freshness').textContent()).toMatch(/^\d+\.\d\d s$/);

    await keepScreenshot(page, 'dashboard-page');
    expect(problems).toEqual([]);
    await page.close();
  });
});
