/**
 * Versioned values across a generation swap and a view rebuild ("no empty pushes"): a value recomputed equal
 * to the one it replaces, apart from its version, takes over the old version. Its `version.sequence` does not
 * move and the swap's or rebuild's commit event leaves it out, so subscribers get nothing for it. Which
 * spaces hold versioned values, and how two of their values compare, each view says (`ViewModule.versioned`).
 *
 * A swap: the shadow's values carry the versions of the commits that built it, not the ones readers saw. The
 * swap keeps the generation it replaced (`retiring`), and a background pass (`reconcileSwap`) gives every
 * value written before the swap its final version: the retiring generation's when the values are equal, else
 * the swap commit's (the swap is what changed it for readers, and a `version.sequence` never steps back).
 * Until the pass has finished, readers make the same choice on the fly (`readAcrossSwap`). Values written
 * after the swap come from live commits and are left alone. The pass is idempotent: interrupted, it starts
 * over at the next start.
 *
 * A view rebuild from the rows runs while nothing else commits: it writes its new build through
 * `keepingUnchangedVersions`, which gives each rebuilt value equal to the old build's the old version.
 *
 * Only the version moves across: the value itself is always the new one, encoded by the current code (a view
 * whose version was bumped may store its values differently).
 */
import type { Database } from 'lmdb';
import type { Registry } from '../views/registry.js';
import type { KvSpace, ValueCodec, ViewModule } from '../views/types.js';
import type { ViewVersion } from '../views/user-information.js';
import { encodedPut, type Generation } from './generation.js';
import { readFast } from './fast-read.js';

interface Versioned {
  readonly version: ViewVersion;
}

/** Values per write transaction of the passes below: a few ms of this thread between event-loop turns. */
export const RECONCILE_CHUNK = 500;

/** `version` as the swap committed at `floor` made it visible (at `activatedAt`). */
export function swapVersion(
  version: ViewVersion,
  floor: bigint,
  activatedAt: string | undefined,
): ViewVersion {
  return { ...version, sequence: floor.toString(), appliedAt: activatedAt ?? version.appliedAt };
}

function codecOf(view: ViewModule, space: string): ValueCodec<Versioned> {
  const spec = view.spaces[space];
  if (spec?.kind !== 'kv')
    throw new Error(`view "${view.name}": versioned space "${space}" is not a KV space`);
  return spec.codec as ValueCodec<Versioned>;
}

/** The database of `view`'s `space` that `generation` serves, or undefined when it holds no such view. */
function servedDb(generation: Generation, view: string, space: string): Database<Buffer, string> | undefined {
  return generation.info.views[view] === undefined ? undefined : generation.db(view, space);
}

/**
 * A versioned value of the active generation as readers see it: `value` is `bytes` decoded. `bytes` may be
 * lmdb-js' reused read buffer (`getBinaryFast`): it is copied before any other read.
 */
export function readAcrossSwap<V extends Versioned>(
  active: Generation,
  retiring: Generation | undefined,
  view: ViewModule,
  space: string,
  key: string,
  bytes: Buffer,
  value: V,
): V {
  const floor = active.floor;
  if (floor === undefined || BigInt(value.version.sequence) >= floor) return value;
  const same = view.versioned?.[space];
  if (retiring !== undefined && same !== undefined) {
    // A copy through a plain view: lmdb-js' fast read buffer refuses to be copied directly.
    const mine = Buffer.from(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    const old = servedDb(retiring, view.name, space)?.getBinary(key);
    if (old !== undefined && same(old, mine))
      return { ...value, version: codecOf(view, space).decode(old).version };
  }
  return { ...value, version: swapVersion(value.version, floor, active.info.activatedAt) };
}

/** Up to `limit` entries of `db` after `after` (exclusive), copied: the caller writes between pages. */
function page(db: Database<Buffer, string>, after: string | undefined, limit: number): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (const { key, value } of db.getRange({
    ...(after === undefined ? {} : { start: after }),
    limit: limit + 1,
  })) {
    if (key === after) continue;
    out.push([key, Buffer.from(value)]);
    if (out.length >= limit) break;
  }
  return out;
}

