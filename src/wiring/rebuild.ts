/**
 * Online rebuilds: fills a shadow generation from the feed with its own consumer while the active
 * generation keeps serving (and keeps being fed by the live consumer), then swaps it in atomically.
 *
 * 1. `start(reason)`: the store begins (or resumes) a shadow generation; a second source reads every
 *    topic from the shadow's stored positions (earliest for a new shadow) through a `rebuild` ingest
 *    handler.
 * 2. A rebuild from the changelogs of a large view replays rows first (`rowsOnly`; when, `rowsFirstPays`): its
 *    commits store the shadow's rows and positions, not its views. Once the shadow reached the end offsets
 *    seen when the rebuild started, its consumer stops, its views are built from its rows
 *    (LmdbStore.buildShadowViews: each user's view and rank keys once, not once per commit that touched it),
 *    and the rebuild starts again from the stored positions with views applied commit by commit (a crash
 *    anywhere in between resumes the same way). A small view's rebuild applies views commit by commit from
 *    the start.
 * 3. Once the shadow reached the end offsets seen when the rebuild (re)started, a handoff begins: the live
 *    feed is held (HandoffGate) after its batch in flight, the current end offsets are fetched, and the
 *    store swaps generations in one transaction as soon as the shadow reached them. The hold is bounded
 *    (`handoffTimeoutMs`); a handoff that runs out releases the live feed and is tried again.
 * 4. After the swap the shadow's consumer stops; the live consumer carries on in the new generation (its
 *    positions are at or behind the shadow's, so what it reads again is skipped as already applied).
 * The rebuild's own consumer failing for good is fatal for the process: a restart resumes the shadow
 * from its stored positions.
 */
import type { FeedHandler, FeedSource, PartitionPosition } from '../feed/types.js';
import type { FormatDecoder } from '../formats/types.js';
import type { DecodeThread } from '../pipeline/decode-thread.js';
import { createIngestHandler, type DeadLetterRouting } from '../pipeline/ingest.js';
import { DEFAULT_MAX_RECORDS_PER_COMMIT } from '../store/commit-queue.js';
import type { Generation } from '../store/generation.js';
import type { LmdbStore, SwapResult } from '../store/lmdb-store.js';
import type { Table } from '../views/source.js';
import type { HandoffGate } from './handoff-gate.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { offsetResetError } from './offset-ranges.js';

/** A source opened for one rebuild, and how to release it afterwards. */
export interface RebuildSource {
  readonly source: FeedSource;
  /** Releases what `openSource` opened beyond the source itself (called after `source.stop()`). */
  close(): Promise<void>;
}

