/**
 * Date-times as source connectors write them, turned into the contract's ISO-8601 UTC strings.
 *
 * Debezium encodes temporal columns by type and `time.precision.mode` (Debezium PostgreSQL and MySQL
 * connector docs, "Temporal types"): `DATE` as days since the epoch (`io.debezium.time.Date`,
 * int32), `TIMESTAMP` without zone as milli-, micro- or nanoseconds since the epoch
 * (`io.debezium.time.Timestamp` / `MicroTimestamp` / `NanoTimestamp`, int64, the wall-clock value
 * read as UTC), `TIMESTAMPTZ` as an ISO string with offset (`io.debezium.time.ZonedTimestamp`). With
 * `time.precision.mode=connect` they are Kafka Connect's `org.apache.kafka.connect.data.Date` and
 * `.Timestamp`. Confluent's Avro converter carries those names as `connect.name` and adds Avro's
 * `logicalType` (`date`, `timestamp-millis`, `timestamp-micros`). Where a record carries no schema
 * (JSON without the converter's schema, or a flattened row), the unit comes from the mapping.
 *
 * Precision: matview's dates have milliseconds (as `normalizeDateTime`); finer digits are truncated
 * toward the past, so -1 µs is 1969-12-31T23:59:59.999Z.
 */
import { isoOfMs, normalizeDateTime } from '../views/dates.js';

/** How a number in a date-time column counts time since 1970-01-01T00:00:00Z. */
export const TIME_UNITS = ['days', 'millis', 'micros', 'nanos'] as const;
export type TimeUnit = (typeof TIME_UNITS)[number];

/** Semantic type names (Kafka Connect schema `name`, Avro `connect.name` / `logicalType`) → unit. */
const UNIT_OF_TYPE: Readonly<Record<string, TimeUnit>> = {
  'io.debezium.time.Date': 'days',
  'org.apache.kafka.connect.data.Date': 'days',
  date: 'days',
  'io.debezium.time.Timestamp': 'millis',
  'org.apache.kafka.connect.data.Timestamp': 'millis',
  'timestamp-millis': 'millis',
  'local-timestamp-millis': 'millis',
  'io.debezium.time.MicroTimestamp': 'micros',
  'timestamp-micros': 'micros',
  'local-timestamp-micros': 'micros',
  'io.debezium.time.NanoTimestamp': 'nanos',
  'timestamp-nanos': 'nanos',
  'local-timestamp-nanos': 'nanos',
};

/** The unit a semantic type name stands for, if it is a date or date-time encoded as a number. */
export function unitOfType(name: string | undefined): TimeUnit | undefined {
  return name === undefined ? undefined : UNIT_OF_TYPE[name];
}

const PER_MS: Record<Exclude<TimeUnit, 'days'>, bigint> = { millis: 1n, micros: 1_000n, nanos: 1_000_000n };
const MS_PER_DAY = 86_400_000;
/** ECMAScript's time range: ±100,000,000 days around the epoch. */
const MAX_MS = 8.64e15;

const MS_PER: Record<Exclude<TimeUnit, 'days'>, number> = { millis: 1, micros: 1_000, nanos: 1_000_000 };

/**
 * Floor division of a safe integer by one of MS_PER's divisors, exact. `a / b` is correctly rounded, so its
 * truncation is the floor or one more (a negative quotient, or one rounded up to an integer); the remainder
 * says which, and is exact: `q * b` is a multiple of 8 (or b is 1) below 2^56, so a double holds it.
 */
const floorDivSafe = (a: number, b: number): number => {
  const q = Math.trunc(a / b);
  return a - q * b < 0 ? q - 1 : q;
};

/** Floor division for bigints (BigInt `/` truncates toward zero). */
const floorDiv = (a: bigint, b: bigint): bigint => {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
};

/**
 * ISO-8601 UTC form of a date-time value: a string (ISO-8601, Debezium's zoned form, or seed 002's
 * form), or an integer number of `unit`s since the epoch. undefined: not a date-time (a number without
 * a unit, a fraction, out of range, an unparseable string).
 */
export function toIsoDateTime(
  value: string | number | bigint,
  unit: TimeUnit | undefined,
): string | undefined {
  if (typeof value === 'string') return normalizeDateTime(value);
  if (unit === undefined) return undefined;
  if (typeof value === 'number' && !Number.isSafeInteger(value)) return undefined;
  let ms: number;
  if (unit === 'days') ms = Number(value) * MS_PER_DAY;
  else if (typeof value === 'number') ms = floorDivSafe(value, MS_PER[unit]);
  else ms = Number(floorDiv(value, PER_MS[unit]));
  if (!(Math.abs(ms) <= MAX_MS)) return undefined;
  return isoOfMs(ms);
}
