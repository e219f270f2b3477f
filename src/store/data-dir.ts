/**
 * The data directory layout, apart from the server so the CLI tools (verify, snapshot, restore, rebuild)
 * can find the store without loading the API: `DATA_DIR/view` is the view store (an LMDB environment),
 * `DATA_DIR/changelog` the embedded changelog.
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataDirError } from '../errors.js';

/** Where the view store lives inside DATA_DIR. */
export const storePathOf = (dataDir: string): string => join(resolve(dataDir), 'view');

/** Creates the data directory if needed and proves it is writable, with a one-line reason when not. */
export function ensureDataDir(dir: string): string {
  const abs = resolve(dir);
  try {
    mkdirSync(abs, { recursive: true });
    accessSync(abs, constants.W_OK);
  } catch (e) {
    throw new DataDirError(
      abs,
      (e as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (e as Error).message,
      { cause: e },
    );
  }
  return abs;
}

