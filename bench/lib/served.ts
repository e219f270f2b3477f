/**
 * A `matview serve` process on topics of the mock cluster, watched from outside as an operator would:
 * `/health/ready`, `/metrics`, the data directory on disk. Used by the catch-up and rebuild scenarios.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_VARIABLES } from '../../src/ops/config.js';
import { ROOT, sleep, waitFor } from './common.js';
import { startMatviewProcess, type ServerProcess, type Topics } from './records.js';

/** What the bench must set for a server on these topics; everything else stays at the shipped defaults. */
export const sourceEnv = (
  brokers: readonly string[],
  topics: Topics,
  dataDir: string,
): Record<string, string> => ({
  KAFKA_BROKERS: brokers.join(','),
  DATA_DIR: dataDir,
  TOPIC_USERS: topics.users,
  TOPIC_TWEETS: topics.tweets,
  TOPIC_FOLLOWS: topics.follows,
  TOPIC_LIKES: topics.likes,
});

/** Settings every spawned server gets from the bench (startMatviewProcess and sourceEnv), whatever the environment. */
const SET_BY_BENCH: ReadonlySet<string> = new Set([
  ...Object.keys(sourceEnv([], { users: '', tweets: '', follows: '', likes: '' }, '')),
  'PORT',
  'HOST',
  'DEMO',
  'NODE_ENV',
  'LOG_LEVEL',
]);

/**
 * matview settings present in the bench's environment: the spawned servers inherit them, so a result says
 * which ones it ran with (e.g. `WRITER_THREAD=false npm run bench -- catchup` to compare).
 */
export function inheritedSettings(): string {
  const set = CONFIG_VARIABLES.filter((name) => process.env[name] !== undefined && !SET_BY_BENCH.has(name));
  return set.length === 0
    ? 'shipped defaults'
    : `shipped defaults except ${set.map((n) => `${n}=${process.env[n]}`).join(', ')} (from the environment)`;
}

/** Builds dist/ (bin/matview.js does it when sources changed) so no timed start pays for a build. */
export function warmBundle(): void {
  const r = spawnSync(process.execPath, [`${ROOT}/bin/matview.js`, 'help'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`matview help failed: ${r.stderr}`);
}

export interface Started {
  readonly server: ServerProcess;
  /** performance.now() just before the spawn and when the API was listening. */
  readonly spawnedAt: number;
  readonly listeningAt: number;
}

/** Spawns `matview serve` (as users run it) with the given environment; times the spawn and listening. */
export async function spawnServer(env: Record<string, string>): Promise<Started> {
  const spawnedAt = performance.now();
  const server = await startMatviewProcess(env);
  return { server, spawnedAt, listeningAt: performance.now() };
}

/** `data` of a GraphQL POST, undefined when the server did not answer one (not listening yet, an error). */
async function graphqlData<T>(url: string, body: string): Promise<T | undefined> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  }).catch(() => undefined);
  return ((await res?.json().catch(() => undefined)) as { data?: T } | undefined)?.data;
}

/** When a server's view first changed and when it became ready (performance.now() clock), as seen from outside. */
export interface CatchUpWatch {
  firstCommitAt: number | undefined;
  readyAt: number | undefined;
  /** Settles when ready, or after the timeout with `readyAt` undefined. */
  readonly done: Promise<void>;
}

const FEED_STATUS = JSON.stringify({ query: '{ feedStatus { ready sequence } }' });

/**
 * Polls `feedStatus { ready sequence }` every `everyMs` (a fresh store starts at sequence 0): the first
 * commit is the first answer with another sequence; ready is `feedStatus.ready`, what `/health/ready` answers.
 */
