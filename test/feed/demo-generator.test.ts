import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  demoUserId,
  formatTwitterDate,
  mulberry32,
  startDemoGenerator,
  type DemoGenerator,
  type DemoGeneratorOptions,
} from '../../src/demo/generator.js';
import { openEmbeddedChangelog } from '../../src/feed/embedded-changelog.js';
import type { ChangelogWriter, FeedRecord, OutgoingMessage } from '../../src/feed/types.js';
import type { Topics } from '../../src/ops/config.js';
import { silentLogger } from '../../src/ops/logger.js';

// ------------------------------------------------------------------------------------------------ helpers

const topics: Topics = { users: 'users', tweets: 'tweets', follows: 'follows', likes: 'likes' };
const FIXED_NOW = Date.UTC(2026, 4, 17, 12, 0, 0);

interface Sent {
  readonly topic: string;
  readonly key: string | null;
  readonly value: string | null;
}

/** A writer that records every message, optionally failing the first `failures` sends. */
function memoryWriter(failures = 0): ChangelogWriter & { sent: Sent[]; sends: number; sendBytes: number[] } {
  const writer = {
    sent: [] as Sent[],
    sends: 0,
    sendBytes: [] as number[],
    send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
      writer.sends++;
      if (writer.sends <= failures) return Promise.reject(new Error('broker unavailable'));
      writer.sendBytes.push(messages.reduce((n, m) => n + Buffer.byteLength(m.value ?? ''), 0));
      for (const m of messages) {
        writer.sent.push({ topic, key: toText(m.key), value: toText(m.value) });
      }
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
  return writer;
}

const toText = (v: string | Buffer | null): string | null => (v === null ? null : v.toString());

const generators: DemoGenerator[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const g of generators.splice(0)) await g.stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function start(options: Partial<DemoGeneratorOptions> & Pick<DemoGeneratorOptions, 'writer'>): DemoGenerator {
  const generator = startDemoGenerator({ topics, rate: 0, users: 50, logger: silentLogger, ...options });
  generators.push(generator);
  return generator;
}

async function pollUntil(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ------------------------------------------------------------------------------------------------ contract check

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
const TWITTER =
  /^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{2}) (\d{2}):(\d{2}):(\d{2}) \+0000 (\d{4})$/;
const MONTHS = 'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split(' ');
const DAYS = 'Sun Mon Tue Wed Thu Fri Sat'.split(' ');

/** Parses either contract date form; undefined when neither (including impossible dates like Feb 30 or a wrong weekday). */
function parseDate(s: string): number | undefined {
  if (ISO.test(s)) {
    const ms = Date.parse(s);
    return Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 19) !== s.slice(0, 19) ? undefined : ms;
  }
  const m = TWITTER.exec(s);
  if (m === null) return undefined;
  const [, day, mon, dd, hh, mi, ss, yyyy] = m;
  const ms = Date.UTC(Number(yyyy), MONTHS.indexOf(mon!), Number(dd), Number(hh), Number(mi), Number(ss));
  const d = new Date(ms);
  return DAYS[d.getUTCDay()] === day && d.getUTCDate() === Number(dd) ? ms : undefined;
}

const SCHEMA: Record<
  string,
  { key: string; required: string[]; ids: string[]; optional: string[]; dates: string[] }
> = {
  users: {
    key: 'userId',
    required: ['username'],
    ids: [],
    optional: [
      'name',
      'description',
      'location',
      'webPageUrl',
      'joinedDate',
      'profileImageUrl',
      'backgroundImageUrl',
    ],
    dates: ['joinedDate'],
  },
  tweets: {
    key: 'tweetId',
    required: ['userId'],
    ids: ['userId'],
    optional: ['text', 'createdAt'],
    dates: ['createdAt'],
  },
  follows: {
    key: 'followId',
    required: ['followerId', 'followeeId'],
    ids: ['followerId', 'followeeId'],
    optional: ['createdAt'],
    dates: ['createdAt'],
  },
  likes: {
    key: 'likeId',
    required: ['userId', 'tweetId'],
    ids: ['userId', 'tweetId'],
    optional: ['createdAt'],
    dates: ['createdAt'],
  },
};

/**
 * Every problem with the records against CONTRACT.md section 1, plus what a realistic generator promises:
 * tombstones only for keys it wrote, likes of tweets it wrote, no self-follows, only contract fields.
 */