export interface RebuildControllerOptions {
  readonly store: LmdbStore;
  readonly topics: readonly string[];
  /** Topic name → table. */
  readonly tables: ReadonlyMap<string, Table>;
  /** Topic name → format decoder (the live feed's: they share the schema cache). Default: `json`. */
  readonly decoders?: ReadonlyMap<string, FormatDecoder>;
  /** Where the replay's large batches decode (src/pipeline/decode-thread.ts); without it, on the event loop. */
  readonly decodeThread?: DecodeThread;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Opens a fresh source for a shadow (its own consumer group, or its own handle on the embedded log). */
  readonly openSource: (generation: Generation) => Promise<RebuildSource>;
  /** Current end offsets (high watermarks) of the topics. */
  readonly endOffsets: () => Promise<PartitionPosition[]>;
  /** Wraps the live handler; held during the handoff. */
  readonly gate: HandoffGate;
  /** Longest the live feed is held during one handoff attempt (default 2000 ms). */
  readonly handoffTimeoutMs?: number;
  /** Records in one LMDB write transaction of the shadow at most (see IngestOptions.maxRecordsPerCommit). */
  readonly maxRecordsPerCommit?: number;
  /**
   * Whether a new shadow fed from the changelogs replays its rows first (REBUILD_ROWS_FIRST); `auto` (the
   * default) when `rowsFirstPays` for the live view's size. A replica's shadow never does.
   */
  readonly rowsFirst?: boolean | 'auto';
  /**
   * How often an idle shadow is checked for having caught up (default 50 ms): a check reads the shadow's
   * stored positions, and its rows stored by a chunk written once the feed went quiet are seen by the next
   * check, not by a batch.
   */
  readonly checkIntervalMs?: number;
  /** Awaited before each handoff (tests hold a complete-but-not-swapped shadow with it). */
  readonly beforeSwap?: (generation: Generation) => Promise<void>;
  /** Called after a swap committed. */
  readonly onSwapped?: (result: SwapResult, reason: string) => void;
  /**
   * Called when the shadow being built is marked `drain` (`matview rebuild --drain`, asked for now or when it
   * began: GenerationInfo.drain), each time a run of it begins: the server reports not ready until the swap.
   */
  readonly onDrain?: () => void;
  /**
   * Awaited after a swap while the live feed is still held and the rebuild's own consumer has stopped:
   * nothing commits meanwhile (the view topic's capture).
   */
  readonly afterSwap?: () => Promise<void>;
  /**
   * The shadow's ingest handler, when the feed is not made of changelogs (a replica's view topic,
   * src/wiring/view-topic.ts). Default: the changelog ingest over `tables` and `decoders`.
   */
  readonly handlerFor?: (generation: Generation, onApplied: () => void, logger: Logger) => FeedHandler;
  /** The rebuild's consumer failed for good. */
  readonly onFatal: (error: Error) => void;
  /**
   * Where a cold start's bulk load sends the records it cannot decode (the live feed's routing): no live feed
   * reads what it applies. Other rebuilds never write the DLQ (the live feed already kept those records).
   */
  readonly deadLetters?: DeadLetterRouting;
}

/**
 * A rebuild that is the store's first load (`start`'s `bulkLoad`, a cold start: src/wiring/cold-start.ts):
 * nothing was applied before it and no live feed runs until it swaps in.
 */
export interface BulkLoad {
  /**
   * About how many entries its view will hold (the records of the users topic): REBUILD_ROWS_FIRST=auto
   * weighs these, as the live view it would weigh has none.
   */
  readonly expectedViewEntries: number;
  /** Records the topics hold (logged with the start). */
  readonly records: number;
}

export type RebuildState = 'idle' | 'building' | 'handoff';

/** Replaying rows first pays when the view holds an entry for every this many records of a commit (`rowsFirstPays`). */
export const ROWS_FIRST_RECORDS_PER_ENTRY = 8;

/**
 * Whether a rebuild replays its rows first (`REBUILD_ROWS_FIRST=auto`), from the entries of the live
 * generation's largest view (LmdbStore.largestView: about what the shadow's will hold) and the
 * records a commit takes at most: rows first when there is an entry for every ROWS_FIRST_RECORDS_PER_ENTRY
 * records of a commit or more. Views applied commit by commit build each key a commit touches once per commit
 * (at most every entry, per commit); rows first builds each once, but reads every row back to do it, after
 * the rows' replay. On a large view the first costs many times the second (10M records over 1M users: 681.6
 * s against 244.5 s, e27375f); on a small one the second costs more, and the first runs on the writer
 * thread while the event loop decodes the next batches. `matview rebuild --wait` on a served store, the
 * catch-up workload (20 records per user), commits of 250k: 446k records over 22.3k users 3.3-4.2 s with
 * views commit by commit against 4.1-5.2 s rows first (6 alternated pairs); 900k records over 45k users
 * (gzip) 9.0 s against 7.8 s; 1.5M over 75k (gzip) 16.5 s against 13.6 s: the turn lies between 1 entry per
 * 11 records of a commit and 1 per 5.5. At 1 per 8 (640k records over 32k users, gzip) both took 5.5-6.0 s.
 */
