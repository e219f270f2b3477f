/**
 * `extensions.asOf` on every GraphQL response (issue 18, point 3): which store commit the answer was read at,
 * and how far behind the source the view was then.
 *
 *   "extensions": { "asOf": { "sequence": "<uint64 as a string>", "lagRecords": <number | null> } }
 *
 * - `sequence`: `ViewReader.readSequence()`, the commit of the read snapshot, taken just before the data is
 *   read. Where both are read in one synchronous stretch they come from the same snapshot and the sequence is
 *   exactly the commit the data is at: every answer of the fast path (after a `minOffsets` wait too). Apollo takes
 *   it when the request starts and reads the data in later turns, which may see a newer snapshot: there the data
 *   is at least as new as the sequence says, never older. (`sequence()`, the last commit this process
 *   published, lags the snapshot whenever a commit is readable before its reply is handled, or another process
 *   commits: a read-your-writes client saw two writes' answers under one sequence.) A subscription event
 *   carries the sequence of the commit it comes from (or that its snapshot was read at) instead.
 * - `lagRecords`: `FeedMonitor.lagRecords()`, records between the view and the high watermarks as last
 *   computed, or null while unknown (no high watermark yet, or the source cannot be reached).
 *
 * The fast path writes the extension itself: {@link AsOfSource.json} keeps the JSON text of the last value, so
 * a read costs one meta read (~0.2 µs), a field read and two comparisons while nothing commits.
 */
import type { ViewReader } from '../../src/store/types.js';
import type { FeedMonitor } from '../feed-monitor.js';

/** The value of `extensions.asOf`. */
export interface AsOf {
  readonly sequence: string;
  readonly lagRecords: number | null;
}

/**
 * `asOf` for a subscription event: the commit it comes from when it names one (a user change's `sequence`), else
 * the current position (the dashboard's lists and totals, read as of their delivery).
 */
export function asOfEvent(asOf: Pick<AsOfSource, 'current' | 'at'>, event: unknown): AsOf {
  const sequence = (event as { sequence?: unknown } | null | undefined)?.sequence;
  return typeof sequence === 'bigint' ? asOf.at(sequence) : asOf.current();
}

/** The read side's position, for responses. */
export interface AsOfSource {
  /** The current position as an object (Apollo, WebSocket). */
  current(): AsOf;
  /** `,"extensions":{"asOf":…}` for the fast path to append after `"data":{…}` (Apollo's key order). */
  json(): string;
  /** `asOf` for a subscription event of commit `sequence`. */
  at(sequence: bigint): AsOf;
}

export function createAsOfSource(
  reader: Pick<ViewReader, 'readSequence'>,
  feed: Pick<FeedMonitor, 'lagRecords'>,
): AsOfSource {
  let lastSequence = -1n;
  let lastLag: number | null | undefined;
  let lastText = '';
  let lastSequenceText = '';
  const sequenceText = (sequence: bigint): string => {
    if (sequence !== lastSequence) {
      lastSequence = sequence;
      lastSequenceText = sequence.toString();
      lastLag = undefined;
    }
    return lastSequenceText;
  };
  return {
    current: () => ({ sequence: sequenceText(reader.readSequence()), lagRecords: feed.lagRecords() }),
    at: (sequence) => ({ sequence: sequence.toString(), lagRecords: feed.lagRecords() }),
    json() {
      const sequence = reader.readSequence();
      const lag = feed.lagRecords();
      if (sequence === lastSequence && lag === lastLag) return lastText;
      const text = sequenceText(sequence);
      lastLag = lag;
      lastText = `,"extensions":{"asOf":{"sequence":"${text}","lagRecords":${lag === null ? 'null' : String(lag)}}}`;
      return lastText;
    },
  };
}
