/**
 * Stored form of a view: the bytes `GET /users/:id` sends, followed by the version, so the REST
 * route answers with a zero-copy slice and GraphQL parses at most two small JSON documents.
 *
 *   [u32 LE length of rest JSON][rest JSON: seed 002's object][version JSON]
 */
import type { Counts, Profile, REST_FIELDS, UserInformation, ViewVersion } from './user-information.js';

/**
 * Seed 002's object of a view: an object literal in REST_FIELDS order (one hidden class, JSON.stringify's
 * fast path). The view topic's value is this plus the version (view-record.ts).
 */
export function restObjectOf(view: UserInformation): Record<(typeof REST_FIELDS)[number], unknown> {
  return {
    userId: view.userId,
    username: view.username,
    name: view.name,
    description: view.description,
    location: view.location,
    webPageUrl: view.webPageUrl,
    joinedDate: view.joinedDate,
    profileImageUrl: view.profileImageUrl,
    backgroundImageUrl: view.backgroundImageUrl,
    tweetCount: view.tweetCount,
    followingCount: view.followingCount,
    followerCount: view.followerCount,
    likeCount: view.likeCount,
  };
}

export function encodeView(view: UserInformation): Buffer {
  // Both JSON texts written straight into one buffer: this runs for every changed user of every batch.
  const rest = JSON.stringify(restObjectOf(view));
  return encodeRest(rest, Buffer.byteLength(rest), view.version);
}

/** `encodeView` of a view whose REST JSON is `rest` (`restBytes` long in UTF-8). */
function encodeRest(rest: string, restBytes: number, version: ViewVersion): Buffer {
  const versionJson = JSON.stringify(version);
  const out = Buffer.allocUnsafe(4 + restBytes + Buffer.byteLength(versionJson));
  out.writeUInt32LE(restBytes, 0);
  out.write(rest, 4);
  out.write(versionJson, 4 + restBytes);
  return out;
}

/** Where `encodeOver` writes a REST JSON to compare it with a stored one (grown as needed). */
let scratch = Buffer.allocUnsafe(4096);

/**
 * What a view rebuild stores for `view` over the stored view `old` (ValueCodec.encodeOver): a copy of `old`
 * when their REST JSON is the same (UserInformation's `versioned` comparison; the copy is that JSON with
 * `old`'s version), else `view` encoded. One buffer either way, where encoding, comparing and splicing made two
 * for a kept version: at 1M users, buffers enough to start a full collection of the rebuild's heap every
 * ~64 MB of them (V8's external memory pressure), ~1 s each.
 */
export function encodeViewOver(view: UserInformation, old: Buffer): Buffer {
  const rest = JSON.stringify(restObjectOf(view));
  const restBytes = Buffer.byteLength(rest);
  if (restBytes === versionStart(old) - 4) {
    if (scratch.length < restBytes) scratch = Buffer.allocUnsafe(2 * restBytes);
    scratch.write(rest, 0);
    if (scratch.compare(old, 4, 4 + restBytes, 0, restBytes) === 0) {
      const out = Buffer.allocUnsafe(old.length);
      old.copy(out);
      return out;
    }
  }
  return encodeRest(rest, restBytes, view.version);
}

/**
 * The bytes `encodeView` made for a view object, while the object lives. A commit on the writer thread
 * stores a view and then sends the same view to the event loop in its stored form (src/store/packed-views.ts):
 * encoded once, not twice. Views are never changed after they are built.
 */
const encodedViews = new WeakMap<UserInformation, Buffer>();
/** Set while `uncachedEncoding` runs. */
let uncached = false;

export function encodeViewOnce(view: UserInformation): Buffer {
  let bytes = encodedViews.get(view);
  if (bytes !== undefined) return bytes;
  bytes = encodeView(view);
  if (!uncached) encodedViews.set(view, bytes);
  return bytes;
}

/**
 * Runs `write` with `encodeViewOnce` keeping nothing: for writes whose views are stored and sent nowhere
 * (a rebuild's buffered views, up to millions at once). Cached, each one's bytes would live as long as its
 * view object, which the buffer holds until the write ends: 1M users' views kept ~550 MB of buffers alive
 * through the write, and the collector ran again and again over them.
 */
export function uncachedEncoding<T>(write: () => T): T {
  const was = uncached;
  uncached = true;
  try {
    return write();
  } finally {
    uncached = was;
  }
}

/** Where a stored view's version JSON starts: after the length and the REST JSON (the layout above). */
export function versionStart(bytes: Buffer): number {
  return 4 + bytes.readUInt32LE(0);
}

/** Seed 002's JSON object (no version), as a view onto `bytes`. */
export function restJsonOf(bytes: Buffer): Buffer {
  return bytes.subarray(4, versionStart(bytes));
}

const COMMA = 0x2c;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/**
 * The four counts of a stored view, read backwards from the end of its REST JSON, where `encodeView` writes
 * them last, as integers (`…,"tweetCount":1,"followingCount":2,"followerCount":3,"likeCount":4}`): no JSON
 * parse, nothing but the result allocated. UserInformation reads a user's counts this way at every commit
 * that moves it (since its version 2 they are stored in the view alone).
 */
export function countsOfStoredView(bytes: Buffer): Counts {
  // The last digit of likeCount, before the closing brace.
  let at = versionStart(bytes) - 2;
  const previous = (): number => {
    let n = 0;
    let scale = 1;
    for (let c = bytes[at]!; c >= DIGIT_0 && c <= DIGIT_9; c = bytes[--at]!) {
      n += (c - DIGIT_0) * scale;
      scale *= 10;
    }
    // At the colon after the field's name: back to the comma before the name, then the digit before it.
    at = bytes.lastIndexOf(COMMA, at) - 1;
    return n;
  };
  const likeCount = previous();
  const followerCount = previous();
  const followingCount = previous();
  const tweetCount = previous();
  return { tweetCount, followingCount, followerCount, likeCount };
}

/** Profile and counts of a stored view, without parsing its version. */
export function decodeUnversioned(bytes: Buffer): Profile & Counts {
  return JSON.parse(bytes.toString('utf8', 4, versionStart(bytes))) as Profile & Counts;
}

export function decodeView(bytes: Buffer): UserInformation {
  const end = versionStart(bytes);
  // The parsed object is fresh and ours: add the version to it rather than copying 13 fields into a new one.
  const view = JSON.parse(bytes.toString('utf8', 4, end)) as {
    -readonly [K in keyof UserInformation]?: UserInformation[K];
  };
  view.version = JSON.parse(bytes.toString('utf8', end)) as ViewVersion;
  return view as UserInformation;
}