export function rowsFirstPays(entries: number, maxRecordsPerCommit: number): boolean {
  return entries * ROWS_FIRST_RECORDS_PER_ENTRY >= maxRecordsPerCommit;
}

/** Tries to go on after a shadow's views were built (1 s, 2 s, 4 s apart) before the failure is fatal. */
const BEGIN_ATTEMPTS_AFTER_BUILD = 4;

interface Running {
  readonly generation: Generation;
  readonly reason: string;
  readonly startedAt: number;
  readonly targets: readonly PartitionPosition[];
  readonly opened: RebuildSource;
  readonly timer: NodeJS.Timeout;
  readonly appliedBefore: number;
  /** Its commits store rows only: its views are built from them once it reached `targets`. */
  readonly rowsOnly: boolean;
  /** The rebuild's source stopping (once). */
  sourceStopped?: Promise<void>;
}

export class RebuildController {
  private current: Running | undefined;
  private starting: Promise<void> | undefined;
  private handoff: Promise<void> | undefined;
  private progressWaiters: (() => void)[] = [];
  private stopped = false;
  /** Set while the rebuild under way is a cold start's bulk load. */
  private bulkLoad: BulkLoad | undefined;
  private readonly handoffTimeoutMs: number;
  private readonly checkIntervalMs: number;
  private readonly log: Logger;

  constructor(private readonly options: RebuildControllerOptions) {
    this.handoffTimeoutMs = options.handoffTimeoutMs ?? 2000;
    this.checkIntervalMs = options.checkIntervalMs ?? 50;
    this.log = options.logger.child({ component: 'rebuild' });
  }

  state(): RebuildState {
    if (this.current === undefined && this.starting === undefined) return 'idle';
    return this.handoff === undefined ? 'building' : 'handoff';
  }

  /** The generation being built, if any. */
  generation(): Generation | undefined {
    return this.current?.generation;
  }

