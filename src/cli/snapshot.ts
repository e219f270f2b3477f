/**
 * `matview snapshot <file>` and `matview restore <file>`: a consistent, compacted copy of the store (every
 * generation, the offsets it reflects, its meta) as one LMDB file, and a new data directory started from
 * it, so a new instance is ready after reading only the records written since the snapshot.
 *
 * - snapshot reads through an LMDB read transaction (`mdb_env_copy2` + `MDB_CP_COMPACT`), so it is safe
 *   while a server writes the same DATA_DIR (LMDB allows readers in other processes). The copy is written
 *   next to the target and renamed into place: a crash never leaves a half-written snapshot at `<file>`.
 * - restore copies the file into DATA_DIR/view through a staging directory, checks it is a matview store,
 *   and gives it a new instance id: its default consumer group (`matview-<instanceId>`) must not be the
 *   one of the instance the snapshot came from, or both would split the partitions between them. The copy
 *   is a reflink where the filesystem has them (btrfs, XFS: instant, no extra space). `--move` renames the
 *   file instead (same filesystem only): instant everywhere, for a snapshot fetched just to be restored;
 *   the file is gone afterwards (moved back if the restore fails before the swap).
 * Exit 0 on success, 1 on failure (with one readable line), 2 on bad usage.
 */
import { constants, copyFileSync, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { SnapshotError, isMatviewError } from '../errors.js';
import type { Config } from '../ops/config.js';
import { claimDataDir, ensureDataDir, storePathOf } from '../store/data-dir.js';
import { dataFileOf, openStore, type LmdbStore } from '../store/lmdb-store.js';
import { ExitCode, parse, type Print } from './args.js';

/** One line describing what a store holds: generation, view version, sequence and positions. */
export function describeStore(store: LmdbStore): string {
  const positions = store
    .positions()
    .map((p) => `${p.topic}[${p.partition}]=${p.next}`)
    .join(' ');
  return (
    `generation ${store.activeGeneration().id}, views ${describeViews(store.viewVersions())}, sequence ${store.sequence()}, ` +
    `instance ${store.instanceId}, next offsets: ${positions === '' ? '(none)' : positions}`
  );
}

const describeViews = (versions: Record<string, number>): string =>
  Object.entries(versions)
    .map(([v, n]) => `${v}@${n}`)
    .join(' ');

const open = (path: string) => openStore({ path, create: false });

export async function runSnapshot(config: Config, args: readonly string[], print: Print): Promise<ExitCode> {
  const { values, positionals } = parse('snapshot', args, { force: { type: 'boolean' } }, 1);
  const file = resolve(positionals[0]!);
  if (existsSync(file) && values.force !== true) {
    throw new SnapshotError(`${file} already exists; pass --force to replace it`);
  }
  const staging = `${file}.tmp-${process.pid}`;
  const store = openStore({ path: storePathOf(config.dataDir), readOnly: true });
  try {
    rmSync(staging, { recursive: true, force: true });
    try {
      await store.backup(staging);
    } catch (e) {
      throw new SnapshotError(`could not copy the store to ${dirname(file)}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const copy = open(staging);
    const summary = describeStore(copy);
    await copy.close();
    renameSync(dataFileOf(staging), file);
    print(`snapshot: wrote ${file} (${statSync(file).size} bytes): ${summary}`);
    return ExitCode.Ok;
  } finally {
    rmSync(staging, { recursive: true, force: true });
    await store.close();
  }
}

export async function runRestore(config: Config, args: readonly string[], print: Print): Promise<ExitCode> {
  const { values, positionals } = parse(
    'restore',
    args,
    { force: { type: 'boolean' }, move: { type: 'boolean' } },
    1,
  );
  const move = values.move === true;
  const file = resolve(positionals[0]!);
  if (!existsSync(file) || !statSync(file).isFile()) throw new SnapshotError(`${file} is not a file`);
  const dataDir = ensureDataDir(config.dataDir);
  // No server may start on DATA_DIR while the store is replaced, and none may be running (store/data-dir.ts).
  const claim = await claimDataDir(dataDir, 'restore');
  try {
    return await restoreInto(
      storePathOf(dataDir),
      file,
      { move, force: values.force === true },
      config,
      print,
    );
  } finally {
    await claim.release();
  }
}

/** `restore` once DATA_DIR is claimed: `file` into the store at `target`. */
async function restoreInto(
  target: string,
  file: string,
  { move, force }: { readonly move: boolean; readonly force: boolean },
  config: Config,
  print: Print,
): Promise<ExitCode> {
  if (existsSync(dataFileOf(target))) {
    if (!force) {
      throw new SnapshotError(
        `${target} already holds a store; pass --force to replace it with the snapshot`,
      );
    }
    const existing = open(target);
    const owner = existing.liveOwner();
    await existing.close();
    if (owner !== undefined) {
      throw new SnapshotError(
        `a server (pid ${owner.pid} on ${owner.hostname}) is using ${target}; stop it before restoring`,
      );
    }
  }
  const staging = `${target}.restore-${process.pid}`;
  const staged = dataFileOf(staging);
  rmSync(staging, { recursive: true, force: true });
  let swapped = false;
  try {
    ensureDataDir(staging);
    if (move) {
      try {
        renameSync(file, staged);
      } catch (e) {
        const why =
          (e as NodeJS.ErrnoException).code === 'EXDEV'
            ? 'it is on another filesystem than DATA_DIR'
            : (e as Error).message;
        throw new SnapshotError(
          `could not move ${file} into ${staging}: ${why}; restore without --move copies it`,
          { cause: e },
        );
      }
    } else {
      copyFileSync(file, staged, constants.COPYFILE_FICLONE);
    }
    let copy: LmdbStore;
    try {
      copy = open(staging);
    } catch (e) {
      throw new SnapshotError(
        `${file} is not a matview snapshot: ${isMatviewError(e) ? 'no matview store in it' : (e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    const previous = copy.instanceId;
    await copy.resetIdentity();
    const summary = describeStore(copy);
    await copy.close();
    rmSync(target, { recursive: true, force: true });
    renameSync(staging, target);
    swapped = true;
    print(
      `restore: ${target} from ${file}${move ? ' (moved)' : ''} (instance ${previous} → new identity): ${summary}`,
    );
    print('restore: `matview serve` resumes the feed from these offsets');
    if (config.kafka === undefined) {
      print(
        'restore: note: without KAFKA_BROKERS the offsets refer to the embedded changelog, which a snapshot does not include',
      );
    }
    return ExitCode.Ok;
  } finally {
    // A failed --move gives the file back (its identity may have been reset: still the same snapshot data).
    if (move && !swapped && existsSync(staged) && !existsSync(file)) renameSync(staged, file);
    rmSync(staging, { recursive: true, force: true });
  }
}
