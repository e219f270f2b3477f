/**
 * `matview rebuild --drain`: a requested rebuild keeps the server ready (it serves the current view meanwhile),
 * unless asked with `--drain`, which makes GET /health/ready answer 503 from when the rebuild starts until its
 * view is swapped in, so that a load balancer sends reads elsewhere while the rebuild's feed decodes the
 * history on the event loop that answers them; reads are still answered. The swap hook holds each rebuild's
 * complete shadow, so "during the rebuild" is a state the test controls. A pending `--drain` request drains
 * whatever rebuild serves it: one under way, one the next start begins, for the request or another reason.
 * (The mark on the shadow across a restart: test/store/generations.test.ts.) On the embedded changelog: no
 * broker needed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DRAINING } from '../../src/wiring/runtime.js';
import { runCli } from '../cli/run-cli.js';
import { WITH_LIKES_PER_TWEET } from '../utils/likes-per-tweet.js';
import { releaseHeldSwaps, startAtHeldSwap, SwapHold } from '../utils/swap-hold.js';
import { eventually, freshTopics, graphql, type TestServerOptions } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import { scrape, startOpsServer, type OpsServer } from './helpers.js';

const servers: OpsServer[] = [];
afterAll(async () => {
  releaseHeldSwaps();
  for (const s of servers) await s.close();
});

const readiness = async (url: string) => {
  const res = await fetch(`${url}/health/ready`);
  const body = (await res.json()) as { error?: { message: string } };
  return { status: res.status, message: body.error?.message };
};

const generation = async (url: string) => (await scrape(url)).sum('matview_view_generation');

/** Waits until `/health/ready` answers 200. */
const untilReady = (url: string, what: string) =>
  eventually(async () => ((await readiness(url)).status === 200 ? true : undefined), 30_000, what);

/** A server on `options`' store, with users d0-d19 written to its embedded changelog, once ready. */
async function readyServer(options: TestServerOptions, hold: SwapHold): Promise<OpsServer> {
  const server = await startOpsServer(options, { beforeSwap: hold.beforeSwap });
  servers.push(server);
  await server.running.writer.send(
    server.config.topics.users,
    Array.from({ length: 20 }, (_, i) => ({ key: `d${i}`, value: JSON.stringify({ username: `d${i}` }) })),
  );
  await untilReady(server.url, 'ready');
  return server;
}

