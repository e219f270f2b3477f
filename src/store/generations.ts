/**
 * The generations' lifecycle: a shadow generation rebuilt from the feed while the active one serves, the
 * swap that makes it active in one transaction, and the clean-up of what a crash left behind.
 *
 * Readers switch generations between two transactions: before the swap they read the complete old
 * generation, after it the complete new one. Subscribers get one commit event naming every key whose value
 * differs (generation-diff.ts). The old generation is kept (`retiring`) until a background pass has given the
 * new one's values their final versions (versions.ts), then dropped.
 */
import type { Database, RootDatabase } from 'lmdb';
import { StoreWriteError, commitFailure } from '../errors.js';
import type { PartitionPosition } from '../feed/types.js';
import { offsetBefore } from '../materializer/change-batch.js';
import type { Registry } from '../views/registry.js';
import type { UserInformation } from '../views/user-information.js';
import { swapEvents } from './generation-diff.js';
import { reconcileSwap } from './versions.js';
import {
  Generation,
  dropGenerationDbs,
  generationOfDb,
  newGenerationInfo,
  withViewsPending,
  viewBuildOfDb,
  type GenerationInfo,
  type ViewBuild,
} from './generation.js';
import type { CommitEvent } from './types.js';
import { writeTransaction } from './environment.js';
import { genKey, readGenerationInfo, USER_VIEWS_REMOVED_KEY, type GenerationHandles } from './write.js';
import { atomicTransaction } from '../lmdb-transaction.js';

export interface SwapResult {
  readonly swapped: boolean;
  /** Partitions where the shadow is still behind the required offsets (empty when swapped). */
  readonly behind: readonly { topic: string; partition: number; next: string; required: string }[];
  /** Sequence of the swap commit (when swapped). */
  readonly sequence?: bigint;
  readonly from?: GenerationInfo;
  readonly to?: GenerationInfo;
}

export interface GenerationsOptions {
  readonly env: RootDatabase;
  readonly meta: Database<string, string>;
  readonly registry: Registry;
  readonly active: Generation;
  readonly shadow: Generation | undefined;
  /** The generation the last swap replaced, when its reconciliation has not finished. */
  readonly retiring: Generation | undefined;
  readonly handles: GenerationHandles;
  readonly publish: (event: CommitEvent) => void;
  /** Reads a view as readers see it (a swap's version rule: versions.ts). */
  readonly decode: (bytes: Buffer, userId: string) => UserInformation;
  /** Values per transaction of a swap's reconciliation (versions.ts' default when omitted). */
  readonly reconcileChunk?: number;
  /** A reconciliation that failed (it is tried again at the next start). */
  readonly onReconcileError: (error: unknown) => void;
}

