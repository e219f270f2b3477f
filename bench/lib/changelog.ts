/**
 * The catch-up workload (issue 17): a changelog over `users` users holding every kind of change the view must
 * get right, produced into the four topics, and the reference view the bench computes itself from the records
 * it produced (CONTRACT.md §2: the SQL over the latest row per key), so every user a server serves can be
 * compared exactly, black-box, over GraphQL.
 *
 * Records 0..users-1 create the users. After that: 38 % new tweets, 28 % new follows, 20 % new likes, 4 %
 * profile edits (the full users row, new description), 5 % tombstones and 4 % updates of a recent tweet,
 * follow or like (a tweet or like moves to another user, a follow to another followee; deleting a deleted row
 * is a no-op, updating one re-creates it), 1 % tombstones of a users row (the user is hidden, its counts stay,
 * until a later edit brings the row back). Tombstones and updates pick among the last POOL keys created; their
 * records carry the same key, so they land on the same partition, after the record they change.
 *
 * Sized for the mock cluster, which keeps at most 5 MB (and 100,000 record batches) per partition and silently
 * drops the oldest beyond that: at 20 records per user, 446k records fill the fullest partitions (users rows are
 * the biggest records) to about 4 MB uncompressed. `produceChangelog` fails if the mock dropped anything.
 */
import type { ScenarioContext } from './common.js';
import { profileOf } from './dataset.js';
import { endOffsets, prng, produceRecords, valueOf, type ChangelogRecord, type Topics } from './records.js';

/** Keys created recently enough to be deleted or moved (older keys are never changed again). */
const POOL = 50_000;

/** What a producer send holds: one `sendBatch` with records for several topics and partitions. */
export interface Batching {
  readonly label: string;
  /** Records per send (spread over the 16 partitions by key). */
  readonly perSend: number;
}

/** How a loaded producer or a CDC connector writes: big record batches (≈1,250 records per partition). */
export const BIG_BATCHES: Batching = {
  label: 'big batches (sends of 20,000 records, ≈1,250 per partition)',
  perSend: 20_000,
};
/**
 * A producer that sends each record as it comes (no linger): one-record batches. The mock broker returns one
 * record batch per partition per fetch, so this caps any consumer (about 8-12k records/s here).
 */
export const SMALL_BATCHES: Batching = {
  label: 'small batches (one record per send)',
  perSend: 1,
};

/** What a user's view must be after the whole workload (null: no users row). */
export interface ExpectedUser {
  readonly userId: string;
  readonly username: string;
  readonly description: string;
  readonly tweetCount: number;
  readonly followingCount: number;
  readonly followerCount: number;
  readonly likeCount: number;
}

const TWEET = 0;
const FOLLOW = 1;
const LIKE = 2;
const PREFIX = ['t', 'f', 'l'] as const;

/** The reference view, kept up to date record by record as the workload is generated. */
export class Reference {
  readonly tweets: Int32Array;
  readonly following: Int32Array;
  readonly followers: Int32Array;
  readonly likes: Int32Array;
  /** Record index of the user's latest profile edit, -1 for none. */
  readonly edit: Int32Array;
  readonly hidden: Uint8Array;
  /** Distinct source keys written (rows in the source tables, deleted ones included). */
  keys = 0;
  records = 0;

  constructor(readonly users: number) {
    this.tweets = new Int32Array(users);
    this.following = new Int32Array(users);
    this.followers = new Int32Array(users);
    this.likes = new Int32Array(users);
    this.edit = new Int32Array(users).fill(-1);
    this.hidden = new Uint8Array(users);
  }

  expected(k: number): ExpectedUser | null {
    if (this.hidden[k] === 1) return null;
    const edit = this.edit[k] ?? -1;
    return {
      userId: String(k),
      username: profileOf(k).username,
      description: edit >= 0 ? `edit ${edit}` : profileOf(k).description!,
      tweetCount: this.tweets[k] ?? 0,
      followingCount: this.following[k] ?? 0,
      followerCount: this.followers[k] ?? 0,
      likeCount: this.likes[k] ?? 0,
    };
  }

