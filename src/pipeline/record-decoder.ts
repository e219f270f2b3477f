/**
 * The decode thread's body (decode-thread.ts starts it; bundled as `dist/record-decoder.mjs`): takes a batch's
 * records (record-wire.ts) and decodes them whole with decode-records.ts into packed chunks, which go back
 * transferred, not copied.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decoderOf } from '../formats/index.js';
import type { FormatDecoder } from '../formats/types.js';
import { lowerThreadPriority } from '../store/thread-priority.js';
import { packedChangesTransferables, PackingChangeBatch } from '../store/packed-changes.js';
import { Chunks } from './batch-steps.js';
import { decodeRecords } from './decode-records.js';
import type { DecodeReply, DecodeRequest, DecodedChunkData, DecodeThreadData } from './decode-thread.js';
import { fromWire } from './record-wire.js';

const port = parentPort;
if (port === null) throw new Error('record-decoder.ts runs as a worker thread (decode-thread.ts starts it)');
const data = workerData as DecodeThreadData;
port.postMessage({
  kind: 'priority',
  priority: lowerThreadPriority(data.niceIncrement),
} satisfies DecodeReply);

/** One decoder per spec: a decoder's caches (a Debezium converter's schemas) serve every batch of its topic. */
const decoders = new Map<string, FormatDecoder>();

/** The reply to `request`, and the buffers it transfers. */
async function decode(request: DecodeRequest): Promise<{ reply: DecodeReply; transfer: ArrayBuffer[] }> {
  const specText = JSON.stringify(request.spec);
  let decoder = decoders.get(specText);
  if (decoder === undefined) decoders.set(specText, (decoder = decoderOf(request.spec)));
  const records = fromWire(request.records);
  const chunks = new Chunks(() => new PackingChangeBatch(request.crossing), request.size);
  const out = await decodeRecords(records, request.table, decoder, chunks);
  const { full, current } = out.chunks.parts();
  const transfer: ArrayBuffer[] = [out.eventTimes.buffer as ArrayBuffer];
  const chunk = (batch: PackingChangeBatch, lastOffset?: string): DecodedChunkData => {
    const packedBytes = batch.packedBytes;
    const input = batch.input([]);
    if ('packed' in input) {
      transfer.push(...packedChangesTransferables(input.packed));
      return { packed: input.packed, length: batch.length, packedBytes, lastOffset };
    }
    return { plain: input.changes, length: batch.length, packedBytes, lastOffset };
  };
  const reply: DecodeReply = {
    kind: 'decoded',
    id: request.id,
    full: full.map((c) => chunk(c.batch, c.lastOffset)),
    current: chunk(current),
    invalid: out.invalid,
    truncates: out.truncates,
    eventTimes: out.eventTimes,
    valid: out.valid,
    newestEventMs: out.newestEventMs,
  };
  return { reply, transfer };
}

port.on('message', (request: DecodeRequest) => {
  decode(request).then(
    ({ reply, transfer }) => port.postMessage(reply, transfer),
    (error: unknown) =>
      port.postMessage({
        kind: 'failed',
        id: request.id,
        message: error instanceof Error ? (error.stack ?? error.message) : String(error),
      } satisfies DecodeReply),
  );
});
