/**
 * The demo generator: Twitter-like changelog traffic for the four source topics, so a fresh `npm start`
 * (embedded changelog) or `matview demo --kafka` (real cluster) has live data to materialize.
 *
 * It writes rows exactly as CONTRACT.md section 1 describes them, and exercises what the view must get right:
 * inserts, updates that change nothing countable (profile edits, tweet edits), updates that move a count from
 * one user to another (a follow whose `followeeId` changes), tombstones, absent and `null` optional fields, and
 * both accepted date forms. Popularity is skewed: a few users get most followers, as on the real service.
 *
 * Reproducible: every choice comes from a seeded PRNG ({@link mulberry32}) and every time from `now()`, so a
 * seed and a clock reproduce the records. Memory is bounded: only the last few thousand keys per topic are kept,
 * to pick rows to update or delete. It only needs a {@link ChangelogWriter}, so it runs against either log.
 *
 * Ids:
 * - seeded users are `demoUserId(0 .. users-1)`, independent of the seed, and each user's profile is derived
 *   from its id alone: after a restart the generator knows every seeded user without reading the log;
 * - everything created later (tweets, follows, likes, new users) gets a Twitter-style snowflake id
 *   (time | worker | sequence), so a restarted generator never reuses an id written before.
 */
import type { Topics } from '../ops/config.js';
import type { Logger } from '../ops/logger.js';
import { murmur2 } from '../feed/partitioner.js';
import type { ChangelogWriter, OutgoingMessage } from '../feed/types.js';

export interface DemoGeneratorOptions {
  readonly writer: ChangelogWriter;
  readonly topics: Topics;
  /** Records per second after seeding; 0 writes the seed only. */
  readonly rate: number;
  /** Number of seeded users. Keep it across restarts, or traffic will name users that have no users row. */
  readonly users: number;
  /** PRNG seed; a random one (logged) when absent. */
  readonly seed?: number;
  readonly logger: Logger;
  /**
   * The log already holds the seed (a restart): write live traffic only. The caller derives it from the users
   * topic: `alreadySeeded = sum of endOffsets([topics.users]).next > 0`. Default false.
   */
  readonly alreadySeeded?: boolean;
  /** Clock for `createdAt` and snowflake ids (ms since the epoch). Tests pin it to make the output reproducible. */
  readonly now?: () => number;
  /** Interval between live batches (ms, default 100). */
  readonly tickMs?: number;
}

/** A running generator. `produced()` counts records the writer accepted (seed included). */
export interface DemoGenerator {
  /** Stops producing; resolves once the send in progress (if any) has finished. */
  stop(): Promise<void>;
  produced(): number;
  /** Resolves when the seed is written (at once when `alreadySeeded`), or when stopped before that. */
  readonly seeded: Promise<void>;
}

/** A source of uniform numbers in [0, 1). */
export type Random = () => number;

/**
 * mulberry32: a tiny, fast, seedable 32-bit PRNG. Not cryptographic; used so that a seed reproduces the demo.
 */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The userId of the i-th seeded demo user. Stable across seeds and restarts, so documentation, smoke tests and a
 * restarted generator can name demo users without reading the log (e.g. `GET /users/10000000`).
 */
export function demoUserId(index: number): string {
  return String(FIRST_USER_ID + index);
}

/**
 * Formats a time as Twitter's v1 API did (`Tue Jan 22 15:14:44 +0000 2008`), the second date form the contract
 * accepts; the generator mixes it with ISO-8601 so both parsers stay exercised.
 */
