/**
 * The peers of the read benchmark, started by the runner on loopback and stopped at the end:
 * - the 1M-user LMDB view, written directly (views db of the active generation, no materializer: this is
 *   set-up, not a measurement) and cached across runs;
 * - a throwaway PostgreSQL (initdb + pg_ctl, as the `postgres` user when we are root) holding the same rows
 *   as seed 002's normalized tables, cached across runs;
 * - a throwaway Redis (`--save ''`), loaded with one hash per user.
 * Missing server packages are installed with apt-get; when that fails the peer is skipped with the reason.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openStore } from '../../src/store/lmdb-store.js';
import { encodeView } from '../../src/views/codec.js';
import { VIEWS } from '../../src/views/registry.js';
import { REST_FIELDS } from '../../src/views/user-information.js';
import { countsOf, followerCounts, profileOf, viewOf, HEAVY_USER } from './dataset.js';
import { killOnExit, sleep, waitFor } from './common.js';

/** Bump when the data set or the stored layout changes, so cached copies are rebuilt. */
const DATASET_VERSION = 1;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Builds (once, cached in `cache`) the LMDB store of n users; returns its path. */
export async function buildView(cache: string, n: number, log: (m: string) => void): Promise<string> {
  // The registered views' versions name the cached store too: a server opening a store whose view versions
  // it does not serve rebuilds those views from the stored rows, and this store has none (views only).
  const versions = VIEWS.map((v) => `${v.name}@${v.version}`).join('-');
  const path = join(cache, `view-v${DATASET_VERSION}-${versions}-${n}`);
  if (existsSync(join(path, 'complete'))) return path;
  const started = Date.now();
  execFileSync('rm', ['-rf', path]);
  const store = openStore({ path, mapSize: 4 * 1024 ** 3 });
  // The served views only (what the read scenarios and a restored snapshot read).
  const views = store.activeGeneration().db('user-information', 'views');
  const followers = followerCounts(n);
  for (let from = 0; from < n; from += 100_000) {
    await views.transaction(() => {
      for (let k = from; k < Math.min(n, from + 100_000); k++)
        views.put(String(k), encodeView(viewOf(k, followers)));
    });
  }
  await store.close();
  writeFileSync(join(path, 'complete'), new Date().toISOString());
  log(`built the ${n}-user LMDB view in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return path;
}

function aptInstall(pkg: string, log: (m: string) => void): boolean {
  log(`installing ${pkg} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const r = spawnSync('apt-get', ['install', '-y', '-q', pkg], { env, stdio: 'ignore', timeout: 300_000 });
  return r.status === 0;
}

// ---- PostgreSQL ----

export interface PostgresPeer {
  readonly url: string;
  readonly version: string;
  stop(): Promise<void>;
}

function pgBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(base, versions[0], 'bin');
}