export class Generations {
  active: Generation;
  shadow: Generation | undefined;
  /** The generation the last swap replaced, until that swap is reconciled (versions.ts). */
  retiring: Generation | undefined;
  /** The reconciliation under way, if any. */
  private reconciling: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly o: GenerationsOptions) {
    this.active = o.active;
    this.shadow = o.shadow;
    this.retiring = o.retiring;
  }

  static newInfo = newGenerationInfo;

  private commit<T>(what: string, action: () => T): Promise<T> {
    return writeTransaction(this.o.env, what, action);
  }

  /**
   * Starts (or resumes) a shadow generation built with the code's views. An existing shadow built with the
   * same views is resumed where it stands (not for an offset reset); another one is dropped first.
   * `inTransaction` runs in the same transaction (clearing the pending rebuild request, so a request is
   * served by exactly one rebuild). `rowsFirst`: a new shadow starts with its views marked behind its rows
   * (`viewsPending`), so that its feed stores rows only until its views are built from them (shadow-chunks.ts).
   * `resume`: the rebuild that began the shadow goes on (after its views were built from its rows), so it is
   * resumed whatever the reason. `drain`: the shadow is marked `drain` (GenerationInfo), a resumed one too.
   */
  async beginShadow(
    reason: string,
    inTransaction: () => void,
    options: { readonly rowsFirst?: boolean; readonly resume?: boolean; readonly drain?: boolean } = {},
  ): Promise<{ generation: Generation; resumed: boolean }> {
    const { meta, registry } = this.o;
    // One generation retires at a time: a rebuild right after a swap waits for its reconciliation.
    await this.reconciled();
    const existing = this.shadow;
    const fresh = newGenerationInfo(0, registry, 'building', reason);
    const sameViews =
      existing !== undefined &&
      JSON.stringify(versionsOf(existing.info)) === JSON.stringify(versionsOf(fresh)) &&
      JSON.stringify(existing.info.rowFields) === JSON.stringify(fresh.rowFields);
    if (
      existing !== undefined &&
      sameViews &&
      (reason !== 'offset-out-of-range' || options.resume === true)
    ) {
      await this.commit('clear the rebuild request', () => {
        inTransaction();
        if (options.drain === true) this.markDrainIn(existing.id);
      });
      return { generation: existing, resumed: true };
    }
    if (existing !== undefined) await this.abandonShadow();
    let info: GenerationInfo | undefined;
    await this.commit('begin a shadow generation', () => {
      const id = Number(meta.get('nextGeneration') ?? '1');
      const begun = withViewsPending(
        newGenerationInfo(id, registry, 'building', reason),
        options.rowsFirst === true,
      );
      info = options.drain === true ? { ...begun, drain: true } : begun;
      meta.put('nextGeneration', String(id + 1));
      meta.put(genKey(id), JSON.stringify(info));
      meta.put('shadowGeneration', String(id));
      inTransaction();
    });
    if (info === undefined) throw new StoreWriteError('LMDB transaction did not run');
    const generation = this.o.handles.get(info.id);
    this.shadow = generation;
    return { generation, resumed: false };
  }

  /**
   * Marks the shadow `drain` (GenerationInfo), for a `matview rebuild --drain` that the rebuild under way
   * serves. False when there is no shadow.
   */
  async drainShadow(): Promise<boolean> {
    const shadow = this.shadow;
    if (shadow === undefined) return false;
    await this.commit('mark the shadow generation drained', () => this.markDrainIn(shadow.id));
    return true;
  }

  /** Inside a write transaction: sets `drain` in generation `id`'s stored info (read there: chunks rewrite it). */
  private markDrainIn(id: number): void {
    const stored = readGenerationInfo(this.o.meta, id);
    if (stored !== undefined && stored.drain !== true)
      this.o.meta.put(genKey(id), JSON.stringify({ ...stored, drain: true }));
  }

  /** Drops the shadow generation (a rebuild that is no longer wanted). */
  async abandonShadow(): Promise<void> {
    const shadow = this.shadow;
    if (shadow === undefined) return;
    this.shadow = undefined;
    await this.commit('abandon the shadow generation', () => {
      this.o.meta.remove('shadowGeneration');
      this.o.meta.remove(genKey(shadow.id));
    });
    await shadow.drop();
  }

  /**
   * Makes `shadow` the active generation, in one write transaction, if for every partition in `required`
   * its stored position has reached `next` (typically the live end offsets) and its stored views are not
   * behind its rows (`viewsPending`: the caller writes a rebuild's views first, LmdbStore.trySwap).
   */
  async trySwap(shadow: Generation, required: readonly PartitionPosition[]): Promise<SwapResult> {
    if (this.shadow !== shadow) return { swapped: false, behind: [] };
    const { meta } = this.o;
    const before = this.active;
    const shadowInfo = shadow.info;
    let outcome: SwapResult | undefined;
    await atomicTransaction(this.o.env, () => {
      const behind: SwapResult['behind'][number][] = [];
      for (const r of required) {
        if (r.next === '0') continue;
        const at = shadow.position(r.topic, r.partition) ?? '0';
        if (offsetBefore(at, r.next))
          behind.push({ topic: r.topic, partition: r.partition, next: at, required: r.next });
      }
      if (behind.length > 0) {
        outcome = { swapped: false, behind };
        return;
      }
      // As stored: a rebuild's chunks (maybe on the writer thread) set and clear `viewsPending` there. A chunk
      // written after the caller wrote the views (LmdbStore.trySwap) may have set it again: not yet, then.
      const stored = readGenerationInfo(meta, shadow.id) ?? shadow.info;
      if (stored.viewsPending === true) {
        outcome = { swapped: false, behind: [] };
        return;
      }
      const sequence = BigInt(meta.get('sequence') ?? '0') + 1n;
      // Swapped in, it is served: `drain` no longer applies.
      const { drain: _drain, ...served } = stored;
      const to: GenerationInfo = {
        ...served,
        state: 'active',
        activatedSequence: sequence.toString(),
        activatedAt: new Date().toISOString(),
      };
      meta.put(genKey(shadow.id), JSON.stringify(to));
      meta.put('activeGeneration', String(shadow.id));
      meta.remove('shadowGeneration');
      // Kept until reconciled: reads compare with it, and a restart resumes the pass.
      meta.put(genKey(before.id), JSON.stringify({ ...before.info, state: 'retiring' }));
      meta.put('retiringGeneration', String(before.id));
      meta.put('sequence', sequence.toString());
      // The new generation may lack views the old one had.
      meta.put(USER_VIEWS_REMOVED_KEY, sequence.toString());
      // Switch readers here, not after the commit resolves: readers between this line and the commit
      // read the last committed snapshot, in which the shadow is already complete.
      this.active = shadow;
      this.shadow = undefined;
      this.retiring = before;
      shadow.info = to;
      outcome = { swapped: true, behind: [], sequence, from: before.info, to };
    }).catch(async (e: unknown) => {
      if (this.active === shadow) {
        this.active = before;
        this.shadow = shadow;
        this.retiring = undefined;
        shadow.info = shadowInfo;
      }
      throw new StoreWriteError(
        `LMDB write failed, the generation swap did not happen: ${await commitFailure(e)}`,
        { cause: e },
      );
    });
    if (outcome === undefined) throw new StoreWriteError('LMDB transaction did not run');
    if (!outcome.swapped || outcome.sequence === undefined) return outcome;
    this.o.publish({
      sequence: outcome.sequence,
      views: swapEvents(this.o.registry, before, this.active, this.o.decode),
    });
    // In the background: the live feed, held for the swap, goes on meanwhile.
    this.startReconcile();
    return outcome;
  }

  /** Resolves once the last swap is reconciled (starting the pass if a restart left it unfinished). */
  async reconciled(): Promise<void> {
    this.startReconcile();
    await this.reconciling;
  }

  /** Stops a reconciliation after its current transaction (the next start finishes it). */
  async close(): Promise<void> {
    this.closed = true;
    await this.reconciling;
  }

  private startReconcile(): void {
    if (this.reconciling !== undefined || this.retiring === undefined || this.closed) return;
    this.reconciling = this.reconcile()
      .catch((e: unknown) => this.o.onReconcileError(e))
      .finally(() => {
        this.reconciling = undefined;
      });
  }

  /** The swap's pass (versions.ts), then the active generation marked reconciled and the retiring one dropped. */
  private async reconcile(): Promise<void> {
    const active = this.active;
    const retiring = this.retiring;
    if (retiring === undefined) return;
    const done = await reconcileSwap(this.o.registry, active, retiring, {
      commit: (what, action) => this.commit(what, action),
      ...(this.o.reconcileChunk === undefined ? {} : { chunk: this.o.reconcileChunk }),
      stopped: () => this.closed,
    });
    if (!done) return;
    await this.commit('finish the reconciliation of a swap', () => {
      const info: GenerationInfo = { ...active.info, reconciled: true };
      this.o.meta.put(genKey(active.id), JSON.stringify(info));
      this.o.meta.remove('retiringGeneration');
      this.o.meta.remove(genKey(retiring.id));
      active.info = info;
      this.retiring = undefined;
    });
    await retiring.drop();
  }

  /**
   * What subscribers see after views of `generation` were rebuilt from its rows: per rebuilt view, the keys
   * that differ between the builds in `before` and the ones it serves now. UserInformation's part reads both
   * builds when asked (generation-diff.ts), so the old ones must outlive the listeners that read it: a
   * listener reads only the users it watches, where a copy of the diff compared every user of the store
   * (5.5 s of a version bump's 57 s at 1M users, profiled).
   */
  buildEvents(
    generation: Generation,
    before: ReadonlyMap<string, ViewBuild>,
    rebuilt: readonly string[],
  ): Map<string, ReadonlyMap<string, unknown>> {
    const old = new Generation(
      this.o.env,
      { ...generation.info, views: Object.fromEntries(before) },
      this.o.registry,
    );
    const events = swapEvents(this.o.registry, old, generation, this.o.decode);
    for (const name of [...events.keys()]) if (!rebuilt.includes(name)) events.delete(name);
    return events;
  }

  /** Drops the builds `before` held for `views` (after a view rebuild switched away from them). */
  async dropBuilds(
    generation: Generation,
    before: ReadonlyMap<string, ViewBuild>,
    views: readonly string[],
  ): Promise<void> {
    for (const name of views) {
      const build = before.get(name);
      if (build === undefined) continue;
      const prefix = `g${generation.id}/${name}#${build.build}/`;
      await this.dropNames((n) => n.startsWith(prefix));
    }
  }

  /**
   * Drops databases of generations that are neither active, shadow nor retiring (left by a crash between a
   * swap's reconciliation and the drop of the old generation), and view builds their generation does not serve (a crash during a
   * view rebuild). Only the serving process calls it. Returns the orphaned generations.
   */
  async collectGarbage(): Promise<number[]> {
    // A swap reconciled only in part (the process stopped during the pass): finished in the background.
    this.startReconcile();
    const keep = [this.active, this.shadow, this.retiring].filter((g): g is Generation => g !== undefined);
    const orphans = new Set<number>();
    for (const name of this.o.env.getKeys()) {
      if (typeof name !== 'string') continue;
      const id = generationOfDb(name);
      if (id !== undefined && !keep.some((g) => g.id === id)) orphans.add(id);
    }
    for (const id of orphans) {
      await dropGenerationDbs(this.o.env, id);
      await this.commit('forget an orphaned generation', () => void this.o.meta.remove(genKey(id)));
    }
    await this.dropNames((name) => {
      const b = viewBuildOfDb(name);
      if (b === undefined) return false;
      const g = keep.find((k) => k.id === b.generation);
      return g !== undefined && g.info.views[b.view]?.build !== b.build;
    });
    return [...orphans];
  }

  private async dropNames(match: (name: string) => boolean): Promise<void> {
    const names: string[] = [];
    for (const name of this.o.env.getKeys()) if (typeof name === 'string' && match(name)) names.push(name);
    await Promise.all(names.map((name) => this.o.env.openDB({ name }).drop()));
  }
}

const versionsOf = (info: GenerationInfo): Record<string, number> =>
  Object.fromEntries(Object.entries(info.views).map(([k, v]) => [k, v.version]));
