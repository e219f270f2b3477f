/**
 * The view topic's record format (docs/view-topic.md, the contract other engines produce): how a
 * materializing instance writes the UserInformation view to Kafka (VIEW_TOPIC_OUT), and how a serving replica
 * reads it back (VIEW_TOPIC_IN) whoever wrote it. Pure: bytes in, a decoded view or an invalid verdict out.
 *
 * - user record: key = userId (UTF-8, 1-512 bytes), value = seed 002's JSON object plus `version`, or a
 *   tombstone (no value) when the user has no users row any more. Header `matview.view: user-information`
 *   (absent means the same).
 * - status record: key = zero bytes (no userId is empty, CONTRACT.md §1, so it never meets a user under
 *   compaction), header `matview.view: status`, value = the producer's heartbeat and the totals.
 * - a record whose `matview.view` names another view is skipped (forward compatible: a newer producer may
 *   publish more views than this replica serves).
 */
import { RecordErrorCode } from '../errors.js';
import { restObjectOf } from './codec.js';
import {
  Invalid,
  MAX_KEY_BYTES,
  decodeKey,
  describe,
  fail,
  optionalDate,
  optionalString,
  parseObject,
} from './decode.js';
import type { TotalsValue } from './totals.js';
import {
  COUNT_FIELDS,
  USER_INFORMATION,
  type Counts,
  type SourcePosition,
  type UserInformation,
  type ViewVersion,
} from './user-information.js';

/** The header naming what a record of the view topic carries. */
export const VIEW_HEADER = 'matview.view';
/** `matview.view` of the status record. */
export const STATUS_VIEW = 'status';

/** What the producer of a view topic says about itself in its status record (its heartbeat). */
export interface ProducerStatus {
  /** The producer's identity (matview: its store's instance id). */
  readonly id: string;
  /** ISO-8601 time the status was published. */
  readonly at: string;
  /** Whether the producer itself is caught up with its sources (its `/health/ready`). */
  readonly ready: boolean;
  /** Records it is behind its sources (decimal), null when unknown. */
  readonly lag: string | null;
  /** The last commit sequence whose changes it has published (decimal), null when it has none. */
  readonly sequence: string | null;
}

export interface StatusValue {
  readonly producer: ProducerStatus;
  /** The totals view (rows per table), null when the producer does not publish it. */
  readonly totals: TotalsValue | null;
}

/** Where a record of the view topic is: the defaults of an incomplete `version` come from it. */
export interface ViewRecordOrigin {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** The record's Kafka timestamp, ms. */
  readonly timestamp: number;
}

export type DecodedViewRecord =
  | {
      readonly ok: true;
      readonly kind: 'user';
      readonly userId: string;
      readonly view: UserInformation | null;
    }
  | { readonly ok: true; readonly kind: 'status'; readonly status: StatusValue }
  /** A view this code does not serve (its `matview.view`): skipped. */
  | { readonly ok: true; readonly kind: 'other'; readonly view: string }
  | { readonly ok: false; readonly code: RecordErrorCode; readonly message: string };

// ---- encoding (the publisher) ----

/** The value of a user record: seed 002's fields in their order, then `version`. */
export function encodeUserValue(view: UserInformation): string {
  return JSON.stringify({ ...restObjectOf(view), version: view.version });
}

export function encodeStatusValue(status: StatusValue): string {
  return JSON.stringify(status);
}

// ---- decoding (the replica) ----

const utf8 = new TextDecoder('utf-8', { fatal: true });
const DECIMAL_U64 = /^(0|[1-9]\d{0,19})$/;
const U64_MAX = 0xffff_ffff_ffff_ffffn;
const U32_MAX = 0xffff_ffff;

/** Decodes one record of a view topic. Never throws on bad input. */
export function decodeViewRecord(
  key: Buffer | null,
  value: Buffer | null,
  headers: Readonly<Record<string, Buffer | undefined>>,
  origin: ViewRecordOrigin,
): DecodedViewRecord {
  try {
    const header = headers[VIEW_HEADER];
    const view = header === undefined ? USER_INFORMATION : decodeHeader(header);
    const tombstone = value === null || value.length === 0;
    if (view === STATUS_VIEW) {
      if (key === null || key.length !== 0)
        fail(RecordErrorCode.KeyInvalid, 'a status record (matview.view: status) must have an empty key');
      if (tombstone) fail(RecordErrorCode.FieldMissing, 'a status record must have a value');
      return { ok: true, kind: 'status', status: statusOf(parseObject(value), origin) };
    }
    if (view !== USER_INFORMATION) return { ok: true, kind: 'other', view };
    if (key !== null && key.length === 0)
      fail(
        RecordErrorCode.KeyInvalid,
        'record key is empty: only the status record (header matview.view: status) has an empty key',
      );
    const userId = decodeKey(key);
    if (tombstone) return { ok: true, kind: 'user', userId, view: null };
    return { ok: true, kind: 'user', userId, view: userOf(userId, parseObject(value), origin) };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}

function decodeHeader(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return fail(RecordErrorCode.FieldType, `header ${VIEW_HEADER} is not valid UTF-8`);
  }
}

