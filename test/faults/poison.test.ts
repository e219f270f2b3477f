/**
 * Issue 8.3, poison records: thousands of fuzzed records — random bytes, truncated JSON, values that are
 * not objects, wrong types, missing fields, key mismatches, bad keys, bad dates and 1.2 MB values — mixed
 * with valid rows and tombstones on the four topics of a real Kafka protocol endpoint. Afterwards:
 * every invalid record is on its `<topic>.dlq` (traced by its `fuzz-id` header, with an error code its
 * kind allows), no valid record is there, every valid record is applied (the view and the store equal the
 * reference over the valid records read back from the topics), the invalid-records metric counts each
 * one, and the feed never crashed.
 *
 * FAULT_SEED replays a run (printed); FAULT_POISON_RECORDS sets the count (default 3000).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { FeedRecord } from '../../src/feed/types.js';
import { consumeAll, produce, useKafka } from '../utils/kafka-mock.js';
import { freshTopics, startTestServer, type TestServer } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import { FUZZ_ID, fuzzRecords, type FuzzRecord } from './support/poison.js';
import {
  computeReference,
  endOffsets,
  expectServedViewEquals,
  expectStoreEquals,
  readTopics,
  TABLE_LIST,
  waitCaughtUp,
} from './support/reference.js';

const SEED = Number(process.env['FAULT_SEED'] ?? Math.floor(Math.random() * 1e9));
const COUNT = Number(process.env['FAULT_POISON_RECORDS'] ?? 3_000);
const HUGE = 2;

const kafka = useKafka();
let server: TestServer | undefined;
afterAll(async () => {
  await server?.close();
});

const idOf = (r: FeedRecord): string => r.headers[FUZZ_ID]?.toString() ?? '<no fuzz-id>';

describe('poison records', () => {
  it(`should dead-letter every invalid record and apply every valid one, never crashing (seed ${SEED})`, async () => {
    console.log(`poison: FAULT_SEED=${SEED} FAULT_POISON_RECORDS=${COUNT}`);
    const topics = freshTopics();
    const dataDir = tempDir();
    const records = fuzzRecords(SEED, COUNT, HUGE);
    const byId = new Map(records.map((r) => [r.id, r]));
    server = await startTestServer({ brokers: kafka.brokers, topics, dataDir });
    let fatal: Error | undefined;
    void server.running.fatal.then((e) => (fatal = e));
    const states = new Set<string>();
    const watch = setInterval(() => states.add(server!.running.source.status().state), 100);

    try {
      // Per topic, in chunks; the 1.2 MB values one per request.
      for (const table of TABLE_LIST) {
        const mine = records.filter((r) => r.table === table);
        const small = mine.filter((r) => (r.value?.length ?? 0) < 100_000);
        for (let i = 0; i < small.length; i += 200) {
          await produce(kafka.brokers, topics[table], small.slice(i, i + 200).map(toMessage));
        }
      }
      for (const r of records.filter((x) => (x.value?.length ?? 0) >= 100_000)) {
        await produce(kafka.brokers, topics[r.table], [toMessage(r)]);
      }

      await waitCaughtUp(server.url, kafka.brokers, topics);
      const read = await readTopics(kafka.brokers, topics);
      const valid = (_t: unknown, r: FeedRecord) => byId.get(idOf(r))?.invalid === undefined;
      const reference = computeReference(read, valid);
      expect(reference.recordCount).toBe(records.length);
      await expectServedViewEquals(server.url, reference);

      // The DLQs hold exactly the invalid records (a redelivered batch may copy one twice: a set).
      const invalid = records.filter((r) => r.invalid !== undefined);
      const dead: FeedRecord[] = [];
      for (const table of TABLE_LIST) {
        const dlq = `${topics[table]}.dlq`;
        const expected = invalid.filter((r) => r.table === table).length;
        const total = (await endOffsets(kafka.brokers, dlq)).reduce((n, e) => n + Number(e.next), 0);
        expect(total).toBeGreaterThanOrEqual(expected);
        if (total > 0) dead.push(...(await consumeAll(kafka.brokers, dlq, total, 60_000)));
      }
      const problems: string[] = [];
      for (const d of dead) {
        const r = byId.get(idOf(d));
        const code = d.headers['matview.error.code']?.toString() ?? '';
        if (r === undefined) problems.push(`DLQ record without a known fuzz-id: ${idOf(d)}`);
        else if (r.invalid === undefined)
          problems.push(`valid ${r.kind} record ${r.id} was dead-lettered (${code})`);
        else if (!r.invalid.includes(code as never))
          problems.push(`${r.kind} record ${r.id} got ${code}, expected one of ${r.invalid.join('|')}`);
        else if (!sameBytes(d.value, r.value) || !sameBytes(d.key, r.key))
          problems.push(`${r.kind} record ${r.id}: DLQ copy differs from the original`);
      }
      const deadIds = new Set(dead.map(idOf));
      for (const r of invalid)
        if (!deadIds.has(r.id)) problems.push(`${r.kind} record ${r.id} is not on the DLQ`);
      expect(problems.slice(0, 20), `${problems.length} problems`).toEqual([]);

      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const counted = [...metrics.matchAll(/^matview_records_invalid_total\{[^}]*\} (\d+)$/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
      expect(counted).toBe(invalid.length);
      const kinds = new Map<string, number>();
      for (const r of records) kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
      console.log(`poison: ${records.length} records, ${invalid.length} invalid`, Object.fromEntries(kinds));

      expect(fatal).toBeUndefined();
      expect([...states]).not.toContain('crashed');
    } finally {
      clearInterval(watch);
    }
    await server.close();
    server = undefined;
    await expectStoreEquals(
      dataDir,
      topics,
      computeReference(
        await readTopics(kafka.brokers, topics),
        (_t, r) => byId.get(idOf(r))?.invalid === undefined,
      ),
    );
  }, 240_000);
});

function toMessage(r: FuzzRecord) {
  return { key: r.key, value: r.value, headers: { [FUZZ_ID]: r.id } };
}

function sameBytes(a: Buffer | null, b: Buffer | null): boolean {
  // A zero-length key may come back as null: both mean "no key".
  if ((a === null || a.length === 0) && (b === null || b.length === 0)) return true;
  return a !== null && b !== null && a.equals(b);
}
