/**
 * Feed records as plain data, for comparing records decoded different ways: a fetched record
 * (src/feed/record-batch.ts FetchedRecord) reads its key and value from its batch's bytes when asked, so
 * they are not own properties to compare, and it keeps that batch's bytes besides.
 */
import type { FeedRecord } from '../../src/feed/types.js';

/** A record's contract fields, its key and value read, and whether it is a control record. */
export const plainRecord = (r: FeedRecord, isControlRecord: boolean | undefined) => ({
  topic: r.topic,
  partition: r.partition,
  offset: r.offset,
  timestamp: r.timestamp,
  key: r.key,
  value: r.value,
  headers: r.headers,
  isControlRecord: isControlRecord ?? false,
});
