/**
 * The writer thread's entry (see writer-thread.ts): one handle on the store's environment, one write
 * transaction per batch, replies in commit order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isMatviewError } from '../errors.js';
import { Generation } from './generation.js';
import {
  batchFailure,
  committedActiveGeneration,
  metaOf,
  openEnvironment,
  outboxOf,
  readGenerationInfo,
  writeBatch,
  type WrittenBatch,
} from './lmdb-store.js';
import type { WriterData, WriterReply, WriterRequest } from './writer-thread.js';

const port = parentPort;
if (port === null) throw new Error('batch-writer.ts runs as a worker thread (src/store/writer-thread.ts)');
const { path, mapSize } = workerData as WriterData;
const env = openEnvironment(path, mapSize);
const meta = metaOf(env);
const outbox = outboxOf(env);
/** Handles by generation id (ids are never reused, so a handle never points at another generation). */
const generations = new Map<number, Generation>();
const generation = (id: number): Generation => {
  let g = generations.get(id);
  if (g === undefined) generations.set(id, (g = new Generation(env, readGenerationInfo(meta, id))));
  return g;
};

/** How long `close` waits for lmdb-js to close the handle before the thread exits without it. */
const CLOSE_GRACE_MS = 1_000;

const reply = (message: WriterReply): void => port.postMessage(message);

port.on('message', (request: WriterRequest) => {
  if (request.kind === 'close') {
    port.removeAllListeners('message');
    // lmdb-js' close waits for its last commit promise, which never settles after a failed commit (disk
    // full): give it a moment, then end the thread anyway. Every batch was committed or reported failed by
    // then, and the handle is released with the thread.
    const grace = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_GRACE_MS));
    void Promise.race([env.close(), grace]).finally(() => process.exit(0));
    return;
  }
  const { id, input, target, appliedAt } = request;
  let result: WrittenBatch | undefined;
  // As on the caller's thread: concurrent batches share lmdb-js' write transaction, one child each, and
  // their promises resolve in commit order, which is the order of the replies.
  env
    .childTransaction(() => {
      const active = committedActiveGeneration(meta);
      const into = target === 'active' ? active : target;
      result = writeBatch(meta, outbox, generation(into), input, appliedAt, into === active);
    })
    .then(
      () => {
        if (result === undefined)
          reply({
            id,
            ok: false,
            message: 'LMDB transaction did not run',
            code: undefined,
            retriable: false,
          });
        else reply({ id, ok: true, result });
      },
      async (e: unknown) => {
        if (isMatviewError(e)) {
          reply({ id, ok: false, message: e.message, code: e.code, retriable: e.retriable });
          return;
        }
        reply({ id, ok: false, message: await batchFailure(e), code: undefined, retriable: false });
      },
    );
});
