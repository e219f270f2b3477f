/**
 * Kafka's default partitioner for keyed records: `toPositive(murmur2(keyBytes)) % numPartitions`.
 *
 * A port of the Java client's `Utils.murmur2` / `Utils.toPositive` (also kafkajs's `DefaultPartitioner`),
 * using 32-bit integer arithmetic (`Math.imul`) instead of kafkajs's `Long` emulation. The embedded
 * changelog uses it so a key lands on the same partition it would in a real cluster with the same
 * partition count, which keeps per-key ordering and partition-level tests meaningful in both modes.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/**
 * Murmur2 hash of the bytes, as a signed 32-bit integer, bit-for-bit equal to Kafka's Java `Utils.murmur2`.
 * Strings are hashed as their UTF-8 bytes (what a producer sends as the key).
 */
export function murmur2(key: Buffer | string): number {
  const data = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const length4 = length >>> 2;

  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    // Non-null assertions are safe: i4 + 3 < length4 * 4 <= length.
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }

  // The Java switch falls through from case 3 to case 1; written as ifs (noFallthroughCasesInSwitch).
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, M);
  }

  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * Kafka's `Utils.toPositive`: clears the sign bit. Not `Math.abs`, which would map keys to other partitions
 * than Kafka does (and overflows for -2^31).
 */
export function toPositive(n: number): number {
  return n & 0x7fffffff;
}

/**
 * The partition Kafka's default partitioner assigns to a keyed record, so the embedded log and a real
 * cluster with the same partition count agree on where each key lives.
 */
export function partitionForKey(key: Buffer | string, numPartitions: number): number {
  if (!Number.isInteger(numPartitions) || numPartitions < 1) {
    throw new RangeError(`numPartitions must be a positive integer, got ${numPartitions}`);
  }
  return toPositive(murmur2(key)) % numPartitions;
}
