/**
 * The pages a person opens in a browser: `GET /`, the live page (api/page/index.html), so a person sees the
 * product working after `npm start`, and `GET /dashboard` (api/page/dashboard.html, issue 16). Static files
 * read once at start; no build step (scripts/build.mjs copies them next to the bundle). What both share
 * (shared.css, shared.js) is included where a page says `/* include: <file> *\/`, still inline, so their
 * inline script and style stay allowed by hash in a Content-Security-Policy that permits nothing else (CSP
 * Level 3 `'sha256-…'` sources); `connect-src 'self'` covers the same-origin WebSocket.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { send } from '../http/respond.js';

/** The live page of single users, at `/`. */
export const LIVE_PAGE = new URL('./index.html', import.meta.url);
/** The dashboard (leaderboards, totals, feed chart), at `/dashboard`. */
export const DASHBOARD_PAGE = new URL('./dashboard.html', import.meta.url);

/** CSP source for the body of every `<tag>…</tag>` in `html`. */
function inlineHashes(html: string, tag: 'script' | 'style'): string {
  const sources: string[] = [];
  for (const m of html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))) {
    sources.push(
      `'sha256-${createHash('sha256')
        .update(m[1] ?? '', 'utf8')
        .digest('base64')}'`,
    );
  }
  return sources.join(' ');
}

/** `html` with every `/* include: <file> *\/` replaced by that file, read from next to `page`. */
function withIncludes(html: string, page: URL): string {
  return html.replace(/\/\* include: ([a-z-]+\.(?:css|js)) \*\//g, (_, name: string) =>
    readFileSync(new URL(`./${name}`, page), 'utf8').trimEnd(),
  );
}

/** Builds the `GET`/`HEAD` handler of one page. Reads it now, so a missing file fails at start, not per request. */
export function createPageRoute(page: URL): (req: IncomingMessage, res: ServerResponse) => void {
  const html = withIncludes(readFileSync(page, 'utf8'), page);
  const body = Buffer.from(html, 'utf8');
  const csp = [
    "default-src 'none'",
    `script-src ${inlineHashes(html, 'script')}`,
    `style-src ${inlineHashes(html, 'style')}`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const headers = [
    'content-security-policy',
    csp,
    'cache-control',
    'no-cache',
    'x-content-type-options',
    'nosniff',
  ];
  return (req, res) => {
    if (req.method === 'HEAD') {
      res.writeHead(200, [
        'content-type',
        'text/html; charset=utf-8',
        'content-length',
        String(body.length),
        ...headers,
      ]);
      res.end();
      return;
    }
    send(res, 200, 'text/html; charset=utf-8', body, headers);
  };
}