function contractViolations(records: readonly Sent[]): string[] {
  const problems: string[] = [];
  const written = new Map<string, Set<string>>(Object.keys(SCHEMA).map((t) => [t, new Set<string>()]));
  for (const [i, r] of records.entries()) {
    const where = `#${i} ${r.topic}/${r.key}`;
    const schema = SCHEMA[r.topic];
    if (schema === undefined) {
      problems.push(`${where}: unknown topic`);
      continue;
    }
    if (r.key === null || r.key.length === 0 || Buffer.byteLength(r.key) > 512) {
      problems.push(`${where}: bad key`);
      continue;
    }
    if (r.value === null) {
      if (!written.get(r.topic)!.has(r.key)) problems.push(`${where}: tombstone for a key never written`);
      continue;
    }
    let row: unknown;
    try {
      row = JSON.parse(r.value);
    } catch {
      problems.push(`${where}: value is not JSON`);
      continue;
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      problems.push(`${where}: value is not an object`);
      continue;
    }
    const fields = row as Record<string, unknown>;
    if (fields[schema.key] !== r.key) problems.push(`${where}: ${schema.key} differs from the key`);
    for (const f of schema.required) {
      if (typeof fields[f] !== 'string' || (fields[f] as string).length === 0) {
        problems.push(`${where}: required ${f} missing or not a non-empty string`);
      }
    }
    for (const f of schema.ids) {
      if (fields[f] !== undefined && (typeof fields[f] !== 'string' || fields[f] === '')) {
        problems.push(`${where}: id ${f} not a non-empty string`);
      }
    }
    for (const f of schema.optional) {
      if (fields[f] !== undefined && fields[f] !== null && typeof fields[f] !== 'string') {
        problems.push(`${where}: ${f} is neither a string nor null`);
      }
    }
    for (const f of Object.keys(fields)) {
      if (f !== schema.key && !schema.required.includes(f) && !schema.optional.includes(f)) {
        problems.push(`${where}: field ${f} is not in the contract`);
      }
    }
    for (const f of schema.dates) {
      const v = fields[f];
      if (typeof v === 'string' && parseDate(v) === undefined)
        problems.push(`${where}: ${f} "${v}" does not parse`);
    }
    if (r.topic === 'follows' && fields['followerId'] === fields['followeeId'])
      problems.push(`${where}: self-follow`);
    if (r.topic === 'likes' && !written.get('tweets')!.has(String(fields['tweetId']))) {
      problems.push(`${where}: like of a tweet never written`);
    }
    written.get(r.topic)!.add(r.key);
  }
  return problems;
}

const byTopic = (records: readonly Sent[], topic: string) => records.filter((r) => r.topic === topic);
const rows = (records: readonly Sent[], topic: string) =>
  byTopic(records, topic)
    .filter((r) => r.value !== null)
    .map((r) => JSON.parse(r.value!) as Record<string, string | null>);

// ------------------------------------------------------------------------------------------------ tests

describe('demo generator helpers', () => {
  it('formats dates like the Twitter v1 API (seed 002)', () => {
    expect(formatTwitterDate(Date.UTC(2008, 0, 22, 15, 14, 44))).toBe('Tue Jan 22 15:14:44 +0000 2008');
    expect(formatTwitterDate(Date.UTC(2024, 1, 29, 3, 4, 5))).toBe('Thu Feb 29 03:04:05 +0000 2024');
  });

  it('mulberry32 is reproducible and uniform enough', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 10_000 }, () => a());
    expect(Array.from({ length: 10_000 }, () => b())).toEqual(xs);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
    expect(mulberry32(43)()).not.toBe(mulberry32(42)());
  });
});

