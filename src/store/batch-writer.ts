/**
 * The writer thread's entry (see writer-thread.ts): one handle on the store's environment, commits
 * grouped by commit-queue.ts, one reply per commit naming the requests it carried, replies in commit order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isMatviewError, messageOf, StoreStoppingError } from '../errors.js';
import { commitPlan } from '../materializer/commit.js';
import { createRegistry } from '../views/registry.js';
import { USER_INFORMATION, type UserInformation } from '../views/user-information.js';
import { CommitQueues } from './commit-queue.js';
import { metaOf, openEnvironment } from './environment.js';
import { outboxOf } from './outbox.js';
import { packViews, transferablesOf } from './packed-views.js';
import { viewOutboxOf } from './published.js';
import { commitOrBuffer, ShadowChunks } from './shadow-chunks.js';
import { buildShadowViews } from './view-rebuild.js';
import {
  commitInTransaction,
  GenerationHandles,
  mergeMaybePacked,
  plainStoreInput,
  type CommitContext,
  type PackedStoreInput,
  type StoreInput,
  type WrittenCommit,
} from './write.js';
import type { WriterData, WriterReply, WriterRequest } from './writer-thread.js';
import { lowerThreadPriority } from './thread-priority.js';
import { KnownRows } from './row-key-filter.js';

const port = parentPort;
if (port === null) throw new Error('batch-writer.ts runs as a worker thread (src/store/writer-thread.ts)');
const {
  path,
  mapSize,
  maxRecordsPerCommit,
  rebuildChunkRecords,
  rebuildChunkTiming,
  viewBufferEntries,
  viewWriteSlice,
  niceIncrement,
} = workerData as WriterData;
// Before anything else, so that the commits run at it from the first one.
port.postMessage({
  kind: 'priority',
  priority: lowerThreadPriority(niceIncrement ?? 0),
} satisfies WriterReply);
const env = openEnvironment(path, mapSize);
const meta = metaOf(env);
const outboxes = { deadLetters: outboxOf(env), views: viewOutboxOf(env) };
// The worker always serves the built-in registry (custom views run with the writer thread off).
const registry = createRegistry();
const plan = commitPlan(registry);
const generations = new GenerationHandles(env, meta, registry);
const context: CommitContext = {
  env,
  meta,
  outboxes,
  handles: generations,
  plan,
  knownRows: new KnownRows(),
};
const reportChunkWriteError = (e: unknown): void =>
  reply({ kind: 'chunk-write-failed', message: messageOf(e) });
const chunks = new ShadowChunks({
  ...context,
  maxRecords: rebuildChunkRecords,
  ...(viewBufferEntries === undefined ? {} : { viewBufferEntries }),
  ...(viewWriteSlice === undefined ? {} : { viewWriteSlice }),
  ...rebuildChunkTiming,
  onWriteError: reportChunkWriteError,
});

/** How long `close` waits for lmdb-js to close the handle before the thread exits without it. */
const CLOSE_GRACE_MS = 1_000;

// Live and shadow commits queue apart (commit-queue.ts `CommitQueues`). Inputs wait packed, as they came, and
// are unpacked by the commit that takes them: unpacked on arrival, a catch-up's rows waited for the commit in
// flight as objects, and each young-generation collection of this thread meanwhile copied them. The inputs a
// commit merges are merged packed and unpacked once (write.ts `mergeMaybePacked`).
const queue = new CommitQueues<
  { readonly ids: number[]; readonly result: WrittenCommit },
  StoreInput | PackedStoreInput
>(
  async (packedOrNot, target, ids) => {
    const input = plainStoreInput(packedOrNot);
    const result = await commitOrBuffer(
      chunks,
      input,
      target,
      ids.length,
      (t) => queue.waitingFor(t),
      () => commitInTransaction(context, input, target, ids.length),
    );
    return { ids, result };
  },
  maxRecordsPerCommit,
  mergeMaybePacked,
);

const reply = (message: WriterReply): void => port.postMessage(message);

/** Longest a shadow's build waits between its pages for the live commits in flight. */
const LIVE_TURN_MS = 200;