describe('matview rebuild --drain', () => {
  it('should answer not ready from the start of a --drain rebuild until its swap, stay ready during a plain one, and drain one under way from a --drain request', async () => {
    const hold = new SwapHold();
    const server = await readyServer({ topics: freshTopics() }, hold);
    const { url } = server;
    const dataDir = server.config.dataDir;
    const read = async () =>
      (await graphql<{ user: { username: string } | null }>(url, '{ user(id: "d7") { username } }')).data;

    // Without --drain: ready all along.
    const plain = hold.next();
    const asked = await runCli(['rebuild'], { DATA_DIR: dataDir });
    expect({ code: asked.code, out: asked.stdout.trim() }).toEqual({
      code: 0,
      out: expect.stringMatching(
        /^rebuild: requested; the server \(pid \d+\) starts it within 100 ms and keeps serving generation 1 meanwhile$/,
      ) as unknown as string,
    });
    await plain.reached;
    expect({ ready: await readiness(url), read: await read() }).toEqual({
      ready: { status: 200, message: undefined },
      read: { user: { username: 'd7' } },
    });
    plain.release();
    await eventually(async () => ((await generation(url)) === 2 ? true : undefined), 30_000, 'swap 1');

    // With --drain: not ready until the swap, reads answered meanwhile, ready again after it.
    const drained = hold.next();
    const drainAsked = await runCli(['rebuild', '--drain'], { DATA_DIR: dataDir });
    expect({ code: drainAsked.code, out: drainAsked.stdout.trim() }).toEqual({
      code: 0,
      out: expect.stringMatching(
        /^rebuild: requested; the server \(pid \d+\) starts it within 100 ms and keeps serving generation 2 meanwhile, not ready until the swap \(--drain\)$/,
      ) as unknown as string,
    });
    await drained.reached;
    expect({
      ready: await readiness(url),
      status: (await graphql(url, '{ feedStatus { ready reason } }')).data,
      live: (await fetch(`${url}/health/live`)).status,
      read: await read(),
      generation: await generation(url),
    }).toEqual({
      ready: { status: 503, message: DRAINING },
      status: { feedStatus: { ready: false, reason: DRAINING } },
      live: 200,
      read: { user: { username: 'd7' } },
      generation: 2,
    });
    drained.release();
    await eventually(async () => ((await generation(url)) === 3 ? true : undefined), 30_000, 'swap 2');
    await untilReady(url, 'ready after the drained rebuild');

    // --drain asked while a plain rebuild runs: that rebuild serves it, not ready from then until its swap.
    const joined = hold.next();
    expect((await runCli(['rebuild'], { DATA_DIR: dataDir })).code).toBe(0);
    await joined.reached;
    expect((await readiness(url)).status).toBe(200);
    expect((await runCli(['rebuild', '--drain'], { DATA_DIR: dataDir })).code).toBe(0);
    await eventually(
      async () => ((await readiness(url)).status === 503 ? true : undefined),
      30_000,
      'not ready once the rebuild under way serves the --drain request',
    );
    expect({ ready: await readiness(url), generation: await generation(url) }).toEqual({
      ready: { status: 503, message: DRAINING },
      generation: 3,
    });
    joined.release();
    await eventually(async () => ((await generation(url)) === 4 ? true : undefined), 30_000, 'swap 3');
    await untilReady(url, 'ready after the rebuild that served --drain');
  });
  it('should drain a rebuild asked for with --drain while no server ran, from the next start until its swap', async () => {
    const options = { topics: freshTopics(), dataDir: tempDir() };
    const first = await readyServer(options, new SwapHold());
    await first.close();
    const asked = await runCli(['rebuild', '--drain'], { DATA_DIR: options.dataDir });
    expect({ code: asked.code, out: asked.stdout.trim() }).toEqual({
      code: 0,
      out: 'rebuild: requested; no server is running on DATA_DIR, the next `matview serve` rebuilds the view (serving the current one meanwhile, not ready until the swap (--drain))',
    });

    const { server, release } = await startAtHeldSwap(options, {}, (s) => servers.push(s));
    expect({ ready: await readiness(server.url), generation: await generation(server.url) }).toEqual({
      ready: { status: 503, message: DRAINING },
      generation: 1,
    });
    release();
    await untilReady(server.url, 'ready after the swap');
    expect(await generation(server.url)).toBe(2);
  });
  it('should drain a rebuild that another reason starts while a --drain request is pending', async () => {
    const options = { topics: freshTopics(), dataDir: tempDir() };
    const first = await readyServer(options, new SwapHold());
    await first.close();
    expect((await runCli(['rebuild', '--drain'], { DATA_DIR: options.dataDir })).code).toBe(0);

    // A view reading a field the stored rows lack (likes.tweetId): the start rebuilds from the feed for that,
    // and the rebuild serves the request too.
    const { server, release } = await startAtHeldSwap(
      { ...options, env: WITH_LIKES_PER_TWEET.env },
      { views: WITH_LIKES_PER_TWEET.views },
      (s) => servers.push(s),
    );
    expect({ ready: await readiness(server.url), generation: await generation(server.url) }).toEqual({
      ready: { status: 503, message: DRAINING },
      generation: 1,
    });
    release();
    await untilReady(server.url, 'ready after the swap');
    const metrics = await scrape(server.url);
    expect({
      generation: metrics.sum('matview_view_generation'),
      swaps: metrics.sum('matview_view_swaps_total', { reason: 'source-fields' }),
    }).toEqual({ generation: 2, swaps: 1 });
  });
});