/** Starts Postgres with the seed-002 tables for n users; throws with a readable reason when it cannot. */
export async function startPostgres(
  cache: string,
  tmp: string,
  n: number,
  log: (m: string) => void,
): Promise<PostgresPeer> {
  let bin = pgBin();
  if (bin === undefined && aptInstall('postgresql', log)) bin = pgBin();
  if (bin === undefined) throw new Error('PostgreSQL is not installed and apt-get could not install it');
  const root = process.getuid?.() === 0;
  const asPg = (cmd: string, args: string[]) =>
    root ? (['runuser', ['-u', 'postgres', '--', cmd, ...args]] as const) : ([cmd, args] as const);
  const run = (cmd: string, args: string[]) => {
    const [c, a] = asPg(cmd, args);
    execFileSync(c, [...a], { stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const data = join(cache, `pg-v${DATASET_VERSION}-${n}`);
  const socketDir = join(tmp, 'pg-socket');
  mkdirSync(socketDir, { recursive: true });
  if (root) {
    chownSync(socketDir, Number(execFileSync('id', ['-u', 'postgres']).toString()), 0);
    chownSync(cache, Number(execFileSync('id', ['-u', 'postgres']).toString()), 0);
  }
  const fresh = !existsSync(join(data, 'loaded'));
  if (fresh) {
    execFileSync('rm', ['-rf', data]);
    run(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
  }
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${socketDir}`,
    '-c listen_addresses=127.0.0.1',
    // Everything in memory for reads, as a team sizing its database for this table would.
    '-c shared_buffers=1GB',
    '-c max_connections=50',
    // Loading speed only (reads are unaffected): the data is rebuilt from formulas if lost.
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
  ].join(' ');
  run(join(bin, 'pg_ctl'), [
    '-D',
    data,
    '-o',
    options,
    '-l',
    join(data, 'server.log'),
    '-w',
    '-t',
    '60',
    'start',
  ]);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const stop = async () => {
    try {
      run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
    } catch {
      /* already stopped */
    }
  };
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    const version =
      (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '?';
    if (fresh) {
      const started = Date.now();
      log(`loading Postgres with ${n} users (seed 002 tables)`);
      await client.query(`
        CREATE TABLE users (user_id bigint PRIMARY KEY, username text NOT NULL, name text, description text,
          location text, web_page_url text, joined_date timestamptz, profile_image_url text, background_image_url text);
        CREATE TABLE tweets (tweet_id bigserial PRIMARY KEY, user_id bigint NOT NULL, body text);
        CREATE TABLE follows (follow_id bigserial PRIMARY KEY, follower_id bigint NOT NULL, followee_id bigint NOT NULL);
        CREATE TABLE likes (like_id bigserial PRIMARY KEY, user_id bigint NOT NULL, tweet_id bigint);`);
      await client.query(`
        INSERT INTO users SELECT g, 'user' || g, 'User Number ' || g, 'Engineering @Uptake', 'Chicago, IL',
          'https://example.com/' || g, timestamptz '2008-01-22 15:14:44+00' + g * interval '1 minute',
          'https://pbs.twimg.com/profile_images/' || g || '/NCpgt2Iz.jpg',
          'https://pbs.twimg.com/profile_banners/' || g || '/1350571359/1500x500'
        FROM generate_series(0, ${n - 1}) g`);
      await client.query(`INSERT INTO tweets (user_id, body) SELECT g, 'just setting up my twttr'
        FROM generate_series(0, ${n - 1}) g, generate_series(1, g % 5) j`);
      await client.query(`INSERT INTO follows (follower_id, followee_id) SELECT g, (g * 31 + j) % ${n}
        FROM generate_series(0, ${n - 1}) g, generate_series(1, g % 3) j`);
      await client.query(`INSERT INTO follows (follower_id, followee_id) SELECT g, ${HEAVY_USER}
        FROM generate_series(0, ${n - 1}) g WHERE g <> ${HEAVY_USER}`);
      await client.query(
        `INSERT INTO likes (user_id, tweet_id) SELECT g, g FROM generate_series(0, ${n - 1}) g WHERE g % 2 = 1`,
      );
      // The foreign-key indexes a team would add for these queries.
      await client.query(`
        CREATE INDEX tweets_user_id ON tweets (user_id);
        CREATE INDEX follows_follower_id ON follows (follower_id);
        CREATE INDEX follows_followee_id ON follows (followee_id);
        CREATE INDEX likes_user_id ON likes (user_id);`);
      // Steady state: statistics and the visibility map (index-only COUNT(*)s), as autovacuum would leave it.
      await client.query('VACUUM ANALYZE');
      await client.query('CHECKPOINT');
      writeFileSync(join(data, 'loaded'), new Date().toISOString());
      log(`Postgres loaded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    // Warm the caches: every table and index read once.
    await client.query(
      `SELECT count(*) FROM users; SELECT count(*) FROM tweets; SELECT count(*) FROM follows WHERE followee_id >= 0;
       SELECT count(*) FROM follows WHERE follower_id >= 0; SELECT count(*) FROM likes WHERE user_id >= 0;`,
    );
    return { url, version, stop };
  } catch (e) {
    await stop();
    throw e;
  } finally {
    await client.end();
  }
}

// ---- Redis ----

export interface RedisPeer {
  readonly url: string;
  readonly version: string;
  stop(): Promise<void>;
}

export async function startRedis(n: number, log: (m: string) => void): Promise<RedisPeer> {
  const which = () => spawnSync('sh', ['-c', 'command -v redis-server']).status === 0;
  if (!which() && !aptInstall('redis-server', log)) {
    throw new Error('redis-server is not installed and apt-get could not install it');
  }
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'yes',
    ],
    { stdio: 'ignore' },
  );
  const stop = async () => {
    if (child.exitCode !== null) return;
    child.kill('SIGTERM');
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, 5_000);
  };
  killOnExit(child);
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  // Refused connects while redis-server starts reject `connect()` below; without a listener ioredis also
  // prints each as an "Unhandled error event".
  redis.on('error', () => undefined);
  try {
    let connected = false;
    for (let i = 0; i < 50 && !connected; i++) {
      try {
        await redis.connect();
        connected = true;
      } catch {
        redis.disconnect();
        await sleep(100);
      }
    }
    if (!connected) throw new Error('redis-server did not accept connections');
    const info = await redis.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    const started = Date.now();
    const followers = followerCounts(n);
    for (let from = 0; from < n; from += 10_000) {
      const pipeline = redis.pipeline();
      for (let k = from; k < Math.min(n, from + 10_000); k++) {
        const u = { userId: String(k), ...profileOf(k), ...countsOf(k, followers) } as Record<
          string,
          unknown
        >;
        const fields: string[] = [];
        for (const f of REST_FIELDS) if (u[f] !== null) fields.push(f, String(u[f]));
        pipeline.hset(`user:${k}`, ...fields);
      }
      await pipeline.exec();
    }
    log(`Redis loaded with ${n} user hashes in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { url: `redis://127.0.0.1:${port}`, version, stop };
  } catch (e) {
    await stop();
    throw e;
  } finally {
    redis.disconnect();
  }
}