describe('demo generator', () => {
  it('seeds the same records for the same seed and clock (rate 0)', async () => {
    const runs: Sent[][] = [];
    for (let i = 0; i < 2; i++) {
      const writer = memoryWriter();
      const g = start({ writer, seed: 1234, now: () => FIXED_NOW });
      await g.seeded;
      await g.stop();
      expect(g.produced()).toBe(writer.sent.length);
      runs.push(writer.sent);
    }
    expect(runs[1]).toEqual(runs[0]);

    const writer = memoryWriter();
    const other = start({ writer, seed: 4321, now: () => FIXED_NOW });
    await other.seeded;
    expect(writer.sent).not.toEqual(runs[0]);

    const seed = runs[0]!;
    // All users first, with the stable demo ids; then 3 tweets, follows and likes per user.
    expect(byTopic(seed, 'users').map((r) => r.key)).toEqual(
      Array.from({ length: 50 }, (_, i) => demoUserId(i)),
    );
    expect(seed.slice(0, 50).every((r) => r.topic === 'users')).toBe(true);
    for (const topic of ['tweets', 'follows', 'likes']) expect(byTopic(seed, topic)).toHaveLength(150);
    // A seed holds inserts only: every key once, no tombstones.
    for (const topic of Object.keys(topics)) {
      const keys = byTopic(seed, topic).map((r) => r.key);
      expect(new Set(keys).size).toBe(keys.length);
    }
    expect(seed.some((r) => r.value === null)).toBe(false);
    expect(contractViolations(seed)).toEqual([]);
  });

  it('produces only contract-valid records, with the full mix of changes, at rate > 0', async () => {
    const writer = memoryWriter();
    const g = start({ writer, seed: 99, users: 40, rate: 20_000, tickMs: 5 });
    await g.seeded;
    const seedSize = writer.sent.length;
    await pollUntil(() => writer.sent.length >= seedSize + 5_000, '5000 live records');
    await g.stop();
    const all = writer.sent;
    expect(contractViolations(all)).toEqual([]);

    const live = all.slice(seedSize);
    for (const topic of ['tweets', 'follows', 'likes']) {
      expect(
        byTopic(live, topic).some((r) => r.value === null),
        `${topic} tombstones`,
      ).toBe(true);
    }
    // Profile updates re-send seeded users; their stable fields do not change, description/location may.
    const seededUsers = new Map(rows(all.slice(0, seedSize), 'users').map((u) => [u['userId'], u]));
    const updates = rows(live, 'users').filter((u) => seededUsers.has(u['userId']!));
    expect(updates.length).toBeGreaterThan(0);
    for (const u of updates) {
      const before = seededUsers.get(u['userId']!)!;
      for (const f of [
        'username',
        'name',
        'joinedDate',
        'profileImageUrl',
        'webPageUrl',
        'backgroundImageUrl',
      ]) {
        expect(u[f], f).toEqual(before[f]);
      }
    }
    expect(updates.some((u) => u['description'] !== seededUsers.get(u['userId']!)!['description'])).toBe(
      true,
    );
    // New users appear with ids outside the seeded range.
    expect(rows(live, 'users').some((u) => !seededUsers.has(u['userId']!))).toBe(true);
    // Some follow is re-sent with another followee (the count moves between users).
    const followees = new Map<string, Set<string>>();
    for (const f of rows(all, 'follows')) {
      followees.set(f['followId']!, (followees.get(f['followId']!) ?? new Set()).add(f['followeeId']!));
    }
    expect([...followees.values()].some((s) => s.size > 1)).toBe(true);
    // Both date forms, and optional fields both absent and null.
    const dates = [...rows(all, 'tweets'), ...rows(all, 'follows')].map((r) => r['createdAt']!);
    expect(dates.some((d) => ISO.test(d))).toBe(true);
    expect(dates.some((d) => TWITTER.test(d))).toBe(true);
    const users = rows(all, 'users');
    expect(users.some((u) => !('location' in u))).toBe(true);
    expect(users.some((u) => u['location'] === null)).toBe(true);
    expect(users.some((u) => u['webPageUrl'] === null)).toBe(true);
    expect(rows(all, 'likes').some((l) => !('createdAt' in l))).toBe(true);
  });

  it('cuts large seeds into sends a Kafka broker accepts (well under 1 MB)', async () => {
    const writer = memoryWriter();
    const g = start({ writer, seed: 21, users: 4_000 });
    await g.seeded;
    expect(byTopic(writer.sent, 'users').map((r) => r.key)).toEqual(
      Array.from({ length: 4_000 }, (_, i) => demoUserId(i)),
    );
    expect(writer.sendBytes.length).toBeGreaterThan(4);
    expect(Math.max(...writer.sendBytes)).toBeLessThanOrEqual(256 * 1024);
  });

  it('skews followers toward a few popular users', async () => {
    const writer = memoryWriter();
    const g = start({ writer, seed: 5, users: 1000 });
    await g.seeded;
    const counts = new Map<string, number>();
    for (const f of rows(writer.sent, 'follows'))
      counts.set(f['followeeId']!, (counts.get(f['followeeId']!) ?? 0) + 1);
    const sorted = [...counts.values()].sort((a, b) => b - a);
    const total = sorted.reduce((a, b) => a + b, 0);
    const top10Percent = sorted.slice(0, 100).reduce((a, b) => a + b, 0);
    expect(top10Percent / total).toBeGreaterThan(0.4);
  });

  it('keeps producing while running (produced() grows)', async () => {
    const writer = memoryWriter();
    const g = start({ writer, seed: 3, users: 10, rate: 200 });
    await g.seeded;
    const afterSeed = g.produced();
    await pollUntil(() => g.produced() > afterSeed + 10, 'live records');
    await g.stop();
    const stoppedAt = g.produced();
    expect(writer.sent).toHaveLength(stoppedAt);
  });

  it('does not re-seed after a restart and never reuses ids written before', async () => {
    const first = memoryWriter();
    const g1 = start({ writer: first, seed: 8, users: 30, rate: 5_000, tickMs: 5, now: () => FIXED_NOW });
    await pollUntil(() => g1.produced() > 1_000, 'first run traffic');
    await g1.stop();

    // Same seed, later clock: what a restart with DEMO_SEED set looks like.
    const second = memoryWriter();
    const g2 = start({
      writer: second,
      seed: 8,
      users: 30,
      rate: 5_000,
      tickMs: 5,
      alreadySeeded: true,
      now: () => FIXED_NOW + 60_000,
    });
    await g2.seeded;
    expect(second.sent).toHaveLength(0);
    await pollUntil(() => g2.produced() > 1_000, 'second run traffic');
    await g2.stop();

    const firstKeys = new Set(
      first.sent.filter((r) => r.topic !== 'users').map((r) => `${r.topic}/${r.key}`),
    );
    // The restarted generator only updates or deletes keys it created itself (its pools start empty).
    const reused = second.sent.filter((r) => r.topic !== 'users' && firstKeys.has(`${r.topic}/${r.key}`));
    expect(reused).toEqual([]);
    // Traffic after the restart refers to the seeded users (or users it created).
    const seeded = new Set(Array.from({ length: 30 }, (_, i) => demoUserId(i)));
    const newUsers = new Set(rows(second.sent, 'users').map((u) => u['userId']!));
    for (const t of rows(second.sent, 'tweets'))
      expect(seeded.has(t['userId']!) || newUsers.has(t['userId']!)).toBe(true);
    // And is valid against the combined log (tombstones only for keys written in either run).
    expect(contractViolations([...first.sent, ...second.sent])).toEqual([]);
  });

  it('retries a failed send instead of losing or crashing', async () => {
    const writer = memoryWriter(1);
    const g = start({ writer, seed: 11, users: 20 });
    await g.seeded;
    expect(writer.sends).toBeGreaterThan(1);
    expect(byTopic(writer.sent, 'users').map((r) => r.key)).toEqual(
      Array.from({ length: 20 }, (_, i) => demoUserId(i)),
    );
    expect(g.produced()).toBe(writer.sent.length);
  });

  it('stops promptly while seeding', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let sends = 0;
    const writer: ChangelogWriter = {
      send: async () => {
        sends++;
        await gate;
      },
      close: () => Promise.resolve(),
    };
    const g = start({ writer, seed: 1, users: 1_000_000, rate: 100 });
    await pollUntil(() => sends === 1, 'the first seed send');
    const stopping = g.stop();
    release();
    await stopping;
    await g.seeded;
    expect(sends).toBe(1);
  });

  it('rejects bad options', () => {
    const writer = memoryWriter();
    expect(() => startDemoGenerator({ writer, topics, rate: -1, users: 1, logger: silentLogger })).toThrow(
      RangeError,
    );
    expect(() => startDemoGenerator({ writer, topics, rate: 1, users: 0, logger: silentLogger })).toThrow(
      RangeError,
    );
  });

  it('feeds the embedded changelog end to end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'matview-demo-'));
    dirs.push(dir);
    const log = await openEmbeddedChangelog({ dir, logger: silentLogger });
    try {
      const seededBefore = (await log.endOffsets([topics.users])).some((p) => p.next !== '0');
      expect(seededBefore).toBe(false);
      const g = start({ writer: log, seed: 2, users: 25, alreadySeeded: seededBefore });
      await g.seeded;
      await g.stop();
      const ends = await log.endOffsets(Object.values(topics));
      const total = ends.reduce((a, p) => a + Number(p.next), 0);
      expect(total).toBe(g.produced());
      expect((await log.endOffsets([topics.users])).some((p) => p.next !== '0')).toBe(true);

      const received: FeedRecord[] = [];
      await log.start({
        topics: Object.values(topics),
        resumeFrom: () => undefined,
        handler: (batch) => {
          received.push(...batch.records);
          return Promise.resolve();
        },
        onFatal: (error) => {
          throw error;
        },
      });
      await pollUntil(() => received.length >= total, 'every record');
      await log.stop();
      const sent = received.map((r) => ({
        topic: r.topic,
        key: r.key?.toString() ?? null,
        value: r.value?.toString() ?? null,
      }));
      expect(contractViolations(sent.filter((r) => r.topic === 'users'))).toEqual([]);
      expect(contractViolations(sent.filter((r) => r.topic === 'tweets'))).toEqual([]);
      expect(byTopic(sent, 'users')).toHaveLength(25);
    } finally {
      await log.close();
    }
  });
});