  /**
   * Starts a rebuild (or resumes the store's shadow of the same version). Resolves once the shadow's
   * consumer runs; a rebuild already under way is kept (the call is a no-op). `bulkLoad`: it is the store's
   * first load (its dead letters are routed, its replay weighs the entries expected). `drain`: asked for
   * with `matview rebuild --drain` (its shadow is marked so; `onDrain`).
   */
  start(reason: string, bulkLoad?: BulkLoad, drain = false): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.current !== undefined || this.starting !== undefined) {
      this.log.info({ reason, generation: this.current?.generation.id }, 'rebuild already in progress');
      return this.starting ?? Promise.resolve();
    }
    this.bulkLoad = bulkLoad;
    return this.startAs(this.begin(reason, undefined, drain));
  }

  /**
   * `work` is the rebuild's start (`state()` is not idle until it settles). A check made while it runs may
   * start the next step (a shadow whose rows already reached their targets builds its views): that one then
   * stands for the start, and `work` settling does not clear it.
   */
  private startAs(work: Promise<void>): Promise<void> {
    const starting: Promise<void> = work.finally(() => {
      if (this.starting === starting) this.starting = undefined;
    });
    this.starting = starting;
    return starting;
  }

  /**
   * `after`: the run that began the shadow goes on after its views were built from its rows (when it
   * started, and the rebuild's records applied before it: its totals count from there). `drain`: mark the
   * shadow so (`start`); a run that goes on reads the mark its shadow already carries.
   */
  private async begin(
    reason: string,
    after?: { readonly startedAt: number; readonly appliedBefore: number },
    drain = false,
  ): Promise<void> {
    const { store, metrics } = this.options;
    const replay = this.replayChoice();
    const begun = await store.beginShadow(reason, this.topicOf, {
      rowsFirst: replay.rowsFirst,
      resume: after !== undefined,
      drain,
    });
    const { generation, resumed, rowsOnly, viewsRebuiltFrom } = begun;
    if (begun.drain) this.options.onDrain?.();
    const targets = await this.options.endOffsets();
    const opened = await this.options.openSource(generation);
    // Where this run's batches took each partition: stored, or still in the shadow's chunk
    // (src/store/shadow-chunks.ts).
    const applied = new Map<string, string>();
    const handler =
      this.options.handlerFor?.(generation, () => this.poke(), this.log) ??
      createIngestHandler({
        store,
        tables: this.options.tables,
        ...(this.options.decoders === undefined ? {} : { decoders: this.options.decoders }),
        ...(this.options.decodeThread === undefined ? {} : { decodeThread: this.options.decodeThread }),
        metrics,
        logger: this.log,
        role: 'rebuild',
        generation,
        // No dead-letter routing but a bulk load's: a rebuild never writes the DLQ, the live feed already
        // kept those records; a bulk load's records are read by no live feed.
        ...(this.bulkLoad === undefined || this.options.deadLetters === undefined
          ? {}
          : { deadLetters: this.options.deadLetters }),
        ...(this.options.maxRecordsPerCommit === undefined
          ? {}
          : { maxRecordsPerCommit: this.options.maxRecordsPerCommit }),
        onApplied: (batch, _result, _newest, tail) => {
          const next = batch.nextOffset ?? tail.next;
          if (next !== undefined) applied.set(partitionKey(batch.topic, batch.partition), next);
          this.poke();
        },
      });
    const timer = setInterval(() => this.poke(), this.checkIntervalMs);
    timer.unref();
    this.current = {
      generation,
      reason,
      startedAt: after?.startedAt ?? Date.now(),
      targets,
      opened,
      timer,
      appliedBefore:
        after?.appliedBefore ?? (await metrics.rebuildRecordsApplied.get()).values[0]?.value ?? 0,
      rowsOnly,
    };
    metrics.rebuildInProgress.set(1);
    this.log.info(
      {
        generation: generation.id,
        views: generation.info.views,
        activeGeneration: store.activeGeneration().id,
        reason,
        resumed,
        rowsOnly,
        // Not ready until the swap (`matview rebuild --drain`).
        ...(begun.drain ? { drain: true } : {}),
        // What REBUILD_ROWS_FIRST=auto weighed (a new shadow replays rows first when `rowsFirst`).
        ...(replay.viewEntries === undefined ? {} : { viewEntries: replay.viewEntries }),
        rowsFirst: replay.rowsFirst,
        // A cold start's load of the whole history (src/wiring/cold-start.ts).
        ...(this.bulkLoad === undefined ? {} : { bulkLoad: this.bulkLoad }),
        // After its views were built from its rows: the same rebuild goes on, applying views.
        ...(after === undefined ? {} : { phase: 'views' }),
        // Rows its views were rebuilt from: the process that filled it ended between its chunks.
        ...(viewsRebuiltFrom === undefined ? {} : { viewsRebuiltFrom }),
        targetRecords: targets.reduce((n, t) => n + BigInt(t.next), 0n).toString(),
        // Where a resumed shadow stands: the same sum over its stored positions (its last written chunk).
        storedRecords: targets
          .reduce((n, t) => n + BigInt(store.position(t.topic, t.partition, generation) ?? '0'), 0n)
          .toString(),
      },
      'rebuild started',
    );
    try {
      await opened.source.start({
        topics: this.options.topics,
        resumeFrom: (topic, partition) => store.position(topic, partition, generation),
        handler,
        onFatal: (err) => this.fail(err),
        onOffsetOutOfRange: (topic, partition) => {
          // A shadow that lost records cannot be swapped in. Stopping is explicit: the restart finds the
          // shadow's positions out of range and starts it over from the earliest offsets. Records of this
          // run not stored yet (in a chunk) count: continuing from the earliest offset would leave a hole.
          const at =
            store.position(topic, partition, generation) ?? applied.get(partitionKey(topic, partition));
          if (at !== undefined) this.fail(offsetResetError(topic, partition, at));
        },
      });
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
    // A shadow that stands at its targets already (its views just built from rows that reached them, or one
    // resumed there) goes on at once, not at the next check: no batch comes to say so. After this start has
    // settled, so that a step it begins is the one `state()` sees.
    setImmediate(() => this.poke());
  }

  /**
   * Whether a new shadow replays its rows first (`rowsFirstPays`), and the live view's entries it weighed
   * (REBUILD_ROWS_FIRST=auto).
   */
  private replayChoice(): { rowsFirst: boolean; viewEntries?: number } {
    // A replica's shadow is fed view values, not rows.
    if (this.options.handlerFor !== undefined) return { rowsFirst: false };
    const setting = this.options.rowsFirst ?? 'auto';
    if (setting !== 'auto') return { rowsFirst: setting };
    const perCommit = this.options.maxRecordsPerCommit ?? DEFAULT_MAX_RECORDS_PER_COMMIT;
    const viewEntries =
      this.bulkLoad?.expectedViewEntries ??
      this.options.store.largestView(Math.ceil(perCommit / ROWS_FIRST_RECORDS_PER_ENTRY));
    return { rowsFirst: rowsFirstPays(viewEntries, perCommit), viewEntries };
  }

  /** After each shadow batch and on a timer: wake a waiting handoff, or start one once caught up. */
  private poke(): void {
    for (const w of this.progressWaiters.splice(0)) w();
    const run = this.current;
    if (run === undefined || this.handoff !== undefined || this.stopped) return;
    if (!this.reached(run.generation, run.targets)) return;
    if (run.rowsOnly) {
      this.current = undefined;
      clearInterval(run.timer);
      void this.startAs(this.buildViews(run));
      return;
    }
    this.handoff = this.attemptSwap(run).finally(() => {
      this.handoff = undefined;
    });
  }

  /**
   * A shadow that replayed its rows up to its targets: its consumer stops (nothing may commit into it while its
   * views are built from its rows), its views are built, and the rebuild starts again where the shadow stands,
   * now applying views commit by commit.
   */
  private async buildViews(run: Running): Promise<void> {
    const { store, metrics } = this.options;
    try {
      await this.release(run);
      if (this.stopped) return;
      const started = Date.now();
      this.log.info(
        { generation: run.generation.id, reason: run.reason },
        'rebuild replayed its rows; building its views from them',
      );
      const rows = await store.buildShadowViews(run.generation, this.topicOf);
      this.log.info(
        { generation: run.generation.id, rows: rows ?? 0, durationMs: Date.now() - started },
        'rebuild built its views from its rows',
      );
      // Its end offsets or its source may fail for a moment (a broker away): tried again before giving up.
      for (let attempt = 1; !this.stopped; attempt++) {
        try {
          await this.begin(run.reason, { startedAt: run.startedAt, appliedBefore: run.appliedBefore });
          break;
        } catch (err) {
          if (attempt >= BEGIN_ATTEMPTS_AFTER_BUILD) throw err;
          this.log.warn({ err, attempt }, 'rebuild could not go on after building its views; trying again');
          await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** (attempt - 1)));
        }
      }
    } catch (err) {
      if (this.stopped)
        this.log.info(
          { generation: run.generation.id },
          'rebuild stopped while building its views from its rows; the next start builds them again',
        );
      else {
        this.log.error({ err, generation: run.generation.id }, 'rebuild failed');
        this.options.onFatal(err instanceof Error ? err : new Error(String(err)));
      }
    } finally {
      if (this.current === undefined) metrics.rebuildInProgress.set(0);
    }
  }

  /** The topic of each table, which the versions of views built from the rows carry. */
  private readonly topicOf = (table: Table): string => {
    for (const [topic, t] of this.options.tables) if (t === table) return topic;
    throw new Error(`no topic is read for table "${table}"`);
  };

  private reached(generation: Generation, targets: readonly PartitionPosition[]): boolean {
    return targets.every((t) => {
      if (t.next === '0') return true;
      const at = this.options.store.position(t.topic, t.partition, generation);
      return at !== undefined && BigInt(at) >= BigInt(t.next);
    });
  }

  private async attemptSwap(run: Running): Promise<void> {
    try {
      await this.options.beforeSwap?.(run.generation);
      if (this.current !== run || this.stopped) return;
      const release = await this.options.gate.hold();
      let result: SwapResult | undefined;
      try {
        const required = await this.options.endOffsets();
        const deadline = Date.now() + this.handoffTimeoutMs;
        for (;;) {
          result = await this.options.store.trySwap(run.generation, required);
          if (result.swapped || Date.now() >= deadline || this.current !== run) break;
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 50);
            this.progressWaiters.push(() => {
              clearTimeout(t);
              resolve();
            });
          });
        }
        if (result.swapped) {
          this.swapped(run, result);
          if (this.options.afterSwap !== undefined) {
            // Nothing may commit until it is done: the live feed is held, and the shadow's consumer (which
            // would now write the active generation) stops first.
            await this.stopSource(run);
            // The swap stands whatever happens here: a failure is the hook owner's to retry.
            await this.options
              .afterSwap()
              .catch((err: unknown) =>
                this.log.error({ err }, 'the step after the swap failed (its owner retries it)'),
              );
          }
        }
      } finally {
        release();
      }
      if (result?.swapped === true) await this.finish(run);
      else
        this.log.debug(
          { behind: result?.behind.length },
          'handoff timed out; the shadow is still behind, trying again',
        );
    } catch (err) {
      this.log.error({ err, generation: run.generation.id }, 'rebuild handoff failed; trying again');
    }
  }

  /** Right after the swap committed: the rebuild is over, readers see the new generation. */
  private swapped(run: Running, result: SwapResult): void {
    const { metrics } = this.options;
    this.current = undefined;
    this.bulkLoad = undefined;
    clearInterval(run.timer);
    metrics.rebuildInProgress.set(0);
    metrics.swaps.inc({ reason: run.reason });
    this.log.info(
      {
        from: result.from?.id,
        to: result.to?.id,
        views: result.to?.views,
        sequence: result.sequence?.toString(),
      },
      'view swapped',
    );
    this.options.onSwapped?.(result, run.reason);
  }

  /** After the live feed's hold: the rebuild's consumer released. */
  private async finish(run: Running): Promise<void> {
    const { metrics } = this.options;
    await this.release(run);
    const applied = ((await metrics.rebuildRecordsApplied.get()).values[0]?.value ?? 0) - run.appliedBefore;
    this.log.info(
      {
        generation: run.generation.id,
        reason: run.reason,
        recordsApplied: applied,
        durationMs: Date.now() - run.startedAt,
      },
      'rebuild finished',
    );
  }

  private async release(run: Running): Promise<void> {
    await this.stopSource(run);
    await run.opened.close();
  }

  private stopSource(run: Running): Promise<void> {
    run.sourceStopped ??= run.opened.source.stop();
    return run.sourceStopped;
  }

  private fail(error: Error): void {
    const run = this.current;
    if (run === undefined || this.stopped) return;
    this.current = undefined;
    this.bulkLoad = undefined;
    clearInterval(run.timer);
    this.options.metrics.rebuildInProgress.set(0);
    this.log.error({ err: error, generation: run.generation.id }, 'rebuild failed');
    void this.release(run).catch(() => undefined);
    this.options.onFatal(error);
  }

  /** Stops the rebuild's consumer (shutdown). The shadow stays in the store and is resumed on the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    // A build of the shadow's views in progress stops at its next page (the next start builds them again);
    // without one this changes nothing (a build clears it as it begins).
    this.options.store.abortShadowBuild();
    await this.starting?.catch(() => undefined);
    for (const w of this.progressWaiters.splice(0)) w();
    await this.handoff;
    const run = this.current;
    this.current = undefined;
    if (run === undefined) return;
    clearInterval(run.timer);
    this.options.metrics.rebuildInProgress.set(0);
    await this.release(run);
  }
}

const partitionKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;