function userOf(userId: string, o: Record<string, unknown>, origin: ViewRecordOrigin): UserInformation {
  const own = o['userId'];
  if (own !== undefined && own !== null && own !== userId)
    fail(
      RecordErrorCode.KeyMismatch,
      `field "userId" is ${JSON.stringify(String(own).slice(0, 64))} but the record key is ${JSON.stringify(userId.slice(0, 64))}`,
    );
  const username = o['username'];
  if (username === undefined || username === null)
    fail(RecordErrorCode.FieldMissing, 'required field "username" is missing');
  if (typeof username !== 'string')
    fail(RecordErrorCode.FieldType, `field "username" must be a string, got ${describe(username)}`);
  const counts = {} as Record<keyof Counts, number>;
  for (const f of COUNT_FIELDS) counts[f] = count(o, f);
  return {
    userId,
    username,
    name: optionalString(o, 'name'),
    description: optionalString(o, 'description'),
    location: optionalString(o, 'location'),
    webPageUrl: optionalString(o, 'webPageUrl'),
    joinedDate: optionalDate(o, 'joinedDate'),
    profileImageUrl: optionalString(o, 'profileImageUrl'),
    backgroundImageUrl: optionalString(o, 'backgroundImageUrl'),
    ...counts,
    version: versionOf(o['version'], 'version', origin),
  };
}

/** A count: an integer from 0 to `max` (a user's counts are stored as uint32; totals may exceed that). */
function count(o: Record<string, unknown>, field: string, prefix = '', max = U32_MAX): number {
  const v = o[field];
  const name = `${prefix}${field}`;
  if (v === undefined || v === null)
    fail(RecordErrorCode.FieldMissing, `required field "${name}" is missing`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
    fail(
      RecordErrorCode.FieldType,
      `field "${name}" must be an integer from 0 to ${max}, got ${typeof v === 'number' ? v : describe(v)}`,
    );
  return v;
}

function object(v: unknown, field: string): Record<string, unknown> {
  if (v === undefined || v === null)
    fail(RecordErrorCode.FieldMissing, `required field "${field}" is missing`);
  if (typeof v !== 'object' || Array.isArray(v))
    fail(RecordErrorCode.FieldType, `field "${field}" must be an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

/** A uint64 as a decimal string (a safe integer number is accepted too: JSON producers write BIGINTs so). */
function decimal(v: unknown, field: string): string {
  if (v === undefined || v === null)
    fail(RecordErrorCode.FieldMissing, `required field "${field}" is missing`);
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v);
  if (typeof v === 'string' && DECIMAL_U64.test(v) && BigInt(v) <= U64_MAX) return v;
  return fail(
    RecordErrorCode.FieldType,
    `field "${field}" must be a uint64 as a decimal string, got ${describe(v)}`,
  );
}

function isoTime(v: unknown, field: string): string {
  const iso = optionalDate({ [field]: v }, field);
  if (iso === null) fail(RecordErrorCode.FieldMissing, `required field "${field}" is missing`);
  return iso;
}

/**
 * A view's version. `sequence` is required (it orders a user's values); the rest may be left out by an engine
 * that cannot say it: `appliedAt` is then the record's timestamp, `eventTime` null and `source` the record's
 * own place in the view topic.
 */
function versionOf(v: unknown, field: string, origin: ViewRecordOrigin): ViewVersion {
  const o = object(v, field);
  const source = o['source'];
  return {
    sequence: decimal(o['sequence'], `${field}.sequence`),
    appliedAt:
      o['appliedAt'] === undefined || o['appliedAt'] === null
        ? new Date(origin.timestamp).toISOString()
        : isoTime(o['appliedAt'], `${field}.appliedAt`),
    eventTime: optionalDate(o, 'eventTime'),
    source:
      source === undefined || source === null
        ? { topic: origin.topic, partition: origin.partition, offset: origin.offset }
        : sourceOf(object(source, `${field}.source`), `${field}.source`),
  };
}

function sourceOf(o: Record<string, unknown>, field: string): SourcePosition {
  const topic = o['topic'];
  const partition = o['partition'];
  if (typeof topic !== 'string' || topic.length === 0)
    fail(
      RecordErrorCode.FieldType,
      `field "${field}.topic" must be a non-empty string, got ${describe(topic)}`,
    );
  if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0)
    fail(
      RecordErrorCode.FieldType,
      `field "${field}.partition" must be a non-negative integer, got ${describe(partition)}`,
    );
  return { topic, partition, offset: decimal(o['offset'], `${field}.offset`) };
}

function statusOf(o: Record<string, unknown>, origin: ViewRecordOrigin): StatusValue {
  const p = object(o['producer'], 'producer');
  const id = p['id'];
  if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id) > MAX_KEY_BYTES)
    fail(RecordErrorCode.FieldType, `field "producer.id" must be a non-empty string, got ${describe(id)}`);
  const ready = p['ready'];
  if (typeof ready !== 'boolean')
    fail(RecordErrorCode.FieldType, `field "producer.ready" must be a boolean, got ${describe(ready)}`);
  const optionalDecimal = (field: string): string | null =>
    p[field] === undefined || p[field] === null ? null : decimal(p[field], `producer.${field}`);
  const producer: ProducerStatus = {
    id,
    at: isoTime(p['at'], 'producer.at'),
    ready,
    lag: optionalDecimal('lag'),
    sequence: optionalDecimal('sequence'),
  };
  const t = o['totals'];
  if (t === undefined || t === null) return { producer, totals: null };
  const totals = object(t, 'totals');
  return {
    producer,
    totals: {
      users: count(totals, 'users', 'totals.', Number.MAX_SAFE_INTEGER),
      tweets: count(totals, 'tweets', 'totals.', Number.MAX_SAFE_INTEGER),
      follows: count(totals, 'follows', 'totals.', Number.MAX_SAFE_INTEGER),
      likes: count(totals, 'likes', 'totals.', Number.MAX_SAFE_INTEGER),
      version: versionOf(totals['version'], 'totals.version', origin),
    },
  };
}