  /** Counts a row of `kind` owned by `owner` (and `other`, the followee of a follow), by `delta`. */
  count(kind: number, owner: number, other: number, delta: number): void {
    if (kind === TWEET) this.tweets[owner]! += delta;
    else if (kind === LIKE) this.likes[owner]! += delta;
    else {
      this.following[owner]! += delta;
      this.followers[other]! += delta;
    }
  }
}

/**
 * The workload as a generator: record i after record i-1, the reference updated as each is made. Same
 * seed, same records.
 */
export function* changelog(
  topics: Topics,
  records: number,
  users: number,
  seed: number,
  reference: Reference,
): Generator<ChangelogRecord> {
  const random = prng(seed);
  const pick = (n: number) => Math.floor(random() * n);
  // Ring of recent keys: kind, record index (the key), owner, followee, alive.
  const kind = new Uint8Array(POOL);
  const id = new Int32Array(POOL);
  const owner = new Int32Array(POOL);
  const other = new Int32Array(POOL);
  const alive = new Uint8Array(POOL);
  let pooled = 0;
  const rowOf = (slot: number): ChangelogRecord => {
    const key = `${PREFIX[kind[slot]!]}${id[slot]}`;
    const u = String(owner[slot]);
    switch (kind[slot]) {
      case TWEET:
        return { topic: topics.tweets, key, value: valueOf(key, { table: 'tweets', userId: u }) };
      case LIKE:
        return { topic: topics.likes, key, value: valueOf(key, { table: 'likes', userId: u }) };
      default:
        return {
          topic: topics.follows,
          key,
          value: valueOf(key, { table: 'follows', followerId: u, followeeId: String(other[slot]) }),
        };
    }
  };
  const topicOf = (k: number) => [topics.tweets, topics.follows, topics.likes][k]!;

  for (let i = 0; i < records; i++) {
    reference.records++;
    if (i < users) {
      reference.keys++;
      yield {
        topic: topics.users,
        key: String(i),
        value: valueOf(String(i), { table: 'users', ...profileOf(i) }),
      };
      continue;
    }
    const r = random();
    if (r < 0.86 || pooled === 0) {
      // A new tweet, follow or like.
      const k = r < 0.38 ? TWEET : r < 0.66 ? FOLLOW : LIKE;
      const slot = pooled++ % POOL;
      kind[slot] = k;
      id[slot] = i;
      owner[slot] = pick(users);
      other[slot] = k === FOLLOW ? pick(users) : 0;
      alive[slot] = 1;
      reference.keys++;
      reference.count(k, owner[slot]!, other[slot]!, 1);
      yield rowOf(slot);
    } else if (r < 0.9) {
      const u = pick(users);
      reference.edit[u] = i;
      reference.hidden[u] = 0;
      const key = String(u);
      yield {
        topic: topics.users,
        key,
        value: valueOf(key, { table: 'users', ...profileOf(u), description: `edit ${i}` }),
      };
    } else if (r < 0.95) {
      const slot = pick(Math.min(pooled, POOL));
      if (alive[slot] === 1) reference.count(kind[slot]!, owner[slot]!, other[slot]!, -1);
      alive[slot] = 0;
      yield { topic: topicOf(kind[slot]!), key: `${PREFIX[kind[slot]!]}${id[slot]}`, value: null };
    } else if (r < 0.99) {
      const slot = pick(Math.min(pooled, POOL));
      if (alive[slot] === 1) reference.count(kind[slot]!, owner[slot]!, other[slot]!, -1);
      if (kind[slot] === FOLLOW) other[slot] = pick(users);
      else owner[slot] = pick(users);
      alive[slot] = 1;
      reference.count(kind[slot]!, owner[slot]!, other[slot]!, 1);
      yield rowOf(slot);
    } else {
      const u = pick(users);
      reference.hidden[u] = 1;
      yield { topic: topics.users, key: String(u), value: null };
    }
  }
}

/**
 * Produces the workload with the given batching (gzip-compressed batches with `gzip`, shaped by `as`); returns its reference,
 * how long producing took and the partitions written. Fails if the topics do not hold every record produced:
 * the mock cluster drops a partition's oldest record batches beyond 5 MB or 100,000 batches.
 */
