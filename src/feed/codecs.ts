/**
 * Compression codecs for kafkajs. kafkajs only ships GZIP; the contract (CONTRACT.md §1) says
 * whatever the producer used — gzip, snappy, lz4, zstd — must be read, so the other three are
 * registered here into kafkajs' global `CompressionCodecs` table.
 *
 * Every codec is verified against what librdkafka writes (`kcat -z <codec>`) in
 * test/feed/kafka-source.test.ts, and against round trips in test/feed/codecs.test.ts.
 */
import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';
import { decompressFrame, compressFrame } from 'lz4-napi';
import { decompress as zstdDecompress } from 'fzstd';
import { MatviewError } from '../errors.js';

// kafkajs is CommonJS and Node's cjs-module-lexer does not see `CompressionCodecs` as a named
// export (its index.js builds the exports object with a spread), so go through the default export.
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

let registered = false;

/**
 * Registers Snappy, LZ4 and ZSTD with kafkajs. Idempotent and safe to call from every Kafka
 * client factory: the table is process-global, so the first call wins and later calls are no-ops.
 */
export function registerCodecs(): void {
  if (registered) return;
  // kafkajs looks codecs up lazily by calling the factory on each (de)compression.
  CompressionCodecs[CompressionTypes.Snappy] = () => snappyCodec;
  CompressionCodecs[CompressionTypes.LZ4] = () => lz4Codec;
  CompressionCodecs[CompressionTypes.ZSTD] = () => zstdCodec;
  registered = true;
}