export function formatTwitterDate(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000 ${d.getUTCFullYear()}`
  );
}

/** Starts seeding (unless `alreadySeeded`) and then live traffic at `rate`. Never throws on writer errors: it retries. */
export function startDemoGenerator(options: DemoGeneratorOptions): DemoGenerator {
  if (!Number.isInteger(options.users) || options.users < 1) {
    throw new RangeError(`users must be a positive integer, got ${options.users}`);
  }
  if (!Number.isFinite(options.rate) || options.rate < 0) {
    throw new RangeError(`rate must be a number >= 0, got ${options.rate}`);
  }
  if (options.users > MAX_USERS)
    throw new RangeError(`users must be at most ${MAX_USERS}, got ${options.users}`);
  return new Generator(options);
}

// ------------------------------------------------------------------------------------------------ internals

const FIRST_USER_ID = 10_000_000;
const MAX_USERS = 10_000_000;
/** Twitter's snowflake epoch (2010-11-04), so ids look like the real ones. */
const SNOWFLAKE_EPOCH = 1_288_834_974_657;
const SEED_SEND_SIZE = 5_000;
/**
 * Most bytes per send: Kafka brokers reject record batches over `message.max.bytes` (1 MB by default) and kafkajs
 * does not split them, so big seeds and fast ticks are cut into sends well below that.
 */
const SEND_MAX_BYTES = 256 * 1024;
/** Initial tweets (and follows, likes) per user during the seed, capped so big user counts still seed quickly. */
const SEED_ACTIVITY_PER_USER = 3;
const SEED_ACTIVITY_MAX = 100_000;
/** Keys remembered per topic for updates and deletes. */
const POOL_SIZE = 20_000;
const RETRY_INITIAL_MS = 500;
const RETRY_MAX_MS = 30_000;
/** Seeded users joined between the launch of Twitter and 2024; fixed so a re-sent profile keeps its date. */
const JOINED_FROM = Date.UTC(2006, 2, 21);
const JOINED_TO = Date.UTC(2024, 0, 1);
const YEAR_MS = 365 * 24 * 3600 * 1000;

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** A word list from a template literal: items separated by `sep`, surrounding whitespace ignored. */
function list(text: string, sep: string | RegExp = /\s+/): string[] {
  return text
    .split(sep)
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

const FIRST_NAMES = list(
  `
  Zach Ada Grace Linus Margaret Ken Barbara Dennis Radia Guido Frances Jay Neha Martin Jun Priya Tim
  Sofia Kofi Mei Lars Amara Diego Yuki Olga Ravi Fatima Noah Ines Omar
`,
);
const LAST_NAMES = list(
  `
  Cox Lovelace Hopper Torvalds Hamilton Thompson Liskov Ritchie Perlman Rossum Allen Kreps Narkhede
  Kleppmann Rao Berners-Lee Garcia Mensah Chen Nilsson Okafor Silva Tanaka Ivanova Patel Haddad Smith
  Moreau Kowalski Nakamura
`,
);
const LOCATIONS = list(
  `
  Chicago, IL | San Francisco, CA | New York, NY | London | Berlin | Paris | Tokyo | Bangalore | Lagos
  | São Paulo | Toronto | Sydney | Amsterdam | Stockholm | Seoul | Nairobi | Austin, TX | Seattle, WA
  | Mexico City | Warsaw
`,
  '|',
);
const ROLES = list(
  `
  Engineering | Software engineer | Data engineer | SRE | Designer | Product manager | Founder |
  Researcher | Developer advocate | Writer | Musician | Student
`,
  '|',
);
const COMPANIES = list(
  `
  Uptake | Confluent | Acme | Initech | Globex | Hooli | Stark Industries | Umbrella
`,
  '|',
);
const INTERESTS = list(
  `
  Kafka | stream processing | distributed systems | coffee | cycling | jazz | photography | climbing |
  open source | TypeScript | databases | sci-fi | chess | running
`,
  '|',
);
const WORDS = list(
  `
  just shipped a new feature today the consumer lag is finally zero who else loves materialized views
  reading about log compaction coffee first then code deploy on friday what could go wrong great talk
  at the meetup tonight changelog topics are tables turned inside out my cat approves
`,
);
const HASHTAGS = list(`#kafka #streaming #graphql #lmdb #devlife #opensource #nodejs #dataeng`);
const EMOJI = list(`🚀 🎉 ☕ 🔥 🤔 😅 📈 ✨`);

type Row = Record<string, string | null>;

interface TweetRef {
  readonly tweetId: string;
  readonly userId: string;
  readonly createdAt: string;
}
interface FollowRef {
  readonly followId: string;
  readonly followerId: string;
  readonly followeeId: string;
  readonly createdAt: string;
}
interface LikeRef {
  readonly likeId: string;
}

type Table = keyof Topics;
interface Produced {
  readonly table: Table;
  readonly message: OutgoingMessage;
}

/**
 * A bounded set of recently written keys: random replacement once full, so memory stays flat while the picks
 * still cover old and new rows.
 */
class Pool<T> {
  private readonly items: T[] = [];
  constructor(
    private readonly capacity: number,
    private readonly random: Random,
  ) {}
  get size(): number {
    return this.items.length;
  }
  add(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else this.items[Math.floor(this.random() * this.capacity)] = item;
  }
  pick(): T | undefined {
    return this.items[Math.floor(this.random() * this.items.length)];
  }
  /** Removes and returns a random item (swap with the last: O(1)). */
  take(): T | undefined {
    if (this.items.length === 0) return undefined;
    const i = Math.floor(this.random() * this.items.length);
    const item = this.items[i]!;
    const last = this.items.pop()!;
    if (i < this.items.length) this.items[i] = last;
    return item;
  }
}

/**
 * Snowflake ids: 41 bits of ms since the Twitter epoch, 10 bits of worker, 12 bits of sequence. The clock never
 * goes backwards here: within one ms the sequence counts up, and when it runs out the id borrows the next ms.
 */
class SnowflakeIds {
  private lastMs = 0;
  private sequence = 0;
  constructor(
    private readonly worker: number,
    private readonly now: () => number,
  ) {}
  next(): string {
    let ms = Math.max(this.now(), this.lastMs);
    if (ms === this.lastMs) {
      this.sequence++;
      if (this.sequence > 0xfff) {
        ms = this.lastMs + 1;
        this.sequence = 0;
      }
    } else {
      this.sequence = 0;
    }
    this.lastMs = ms;
    const id =
      (BigInt(ms - SNOWFLAKE_EPOCH) << 22n) | (BigInt(this.worker & 0x3ff) << 12n) | BigInt(this.sequence);
    return id.toString();
  }
}

class Generator implements DemoGenerator {
  readonly seeded: Promise<void>;

  private readonly writer: ChangelogWriter;
  private readonly topics: Topics;
  private readonly logger: Logger;
  private readonly rate: number;
  private readonly users: number;
  private readonly now: () => number;
  private readonly tickMs: number;
  private readonly random: Random;
  private readonly ids: SnowflakeIds;
  private readonly tweets: Pool<TweetRef>;
  private readonly follows: Pool<FollowRef>;
  private readonly likes: Pool<LikeRef>;
  /** Users created after the seed; only these are remembered (seeded users are known by index). */
  private readonly newUsers: Pool<string>;

  private count = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private work: Promise<void> = Promise.resolve();
  private lastTickAt = 0;
  private budget = 0;
  private wakeRetry: (() => void) | undefined;

  constructor(options: DemoGeneratorOptions) {
    this.writer = options.writer;
    this.topics = options.topics;
    this.logger = options.logger;
    this.rate = options.rate;
    this.users = options.users;
    this.now = options.now ?? Date.now;
    this.tickMs = options.tickMs ?? 100;
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    this.random = mulberry32(seed);
    // The worker id mixes in the start time so two runs with the same seed do not share id space.
    this.ids = new SnowflakeIds(murmur2(`${seed}:${this.now()}`) & 0x3ff, this.now);
    this.tweets = new Pool(POOL_SIZE, this.random);
    this.follows = new Pool(POOL_SIZE, this.random);
    this.likes = new Pool(POOL_SIZE, this.random);
    this.newUsers = new Pool(POOL_SIZE, this.random);
    const alreadySeeded = options.alreadySeeded ?? false;
    this.logger.info(
      { seed, users: this.users, rate: this.rate, alreadySeeded, topics: this.topics },
      'demo generator starting',
    );
    this.seeded = alreadySeeded ? Promise.resolve() : this.seed();
    this.work = this.seeded.then(
      () => {
        if (!this.stopped && this.rate > 0) {
          this.lastTickAt = performance.now();
          this.schedule();
        }
      },
      (error: unknown) => this.logger.error({ err: error }, 'demo generator failed while seeding'),
    );
  }

  produced(): number {
    return this.count;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.wakeRetry?.();
    await this.work;
  }

  // ------------------------------------------------------------------------------------------ seeding

  private async seed(): Promise<void> {
    const started = performance.now();
    const before = this.count;
    for (let from = 0; from < this.users && !this.stopped; from += SEED_SEND_SIZE) {
      const to = Math.min(this.users, from + SEED_SEND_SIZE);
      const messages: OutgoingMessage[] = [];
      for (let i = from; i < to; i++) messages.push(this.userMessage(demoUserId(i), false));
      await this.sendChunked(this.topics.users, messages);
    }
    const activity = Math.min(this.users * SEED_ACTIVITY_PER_USER, SEED_ACTIVITY_MAX);
    const now = this.now();
    const past = () => now - Math.floor(this.random() * 2 * YEAR_MS);
    const makers: [Table, () => OutgoingMessage | undefined][] = [
      ['tweets', () => this.newTweet(past())],
      ['follows', () => this.newFollow(past())],
      ['likes', () => this.newLike(past())],
    ];
    for (const [table, make] of makers) {
      for (let done = 0; done < activity && !this.stopped;) {
        const messages: OutgoingMessage[] = [];
        for (; done < activity && messages.length < SEED_SEND_SIZE; done++) {
          const message = make();
          if (message !== undefined) messages.push(message);
        }
        await this.sendChunked(this.topics[table], messages);
      }
    }
    if (!this.stopped) {
      this.logger.info(
        { records: this.count - before, ms: Math.round(performance.now() - started) },
        'demo generator seeded the changelog',
      );
    }
  }

  // ------------------------------------------------------------------------------------------ live traffic

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // A failed tick (a bug: writer errors are retried inside) is logged and the next one still runs.
      this.work = this.tick()
        .catch((error: unknown) => this.logger.error({ err: error }, 'demo generator tick failed'))
        .then(() => this.schedule());
    }, this.tickMs);
  }

  private async tick(): Promise<void> {
    const at = performance.now();
    const elapsed = at - this.lastTickAt;
    this.lastTickAt = at;
    // Catch up on the time actually elapsed, but never more than one second's worth after a stall.
    this.budget = Math.min(this.budget + (this.rate * elapsed) / 1000, Math.max(this.rate, 1));
    const n = Math.floor(this.budget);
    if (n === 0) return;
    this.budget -= n;
    const produced: Produced[] = [];
    for (let i = 0; i < n; i++) produced.push(this.nextChange());
    for (const table of ['users', 'tweets', 'follows', 'likes'] as const) {
      const messages = produced.filter((p) => p.table === table).map((p) => p.message);
      if (!this.stopped) await this.sendChunked(this.topics[table], messages);
    }
  }

  /** One live change, drawn from a fixed mix; falls back to a new tweet when there is nothing to update or delete. */
  private nextChange(): Produced {
    const now = this.now();
    const roll = this.random() * 100;
    if (roll < 30) return { table: 'tweets', message: this.newTweet(now) };
    if (roll < 55) {
      const like = this.newLike(now);
      if (like !== undefined) return { table: 'likes', message: like };
    } else if (roll < 69) {
      return { table: 'follows', message: this.newFollow(now) };
    } else if (roll < 77) {
      return { table: 'users', message: this.userMessage(this.pickUser(1), true) };
    } else if (roll < 83) {
      const tweet = this.tweets.take();
      if (tweet !== undefined) return { table: 'tweets', message: { key: tweet.tweetId, value: null } };
    } else if (roll < 89) {
      const like = this.likes.take();
      if (like !== undefined) return { table: 'likes', message: { key: like.likeId, value: null } };
    } else if (roll < 94) {
      const follow = this.follows.take();
      if (follow !== undefined) return { table: 'follows', message: { key: follow.followId, value: null } };
    } else if (roll < 97) {
      const moved = this.moveFollow();
      if (moved !== undefined) return { table: 'follows', message: moved };
    } else if (roll < 99) {
      const edited = this.editTweet();
      if (edited !== undefined) return { table: 'tweets', message: edited };
    } else {
      const userId = this.ids.next();
      this.newUsers.add(userId);
      return { table: 'users', message: this.userMessage(userId, false) };
    }
    return { table: 'tweets', message: this.newTweet(now) };
  }

  // ------------------------------------------------------------------------------------------ rows

  private newTweet(at: number): OutgoingMessage {
    const tweet: TweetRef = { tweetId: this.ids.next(), userId: this.pickUser(2), createdAt: this.date(at) };
    this.tweets.add(tweet);
    return this.tweetMessage(tweet);
  }

  private tweetMessage(tweet: TweetRef): OutgoingMessage {
    const row: Row = {
      tweetId: tweet.tweetId,
      userId: tweet.userId,
      text: this.text(),
      createdAt: tweet.createdAt,
    };
    return { key: tweet.tweetId, value: JSON.stringify(row) };
  }

  /** Same tweet, new text: an update the counts must ignore. */
  private editTweet(): OutgoingMessage | undefined {
    const tweet = this.tweets.pick();
    return tweet === undefined ? undefined : this.tweetMessage(tweet);
  }

  private newFollow(at: number): OutgoingMessage {
    const followerId = this.pickUser(0);
    const follow: FollowRef = {
      followId: this.ids.next(),
      followerId,
      followeeId: this.pickFollowee(followerId),
      createdAt: this.date(at),
    };
    this.follows.add(follow);
    return this.followMessage(follow);
  }

  /** Re-sends a follow with another followee: the follower count must move from the old followee to the new one. */
  private moveFollow(): OutgoingMessage | undefined {
    const old = this.follows.take();
    if (old === undefined) return undefined;
    const moved: FollowRef = { ...old, followeeId: this.pickFollowee(old.followerId) };
    this.follows.add(moved);
    return this.followMessage(moved);
  }

  private followMessage(follow: FollowRef): OutgoingMessage {
    const row: Row = {
      followId: follow.followId,
      followerId: follow.followerId,
      followeeId: follow.followeeId,
      createdAt: follow.createdAt,
    };
    return { key: follow.followId, value: JSON.stringify(row) };
  }

  private newLike(at: number): OutgoingMessage | undefined {
    const tweet = this.tweets.pick();
    if (tweet === undefined) return undefined;
    const like: LikeRef = { likeId: this.ids.next() };
    this.likes.add(like);
    const row: Row = { likeId: like.likeId, userId: this.pickUser(1.5), tweetId: tweet.tweetId };
    // createdAt is optional in the contract; leave it out now and then so consumers cope with that.
    if (this.random() >= 0.05) row['createdAt'] = this.date(at);
    return { key: like.likeId, value: JSON.stringify(row) };
  }

  /**
   * A users row. The stable part of a profile comes from a PRNG seeded by the userId, so the same user looks the
   * same after a restart; `update` re-draws description and location from the main PRNG (a profile edit).
   */
  private userMessage(userId: string, update: boolean): OutgoingMessage {
    const r = mulberry32(murmur2(userId));
    const first = choose(r, FIRST_NAMES);
    const last = choose(r, LAST_NAMES);
    const style = r();
    const base =
      style < 0.4 ? `${first}${last}` : style < 0.7 ? `${first}_${last}` : `${first.charAt(0)}${last}`;
    // Twitter handles: at most 15 of [a-z0-9_].
    const handle = base
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, '')
      .slice(0, 11);
    const username = `${handle}${Math.floor(r() * 10_000)}`;
    // Whole seconds: the Twitter form has no milliseconds, and both forms should name the same instant.
    const joined = JOINED_FROM + Math.floor((r() * (JOINED_TO - JOINED_FROM)) / 1000) * 1000;
    const joinedDate = r() < 0.5 ? formatTwitterDate(joined) : new Date(joined).toISOString();
    const profileImageUrl = `https://pbs.twimg.com/profile_images/${digits(r, 18)}/${alnum(r, 8)}.jpg`;
    const hasBanner = r() < 0.7;
    const hasSite = r() < 0.6;
    // Everything above is drawn first: the per-user stream must not depend on what follows.
    const dr = update ? this.random : r;
    const description = dr() < 0.1 ? null : this.description(dr);
    const locationRoll = dr();
    const row: Row = {
      userId,
      username,
      name: `${first} ${last}`,
      description,
    };
    // Optional fields: sometimes absent, sometimes null, as producers do both.
    if (locationRoll >= 0.2) row['location'] = locationRoll < 0.3 ? null : choose(dr, LOCATIONS);
    row['webPageUrl'] = hasSite ? `https://${username}.github.io/` : null;
    row['joinedDate'] = joinedDate;
    row['profileImageUrl'] = profileImageUrl;
    if (hasBanner) {
      row['backgroundImageUrl'] =
        `https://pbs.twimg.com/profile_banners/${userId}/${Math.floor(joined / 1000)}/1500x500`;
    }
    return { key: userId, value: JSON.stringify(row) };
  }

  private description(r: Random): string {
    const role = choose(r, ROLES);
    const roll = r();
    if (roll < 0.4) return `${role} @${choose(r, COMPANIES)}`;
    if (roll < 0.8) return `${role}. ${capitalize(choose(r, INTERESTS))} and ${choose(r, INTERESTS)}.`;
    return `${capitalize(choose(r, INTERESTS))} enthusiast ${choose(r, EMOJI)} Opinions my own.`;
  }

  private text(): string {
    const words: string[] = [];
    const length = 4 + Math.floor(this.random() * 14);
    for (let i = 0; i < length; i++) words.push(choose(this.random, WORDS));
    if (this.random() < 0.4) words.push(choose(this.random, HASHTAGS));
    if (this.random() < 0.3) words.push(choose(this.random, EMOJI));
    return capitalize(words.join(' '));
  }

  /** Mostly ISO-8601, sometimes the Twitter form: both are valid `createdAt` values. */
  private date(ms: number): string {
    return this.random() < 0.25 ? formatTwitterDate(ms) : new Date(ms).toISOString();
  }

  /**
   * A user, skewed toward low indices by `u^skew` (0: uniform). With skew 4 the first 10% of users get ~56% of
   * the picks, the first 1% ~32%: a few celebrities, a long tail.
   */
  private pickUser(skew: number): string {
    const total = this.users + this.newUsers.size;
    const u = this.random();
    const index = Math.min(total - 1, Math.floor(total * (skew === 0 ? u : u ** skew)));
    return index < this.users ? demoUserId(index) : (this.newUsers.pick() ?? demoUserId(0));
  }

  private pickFollowee(followerId: string): string {
    for (let attempt = 0; attempt < 5; attempt++) {
      const followee = this.pickUser(4);
      if (followee !== followerId) return followee;
    }
    // Only reachable with one or two users; any other user will do.
    return followerId === demoUserId(0) ? demoUserId(Math.min(1, this.users - 1)) : demoUserId(0);
  }

  // ------------------------------------------------------------------------------------------ writing

  /** Sends the messages in order, in sends of at most {@link SEND_MAX_BYTES}. */
  private async sendChunked(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    let from = 0;
    let bytes = 0;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const size = 64 + (m.key?.length ?? 0) + (m.value?.length ?? 0);
      if (bytes + size > SEND_MAX_BYTES && i > from) {
        await this.sendWithRetry(topic, messages.slice(from, i));
        from = i;
        bytes = 0;
      }
      bytes += size;
    }
    if (from < messages.length) await this.sendWithRetry(topic, from === 0 ? messages : messages.slice(from));
  }

  /** Sends one batch, retrying with backoff on writer errors until it succeeds or the generator is stopped. */
  private async sendWithRetry(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await this.writer.send(topic, messages);
        this.count += messages.length;
        return;
      } catch (error) {
        const delayMs = Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** Math.min(attempt - 1, 10));
        this.logger.warn(
          { err: error, topic, records: messages.length, attempt, delayMs },
          'demo generator could not write; retrying',
        );
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delayMs);
          this.wakeRetry = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wakeRetry = undefined;
      }
    }
  }
}

function choose<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function capitalize(s: string): string {
  return s.length === 0 ? s : s[0]!.toUpperCase() + s.slice(1);
}

function digits(random: Random, length: number): string {
  let s = String(1 + Math.floor(random() * 9));
  while (s.length < length) s += String(Math.floor(random() * 10));
  return s;
}

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
function alnum(random: Random, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += ALNUM[Math.floor(random() * ALNUM.length)];
  return s;
}
