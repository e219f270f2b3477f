/**
 * Codec unit tests with fixtures written by the reference CLIs (zstd 1.5, lz4 1.9.4) and the
 * Java/xerial snappy framing. End-to-end decoding of what librdkafka writes (`kcat -z`) is in
 * kafka-source.test.ts.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import {
  CompressionUnsupportedError,
  gzipCodec,
  inflatedSizeHint,
  lz4Codec,
  registerCodecs,
  snappyCodec,
  zstdCodec,
} from '../../src/feed/codecs.js';
import { isMatviewError } from '../../src/errors.js';

const { CompressionCodecs, CompressionTypes } = kafkajs;

const JSON_ROW = `{"userId":"u1","text":"${'ab'.repeat(40)}"}`;

describe('registerCodecs', () => {
  it('should make kafkajs resolve all four codecs, and be idempotent', () => {
    const table = () => [
      CompressionCodecs[CompressionTypes.GZIP],
      CompressionCodecs[CompressionTypes.Snappy],
      CompressionCodecs[CompressionTypes.LZ4],
      CompressionCodecs[CompressionTypes.ZSTD],
    ];
    registerCodecs();
    const first = table();
    registerCodecs();
    const second = table();
    expect(second).toEqual(first);
    expect(second.map((factory) => factory() as unknown)).toEqual([
      gzipCodec,
      snappyCodec,
      lz4Codec,
      zstdCodec,
    ]);
  });
});

describe('gzip (one output buffer per batch)', () => {
  const unzip = promisify(zlib.unzip);
  const random = prng(11);
  /** Text that compresses like records do, `n` bytes. */
  const text = (n: number): Buffer => {
    const words = ['"userId":', '"u42"', ',"text":"', 'hello', ' world', '},{', '1700000000000'];
    const parts: string[] = [];
    let length = 0;
    while (length < n) {
      const w =
        random() < 0.2
          ? String.fromCharCode(33 + Math.floor(random() * 90))
          : words[Math.floor(random() * words.length)]!;
      parts.push(w);
      length += w.length;
    }
    return Buffer.from(parts.join('').slice(0, n));
  };

  it('should decompress what zlib compressed: one member, several, zlib format, any size', async () => {
    for (const n of [0, 1, 100, 16 * 1024, 16 * 1024 + 1, 300_000, 2_000_000]) {
      const raw = text(n);
      const member = zlib.gzipSync(raw);
      expect(inflatedSizeHint(member), `${n}`).toBe(Math.max(zlib.constants.Z_MIN_CHUNK, n + 1));
      expect((await gzipCodec.decompress(member)).equals(raw), `${n}`).toBe(true);
      const two = Buffer.concat([member, zlib.gzipSync(raw.subarray(0, n >> 1))]);
      expect((await gzipCodec.decompress(two)).equals(Buffer.concat([raw, raw.subarray(0, n >> 1)]))).toBe(
        true,
      );
      const deflated = zlib.deflateSync(raw);
      expect(inflatedSizeHint(deflated)).toBe(zlib.constants.Z_DEFAULT_CHUNK);
      expect((await gzipCodec.decompress(deflated)).equals(raw)).toBe(true);
    }
  });

  it("should refuse a damaged batch as kafkajs' gzip does", async () => {
    const member = zlib.gzipSync(text(50_000));
    const wrongSize = Buffer.from(member);
    wrongSize.writeUInt32LE(7, wrongSize.length - 4);
    const hugeSize = Buffer.from(member);
    hugeSize.writeUInt32LE(0xffffffff, hugeSize.length - 4);
    expect(inflatedSizeHint(hugeSize)).toBe(64 * 1024 * 1024);
    const flipped = Buffer.from(member);
    flipped[member.length >> 1]! ^= 0xff;
    for (const damaged of [wrongSize, hugeSize, flipped, member.subarray(0, member.length - 9)]) {
      const expected = await unzip(damaged).then(
        () => 'decompressed',
        (e: Error) => e.message,
      );
      expect(expected).not.toBe('decompressed');
      await expect(gzipCodec.decompress(damaged)).rejects.toThrow(expected);
    }
  });

  it('should compress what zlib decompresses', async () => {
    const raw = text(10_000);
    expect(zlib.gunzipSync(await gzipCodec.compress({ buffer: raw })).equals(raw)).toBe(true);
  });
});

describe('zstd', () => {
  it('should decode a multi-frame stream written by the zstd CLI (with and without checksum)', async () => {
    // (printf "$JSON_ROW" | zstd -c -19 --no-check; printf 'second frame' | zstd -c --check) | base64
    const fixture = Buffer.from(
      'KLUv/QBoFQEA2HsidXNlcklkIjoidTEiLCJ0ZXh0IjoiYWIifQEAbagbAyi1L/0EWGEAAHNlY29uZCBmcmFtZRdkB7Y=',
      'base64',
    );
    const out = await zstdCodec.decompress(fixture);
    expect(Buffer.isBuffer(out)).toBe(true);
    expect(out.toString()).toBe(`${JSON_ROW}second frame`);
  });

  it('should refuse to compress with a MatviewError naming the codec', async () => {
    const error = await zstdCodec.compress({ buffer: Buffer.from('x') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CompressionUnsupportedError);
    expect(isMatviewError(error) && error.code).toBe('MV_ERR_COMPRESSION_UNSUPPORTED');
    expect((error as Error).message).toMatch(/zstd/);
  });
});

describe('lz4 (frame format)', () => {
  it('should decode a frame written by the lz4 CLI', async () => {
    // printf 'hello lz4 hello lz4 hello lz4 hello lz4' | lz4 -c | base64
    const fixture = Buffer.from('BCJNGGRApxQAAACvaGVsbG8gbHo0IAoABVBvIGx6NAAAAABOrGBm', 'base64');
    expect((await lz4Codec.decompress(fixture)).toString()).toBe('hello lz4 hello lz4 hello lz4 hello lz4');
  });

  it('should round-trip through compress', async () => {
    const input = Buffer.from(JSON_ROW.repeat(100));
    const compressed = await lz4Codec.compress({ buffer: input });
    expect(compressed.length).toBeLessThan(input.length);
    expect(compressed.subarray(0, 4).toString('hex')).toBe('04224d18'); // LZ4 frame magic
    expect(await lz4Codec.decompress(compressed)).toEqual(input);
  });
});

describe('snappy', () => {
  it('should decode raw snappy and round-trip', async () => {
    const input = Buffer.from(JSON_ROW.repeat(20));
    const compressed = await snappyCodec.compress({ buffer: input });
    expect(Buffer.from(await snappyCodec.decompress(compressed))).toEqual(input);
  });

  it('should decode the xerial framing Java producers write', async () => {
    // xerial: magic "\x82SNAPPY\0", version 1, compatible version 1, then [int32 length, chunk]*
    // (kafkajs-snappy's compress writes raw snappy blocks: exactly what goes inside a xerial chunk)
    const chunks = await Promise.all(
      [JSON_ROW, '-tail'].map(async (c) =>
        Buffer.from(await snappyCodec.compress({ buffer: Buffer.from(c) })),
      ),
    );
    const header = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
    const framed = Buffer.concat([
      header,
      ...chunks.flatMap((c) => {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(c.length);
        return [len, c];
      }),
    ]);
    expect(Buffer.from(await snappyCodec.decompress(framed)).toString()).toBe(`${JSON_ROW}-tail`);
  });
});
