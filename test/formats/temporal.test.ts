/** Debezium's temporal encodings → ISO-8601 UTC with milliseconds (truncated toward the past). */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { toIsoDateTime, unitOfType } from '../../src/formats/temporal.js';

describe('toIsoDateTime', () => {
  it.each([
    [13_900, 'days', '2008-01-22T00:00:00.000Z'],
    [-1, 'days', '1969-12-31T00:00:00.000Z'],
    [1_201_014_884_123, 'millis', '2008-01-22T15:14:44.123Z'],
    [1_201_014_884_123_999n, 'micros', '2008-01-22T15:14:44.123Z'],
    [-1n, 'micros', '1969-12-31T23:59:59.999Z'],
    [1_201_014_884_123_456_789n, 'nanos', '2008-01-22T15:14:44.123Z'],
    ['2008-01-22T16:14:44.123456789+01:00', undefined, '2008-01-22T15:14:44.123Z'],
    ['Tue Jan 22 15:14:44 +0000 2008', undefined, '2008-01-22T15:14:44.000Z'],
  ] as const)('should read %s %s as %s', (value, unit, iso) => {
    expect(toIsoDateTime(value, unit)).toBe(iso);
  });

  it.each([
    [1_201_014_884_123, undefined],
    [1.5, 'millis'],
    [8.64e15 + 1, 'millis'],
    [2n ** 62n, 'millis'],
    ['22/01/2008', undefined],
  ] as const)('should refuse %s %s', (value, unit) => {
    expect(toIsoDateTime(value, unit)).toBeUndefined();
  });

  it('should read a safe integer number as it reads the same integer as a bigint (floor division)', () => {
    const random = prng(5);
    const edges = [0, -0, 1, -1, 999, -999, 1000, -1000, 1001, -1001, 999_999, -1_000_001];
    const big = Number.MAX_SAFE_INTEGER;
    const values = [...edges, big, -big, big - 1, -big + 1, big - 999, -big + 999, 8.64e15, -8.64e15];
    for (let i = 0; i < 20_000; i++) {
      const magnitude = 10 ** Math.floor(random() * 16);
      const v = Math.floor(random() * magnitude) * (random() < 0.3 ? -1 : 1);
      values.push(v, v * 1000, v * 1000 + 999, v * 1000 - 1);
    }
    for (const unit of ['millis', 'micros', 'nanos'] as const)
      for (const v of values.filter(Number.isSafeInteger))
        expect(toIsoDateTime(v, unit), `${v} ${unit}`).toBe(toIsoDateTime(BigInt(v), unit));
  });

  it('should know the Connect, Debezium and Avro names of temporal types', () => {
    expect(
      [
        'io.debezium.time.Date',
        'timestamp-micros',
        'io.debezium.time.NanoTimestamp',
        'org.apache.kafka.connect.data.Timestamp',
        'io.debezium.time.ZonedTimestamp',
      ].map(unitOfType),
    ).toEqual(['days', 'micros', 'nanos', 'millis', undefined]);
  });
});
