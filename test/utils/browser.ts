/**
 * Headless Chromium for the page tests: Debian's /usr/bin/chromium driven by playwright-core (no browser
 * download), with the flags that keep it quiet and offline, next to a server the pages are loaded from.
 * Screenshots go to test-results/ as artifacts.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { freshTopics, startTestServer, type TestServer, type TestTopics } from './server.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(process.cwd(), 'test-results');

/** What a page test works with: a server with fresh topics (embedded changelog) and a browser. */
export interface PageTest {
  readonly topics: TestTopics;
  /** The running server (inside tests). */
  server(): TestServer;
  /** A new page of the browser, collecting what goes wrong on it (see `pageProblems`). */
  open(viewport: { width: number; height: number }): Promise<{ page: Page; problems: string[] }>;
  /** Writes rows to a topic of the embedded changelog (null value: a tombstone). */
  send(topic: string, rows: readonly (readonly [string, object | null])[]): Promise<void>;
}

/**
 * Starts a server and Chromium before the file's tests and stops both after, like every page test needs;
 * shipped defaults but the demo (DEMO=false), so the page shows only what the test writes.
 */
export function usePageTest(): PageTest {
  const topics = freshTopics();
  let server: TestServer | undefined;
  let browser: Browser | undefined;
  beforeAll(async () => {
    server = await startTestServer({ topics });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });
  const running = (): { server: TestServer; browser: Browser } => {
    if (server === undefined || browser === undefined) throw new Error('usePageTest(): only inside tests');
    return { server, browser };
  };
  return {
    topics,
    server: () => running().server,
    async open(viewport) {
      const page = await running().browser.newPage({ viewport });
      return { page, problems: pageProblems(page) };
    },
    async send(topic, rows) {
      await running().server.running.writer.send(
        topic,
        rows.map(([key, value]) => ({ key, value: value === null ? null : JSON.stringify(value) })),
      );
    },
  };
}

/** Headless Chromium with the flags that keep it quiet and offline on a shared CI box. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Collects what the page reports as wrong: console errors (e.g. a Content-Security-Policy violation) and uncaught errors. */
export function pageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  return problems;
}

/** Saves a screenshot of `page` as test-results/<name>.png. */
export async function keepScreenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}