/** A shadow's views being built here are to stop at their next page (`abort-shadow-build`: a stop). */
let abortBuild = false;

port.on('message', (request: WriterRequest) => {
  if (request.kind === 'close') {
    port.removeAllListeners('message');
    // A rebuild's chunk waiting is written first (a failure leaves the shadow at its last written chunk,
    // where the next start resumes it). lmdb-js' close waits for its last commit promise, which never
    // settles after a failed commit (disk full): give it a moment, then end the thread anyway. Every batch
    // was committed or reported failed by then, and the handle is released with the thread.
    void chunks
      .write()
      .catch(reportChunkWriteError)
      .then(() => {
        const grace = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_GRACE_MS));
        return Promise.race([env.close(), grace]);
      })
      .finally(() => process.exit(0));
    return;
  }
  if (request.kind === 'refuse') {
    queue.refuseWaiting(() => new StoreStoppingError());
    return;
  }
  if (request.kind === 'write-chunk') {
    const { id } = request;
    chunks.write().then(
      () => reply({ kind: 'chunk-written', id }),
      (e: unknown) => reply({ kind: 'chunk-written', id, failed: messageOf(e) }),
    );
    return;
  }
  if (request.kind === 'abort-shadow-build') {
    abortBuild = true;
    return;
  }
  if (request.kind === 'build-shadow-views') {
    const { id, topics } = request;
    abortBuild = false;
    buildShadowViews(chunks, {
      env,
      meta,
      registry,
      generation: () => generations.get(request.generation),
      stopped: () => abortBuild,
      // A live commit that arrived during a page goes through all of its steps (each an event-loop turn)
      // before the next page, within a bound: a feed that commits without pause does not starve the build.
      betweenPages: () =>
        Promise.race([queue.liveIdle(), new Promise<void>((resolve) => setTimeout(resolve, LIVE_TURN_MS))]),
      topicOf: (table) => {
        const topic = topics[table];
        if (topic === undefined) throw new Error(`no topic is read for table "${table}"`);
        return topic;
      },
      ...(viewBufferEntries === undefined ? {} : { bufferEntries: viewBufferEntries }),
    }).then(
      (result) =>
        reply({
          kind: 'views-built',
          id,
          ...(result === undefined
            ? {}
            : { built: { rows: result.rows, rebuilt: result.rebuilt, replaced: [...result.replaced] } }),
        }),
      (e: unknown) =>
        reply({
          kind: 'views-built',
          id,
          failed: messageOf(e),
          ...(isMatviewError(e) ? { code: e.code } : {}),
        }),
    );
    return;
  }
  const { id, target } = request;
  queue.submit({ input: request.input, target, id }).then(
    ({ ids, result }) => {
      // Every request of a commit settles with the same result: the first one replies for all of them.
      if (ids[0] !== id) return;
      // A commit readers do not see yet (a rebuild's shadow) publishes no event: none is sent.
      if (!result.visible) {
        reply({ ids, ok: true, result: { ...result, events: new Map() } });
        return;
      }
      // The changed user views travel packed and transferred (packed-views.ts); the other views' events
      // (a ranking's moves, the totals) are small and cloned as they are.
      const users = result.events.get(USER_INFORMATION) as
        ReadonlyMap<string, UserInformation | null> | undefined;
      if (users === undefined) {
        reply({ ids, ok: true, result });
        return;
      }
      // An empty map holds the view's place (events keep the registry's order).
      const events = new Map(result.events).set(USER_INFORMATION, new Map());
      const packed = packViews(users);
      const message: WriterReply = { ids, ok: true, result: { ...result, events }, users: packed };
      port.postMessage(message, transferablesOf(packed));
    },
    (e: unknown) => {
      if (isMatviewError(e)) {
        const refused = e instanceof StoreStoppingError ? { refused: true as const } : {};
        reply({ ids: [id], ok: false, message: e.message, code: e.code, retriable: e.retriable, ...refused });
        return;
      }
      reply({ ids: [id], ok: false, message: String(e), code: undefined, retriable: false });
    },
  );
});
