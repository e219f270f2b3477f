/**
 * Produce with kcat (librdkafka): the "foreign producer" in our tests. It writes the record
 * batches, compression framings (xerial snappy, LZ4 frame, multi-frame zstd) and partitioning
 * that Java/librdkafka producers use in production, which kafkajs-produced test data would not.
 */
import { spawn } from 'node:child_process';

export interface KcatRecord {
  readonly key: string;
  /** null: a tombstone (kcat `-Z` turns the empty value into NULL). */
  readonly value: string | null;
  /**
   * kcat's `-H` applies to every record of one invocation, so records are grouped by headers. null: the
   * header without a value (`-H name`, which librdkafka sends as a NULL value).
   */
  readonly headers?: Readonly<Record<string, string | null>>;
}

export interface KcatProduceOptions {
  readonly compression?: 'gzip' | 'snappy' | 'lz4' | 'zstd';
  /** Explicit partition; default: librdkafka's partitioner (consistent_random, CRC32 of the key). */
  readonly partition?: number;
}

// ASCII record/unit separators: never valid inside our JSON test payloads.
const MESSAGE_DELIMITER = '\x1e';
const KEY_DELIMITER = '\x1f';
const ESCAPED_MESSAGE_DELIMITER = '\\x1e';
const ESCAPED_KEY_DELIMITER = '\\x1f';

const sameHeaders = (a: KcatRecord['headers'], b: KcatRecord['headers']): boolean =>
  JSON.stringify(Object.entries(a ?? {})) === JSON.stringify(Object.entries(b ?? {}));

/**
 * Produces `records` in order with `kcat -P`. Consecutive records with the same headers go
 * through one kcat run (so compression covers multi-record batches); each new header set starts a
 * new run. Empty keys and empty-string values cannot be expressed (`-Z` makes them NULL) and are
 * rejected.
 */
export async function kcatProduce(
  brokers: readonly string[],
  topic: string,
  records: readonly KcatRecord[],
  options: KcatProduceOptions = {},
): Promise<void> {
  for (const r of records) {
    const text = r.key + (r.value ?? '');
    if (text.includes(MESSAGE_DELIMITER) || text.includes(KEY_DELIMITER)) {
      throw new Error('kcatProduce: keys and values must not contain \\x1e or \\x1f');
    }
    if (r.key === '' || r.value === '')
      throw new Error('kcatProduce: empty key/value would be sent as NULL (-Z)');
  }
  let start = 0;
  while (start < records.length) {
    let end = start + 1;
    while (end < records.length && sameHeaders(records[end]?.headers, records[start]?.headers)) end++;
    await runKcat(brokers, topic, records.slice(start, end), options);
    start = end;
  }
}

function runKcat(
  brokers: readonly string[],
  topic: string,
  records: readonly KcatRecord[],
  options: KcatProduceOptions,
): Promise<void> {
  const args = ['-q', '-b', brokers.join(','), '-P', '-t', topic, '-K', ESCAPED_KEY_DELIMITER];
  args.push('-D', ESCAPED_MESSAGE_DELIMITER, '-Z');
  if (options.compression !== undefined) args.push('-z', options.compression);
  if (options.partition !== undefined) args.push('-p', String(options.partition));
  for (const [name, value] of Object.entries(records[0]?.headers ?? {}))
    args.push('-H', value === null ? name : `${name}=${value}`);
  // Make sure the records are really batched together (and so compressed together).
  args.push('-X', 'linger.ms=50');
  const input = records.map((r) => `${r.key}${KEY_DELIMITER}${r.value ?? ''}`).join(MESSAGE_DELIMITER);

  return new Promise((resolve, reject) => {
    const child = spawn('kcat', args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0 && !/%[0-4]\|/.test(stderr)) resolve();
      else reject(new Error(`kcat ${args.join(' ')} exited with ${String(code)}:\n${stderr}`));
    });
    child.stdin.end(input);
  });
}
