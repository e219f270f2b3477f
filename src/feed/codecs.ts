/**
 * Compression codecs for kafkajs. kafkajs only ships GZIP; the contract (CONTRACT.md §1) says
 * whatever the producer used — gzip, snappy, lz4, zstd — must be read, so the other three are
 * registered here into kafkajs' global `CompressionCodecs` table, with a GZIP that decompresses a batch in
 * one piece (`gzipCodec`).
 *
 * Every codec is verified against what librdkafka writes (`kcat -z <codec>`) in
 * test/feed/kafka-source.test.ts, and against round trips in test/feed/codecs.test.ts.
 */
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { kafkajs } from './kafkajs-module.js';
import { decompressFrame, compressFrame } from 'lz4-napi';
import { decompress as zstdDecompress } from 'fzstd';
import { MatviewError } from '../errors.js';

const { CompressionCodecs, CompressionTypes } = kafkajs;

/** The shape kafkajs expects from a codec (kafkajs `src/protocol/message/compression/gzip.js`). */
export interface KafkaCodec {
  /** `encoder.buffer` holds the uncompressed record set. */
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

/**
 * Producing ZSTD was requested, but no pure-JS/N-API zstd compressor is installed (fzstd only
 * decompresses; `zlib.zstdCompress` needs Node >= 22.15). Reading zstd works.
 */
export class CompressionUnsupportedError extends MatviewError {
  constructor(readonly codec: string) {
    super(
      'MV_ERR_COMPRESSION_UNSUPPORTED',
      `Producing ${codec}-compressed records is not supported by matview (it can only read them); ` +
        'use gzip or no compression when writing',
    );
  }
}

/** Wraps a Uint8Array view as a Buffer without copying: kafkajs' Decoder needs Buffer methods. */
const asBuffer = (u8: Uint8Array): Buffer => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);

// kafkajs-snappy ships no type declarations; its module.exports is a codec factory. It reads both
// raw snappy and the xerial framing (`\x82SNAPPY\0`) that librdkafka/Java producers write.
const require = createRequire(import.meta.url);
/** Snappy via kafkajs-snappy (snappyjs, pure JS). */
export const snappyCodec: KafkaCodec = (require('kafkajs-snappy') as () => KafkaCodec)();

/**
 * Kafka's LZ4 (magic v1+, KIP-57) is the standard LZ4 *frame* format, so lz4-napi's frame API
 * is the right pair — not its block `compress`/`uncompress`.
 */
export const lz4Codec: KafkaCodec = {
  async compress(encoder) {
    return compressFrame(encoder.buffer);
  },
  async decompress(buffer) {
    return decompressFrame(buffer);
  },
};

/**
 * ZSTD: decode-only with fzstd (pure JS; handles multi-frame input like librdkafka output).
 * Compressing throws so a misconfigured producer fails loudly instead of writing garbage.
 */
export const zstdCodec: KafkaCodec = {
  async compress() {
    throw new CompressionUnsupportedError('zstd');
  },
  async decompress(buffer) {
    return asBuffer(zstdDecompress(buffer));
  },
};

const gzip = promisify(zlib.gzip);
const unzip = promisify(zlib.unzip);

/** gzip's member header starts with these two bytes (RFC 1952). */
const GZIP_ID = [0x1f, 0x8b] as const;
/** Output buffers no larger than this, whatever a trailer says (a damaged one can say 4 GB). */
const LARGEST_CHUNK = 64 * 1024 * 1024;

/**
 * The output buffer size for inflating `buffer` in one piece: the uncompressed size a gzip member's trailer
 * states (ISIZE, its last 4 bytes), plus one byte so that the inflater ends the stream in the same pass.
 * Kafka producers write a record batch as a single member; for anything else (several members, zlib's
 * format, a damaged trailer) it is only a size hint: the output is the same, in more pieces.
 */
export function inflatedSizeHint(buffer: Buffer): number {
  if (buffer.length < 18 || buffer[0] !== GZIP_ID[0] || buffer[1] !== GZIP_ID[1])
    return zlib.constants.Z_DEFAULT_CHUNK;
  const size = buffer.readUInt32LE(buffer.length - 4) + 1;
  return Math.min(LARGEST_CHUNK, Math.max(zlib.constants.Z_MIN_CHUNK, size));
}

/**
 * kafkajs' GZIP (`zlib.unzip`), with the output buffer sized from the batch's trailer. With zlib's default
 * 16 KiB pieces, a 1.9 MB batch went to the thread pool and back ~120 times, each return handled on the event
 * loop, and the pieces were then copied into one buffer: 4.5 ms of CPU (2.2 on the event loop) against 0.8
 * (0.1) in one piece.
 */
export const gzipCodec: KafkaCodec = {
  async compress(encoder) {
    return gzip(encoder.buffer);
  },
  async decompress(buffer) {
    return unzip(buffer, { chunkSize: inflatedSizeHint(buffer) });
  },
};

let registered = false;

/**
 * Registers GZIP, Snappy, LZ4 and ZSTD with kafkajs. Idempotent and safe to call from every Kafka
 * client factory: the table is process-global, so the first call wins and later calls are no-ops.
 */
export function registerCodecs(): void {
  if (registered) return;
  // kafkajs looks codecs up lazily by calling the factory on each (de)compression.
  CompressionCodecs[CompressionTypes.GZIP] = () => gzipCodec;
  CompressionCodecs[CompressionTypes.Snappy] = () => snappyCodec;
  CompressionCodecs[CompressionTypes.LZ4] = () => lz4Codec;
  CompressionCodecs[CompressionTypes.ZSTD] = () => zstdCodec;
  registered = true;
}