export function watchCatchUp(url: string, timeoutMs: number, everyMs = 25): CatchUpWatch {
  const seen: { firstCommitAt: number | undefined; readyAt: number | undefined } = {
    firstCommitAt: undefined,
    readyAt: undefined,
  };
  const poll = async () => {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const status = (
        await graphqlData<{ feedStatus: { ready: boolean; sequence: string } }>(url, FEED_STATUS)
      )?.feedStatus;
      if (status !== undefined) {
        const at = performance.now();
        if (seen.firstCommitAt === undefined && status.sequence !== '0') seen.firstCommitAt = at;
        if (status.ready) {
          seen.firstCommitAt ??= at;
          seen.readyAt = at;
          return;
        }
      }
      await sleep(everyMs);
    }
  };
  return Object.assign(seen, { done: poll() });
}

const POSITIONS = JSON.stringify({ query: '{ feedStatus { partitions { topic partition next } } }' });

/** Waits until the server's stored positions reached `ends` (from `endOffsets`); false after `timeoutMs`. */
export function waitApplied(
  url: string,
  ends: readonly { topic: string; partition: number; high: bigint }[],
  timeoutMs: number,
): Promise<boolean> {
  return waitFor(
    async () => {
      const data = await graphqlData<{
        feedStatus: { partitions: { topic: string; partition: number; next: string }[] };
      }>(url, POSITIONS);
      const at = data?.feedStatus.partitions ?? [];
      return ends.every((e) =>
        at.some((p) => p.topic === e.topic && p.partition === e.partition && BigInt(p.next) >= e.high),
      );
    },
    timeoutMs,
    50,
  );
}

/** Unlabelled samples of the server's `/metrics` (name → value). */
export async function scrapeMetrics(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^([a-z_]+) (\S+)$/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

/** One scrape of the server's counter `name`: its value per label set (the labels as exposed, `a="x",b="y"`). */
export async function scrapeCounter(url: string, name: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/gm))
    if (m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  return out;
}

/** A histogram of the server's `/metrics` without labels: cumulative counts by upper bound, and its sum. */
export interface ScrapedHistogram {
  readonly buckets: readonly (readonly [le: number, count: number])[];
  readonly count: number;
  readonly sum: number;
}

/** The histograms `names` (no labels but `le`) of one scrape of the server's `/metrics`. */
export async function scrapeHistograms<N extends string>(
  url: string,
  names: readonly N[],
): Promise<Record<N, ScrapedHistogram>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = {} as Record<N, ScrapedHistogram>;
  for (const name of names) {
    const buckets: [number, number][] = [];
    let count = 0;
    let sum = 0;
    for (const m of text.matchAll(/^([a-z_]+)(?:\{le="([^"]+)"\})? (\S+)$/gm)) {
      const [, sample, le, value] = m;
      if (sample === `${name}_bucket` && le !== undefined) buckets.push([Number(le), Number(value)]);
      else if (sample === `${name}_count`) count = Number(value);
      else if (sample === `${name}_sum`) sum = Number(value);
    }
    out[name] = { buckets, count, sum };
  }
  return out;
}

/**
 * What was observed between two scrapes of one histogram: the count, the mean, and for a quantile `q` the
 * upper bound of the bucket it falls in (Infinity past the last bound).
 */
export function observedBetween(
  before: ScrapedHistogram,
  after: ScrapedHistogram,
): { count: number; mean: number; atMost: (q: number) => number } {
  const count = after.count - before.count;
  const inBucket = after.buckets.map(([le, n], i) => [le, n - (before.buckets[i]?.[1] ?? 0)] as const);
  return {
    count,
    mean: count === 0 ? NaN : (after.sum - before.sum) / count,
    atMost: (q) => inBucket.find(([, n]) => n >= q * count)?.[0] ?? Infinity,
  };
}

/** Bytes of the files under `dir`: their sizes, and the disk blocks allocated to them (what `du` counts). */
export function diskUsage(dir: string): { apparent: number; allocated: number } {
  let apparent = 0;
  let allocated = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = diskUsage(path);
      apparent += inner.apparent;
      allocated += inner.allocated;
    } else if (entry.isFile()) {
      const s = statSync(path);
      apparent += s.size;
      allocated += s.blocks * 512;
    }
  }
  return { apparent, allocated };
}
