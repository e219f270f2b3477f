/**
 * A decoder lets a record's bytes go once it has read them. A fetched record's key and value are views of its
 * Fetch response (src/feed/record-batch.ts), so a byte-level scanner that kept the last one read would keep
 * the whole response, tens of MB while catching up, until the next record of its topic, and for good on a
 * topic that goes quiet. Measured with the collector itself, in a process of its own (fixtures/retention.ts).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/retention.ts', import.meta.url));

describe('a record read by its decoder', () => {
  it('is not held once packed or decoded, whichever path reads it', () => {
    const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fixture], {
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      'json, packed from its bytes': false,
      'json, decoded (an escaped id)': false,
      'debezium-json, packed from its bytes': false,
      'debezium-json, a truncate (the reduced scan)': false,
      'debezium-json, without a key (the reduced scan)': false,
      'debezium-json, a wrapper (its schema remembered)': false,
    });
  });
});