export interface PassOptions {
  /** Runs `action` in one write transaction. */
  readonly commit: (what: string, action: () => void) => Promise<void>;
  /** Values per transaction (default {@link RECONCILE_CHUNK}). */
  readonly chunk?: number;
  /** Checked between transactions: true stops the pass (it is resumed later). */
  readonly stopped?: () => boolean;
}

/**
 * Rewrites the values of `target` (one space, `codec`) with `decide`'s version, page by page, one write
 * transaction each. `decide` returns undefined to leave a value as it is. False when stopped.
 */
async function rewriteVersions(
  target: Database<Buffer, string>,
  codec: ValueCodec<Versioned>,
  decide: (key: string, bytes: Buffer, value: Versioned) => ViewVersion | undefined,
  what: string,
  o: PassOptions,
): Promise<boolean> {
  const chunk = Math.max(1, o.chunk ?? RECONCILE_CHUNK);
  let after: string | undefined;
  for (;;) {
    if (o.stopped?.() === true) return false;
    let last: string | undefined;
    await o.commit(what, () => {
      // Read in the transaction that writes: a live commit in between is seen, not overwritten.
      const entries = page(target, after, chunk);
      for (const [key, bytes] of entries) {
        const value = codec.decode(bytes);
        const version = decide(key, bytes, value);
        if (version !== undefined) void target.put(key, codec.encode({ ...value, version }));
      }
      last = entries.at(-1)?.[0];
    });
    if (last === undefined) return true;
    after = last;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * The swap's pass (see the module comment) over every versioned space of `active`. Resolves true once every
 * value written before the swap has its final version, false when stopped first.
 */
export async function reconcileSwap(
  registry: Registry,
  active: Generation,
  retiring: Generation,
  o: PassOptions,
): Promise<boolean> {
  const floor = active.floor;
  if (floor === undefined) return true;
  for (const view of registry.views) {
    for (const [space, same] of Object.entries(view.versioned ?? {})) {
      const target = servedDb(active, view.name, space);
      if (target === undefined) continue;
      const old = servedDb(retiring, view.name, space);
      const codec = codecOf(view, space);
      const done = await rewriteVersions(
        target,
        codec,
        (key, bytes, value) => {
          if (BigInt(value.version.sequence) >= floor) return undefined; // a live commit's, after the swap
          const before = old?.getBinary(key);
          return before !== undefined && same(before, bytes)
            ? codec.decode(before).version
            : swapVersion(value.version, floor, active.info.activatedAt);
        },
        'reconcile versions after a swap',
        o,
      );
      if (!done) return false;
    }
  }
  return true;
}

/**
 * A versioned space of a view rebuild's new build (`rebuilt`) that gives each value it stores equal to the old
 * build's (`old`) the old value's version, as it is written: the rebuild writes every value it stores through
 * it, so no second pass over the new build is needed.
 */
export function keepingUnchangedVersions(
  view: ViewModule,
  space: string,
  old: Database<Buffer, string>,
  rebuilt: KvSpace<unknown>,
): KvSpace<unknown> {
  const same = view.versioned?.[space];
  if (same === undefined) return rebuilt;
  const codec = codecOf(view, space);
  // With both, each value is one buffer, kept or not, and nothing is decoded (the codec's own comparison, the
  // same as `same`, on the bytes stored).
  const putBytes = encodedPut(rebuilt);
  const encodeOver = codec.encodeOver;
  return {
    get: (key) => rebuilt.get(key),
    put(key, value) {
      // lmdb-js' reused read buffer, not a copy: used before any other read (a copy per value was 2.4 s of
      // 1M users' views rebuilt, profiled).
      const before = readFast(old, key);
      if (before === undefined) {
        rebuilt.put(key, value);
        return;
      }
      if (putBytes !== undefined && encodeOver !== undefined) {
        putBytes(key, encodeOver(value as Versioned, before));
        return;
      }
      const keep = same(before, codec.encode(value as Versioned));
      rebuilt.put(key, keep ? { ...(value as Versioned), version: codec.decode(before).version } : value);
    },
    remove: (key) => rebuilt.remove(key),
    entries: () => rebuilt.entries(),
    keys: () => rebuilt.keys(),
  };
}