export async function produceChangelog(
  brokers: readonly string[],
  topics: Topics,
  options: {
    records: number;
    users: number;
    seed: number;
    batching: Batching;
    gzip: boolean;
    /** The records as another writer shapes them (debezium.ts `asDebezium`); the reference is the same. */
    as?: (records: Iterable<ChangelogRecord>) => Iterable<ChangelogRecord>;
  },
): Promise<{ reference: Reference; produceMs: number; partitions: number }> {
  const reference = new Reference(options.users);
  const records = changelog(topics, options.records, options.users, options.seed, reference);
  const produceMs = await produceRecords(
    brokers,
    options.as === undefined ? records : options.as(records),
    options.batching.perSend,
    { gzip: options.gzip },
  );
  const ends = await endOffsets(brokers, Object.values(topics));
  const held = ends.reduce((n, p) => n + p.high - p.low, 0n);
  if (held !== BigInt(options.records))
    throw new Error(
      `the topics hold ${held} of the ${options.records} records produced ` +
        `(${ends.filter((p) => p.low > 0n).length} partitions lost their oldest records: the mock cluster keeps ` +
        `at most 5 MB or 100,000 record batches per partition); produce fewer records or compress them (BENCH_COMPRESSION=gzip)`,
    );
  return { reference, produceMs, partitions: ends.length };
}

/** BENCH_COMPRESSION=gzip: the catch-up changelog in gzip-compressed batches (fits more in the mock). */
export function compressionFromEnv(): { gzip: boolean; label: string } {
  const value = process.env['BENCH_COMPRESSION'] ?? 'none';
  if (value !== 'none' && value !== 'gzip')
    throw new Error(`BENCH_COMPRESSION must be "none" or "gzip", got "${value}"`);
  return { gzip: value === 'gzip', label: value === 'gzip' ? 'gzip-compressed' : 'uncompressed' };
}

const VERIFY_QUERY =
  'query Verify($ids: [ID!]!) { users(ids: $ids) { userId username description tweetCount followingCount followerCount likeCount } }';

export interface Verification {
  readonly users: number;
  readonly differing: number;
  /** The first few users that differ, expected vs served. */
  readonly examples: readonly string[];
}

/**
 * Reads every user of the reference from a server (`users(ids)`, 500 ids a request, the default MAX_IDS) and
 * compares each with the reference, field by field.
 */
export async function verifyServed(url: string, reference: Reference): Promise<Verification> {
  const PER_REQUEST = 500;
  let differing = 0;
  const examples: string[] = [];
  for (let from = 0; from < reference.users; from += PER_REQUEST) {
    const ids = Array.from({ length: Math.min(PER_REQUEST, reference.users - from) }, (_, j) =>
      String(from + j),
    );
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: VERIFY_QUERY, variables: { ids } }),
    });
    const body = (await res.json()) as { data?: { users: (ExpectedUser | null)[] }; errors?: unknown };
    if (body.data === undefined) throw new Error(`users(ids) failed: ${res.status} ${JSON.stringify(body)}`);
    body.data.users.forEach((served, j) => {
      const expected = reference.expected(from + j);
      if (JSON.stringify(served) === JSON.stringify(expected)) return;
      differing++;
      if (examples.length < 5)
        examples.push(
          `user ${from + j}: expected ${JSON.stringify(expected)}, served ${JSON.stringify(served)}`,
        );
    });
  }
  return { users: reference.users, differing, examples };
}

/** Every user against the reference, as a check; a difference fails the scenario (after the check is recorded). */
export async function expectExact(
  ctx: ScenarioContext,
  url: string,
  reference: Reference,
  target: string,
): Promise<void> {
  const v = await verifyServed(url, reference);
  ctx.check(target, `${v.users - v.differing} of ${v.users} users equal`, v.differing === 0);
  if (v.differing > 0)
    throw new Error(`${target}: ${v.differing} users differ, e.g.\n${v.examples.join('\n')}`);
}
