/**
 * `matview verify`: recomputes every view from the stored source rows and names each user whose stored
 * state or view differs. Exit 0 when everything matches, 1 on any difference. Read-only; safe while a
 * server runs on the same DATA_DIR.
 */
import type { Config } from '../ops/config.js';
import { storePathOf } from '../store/data-dir.js';
import { openStore } from '../store/lmdb-store.js';
import { verifyStore } from '../store/verify.js';
import { USER_INFORMATION_VERSION } from '../views/user-information.js';
import { ExitCode, parse, type Print } from './args.js';

/** Most users listed one per line; the rest are only counted. */
const MAX_LISTED = 100;

export async function runVerify(config: Config, args: readonly string[], print: Print): Promise<ExitCode> {
  const { values } = parse('verify', args, { shadow: { type: 'boolean' } }, 0);
  const store = openStore({
    path: storePathOf(config.dataDir),
    viewVersion: USER_INFORMATION_VERSION,
    create: false,
  });
  try {
    const generation = values.shadow === true ? store.shadowGeneration() : store.activeGeneration();
    if (generation === undefined) {
      print('verify: no rebuild in progress, so no shadow generation to verify');
      return ExitCode.Failed;
    }
    const report = verifyStore(store, generation);
    for (const d of report.differences.slice(0, MAX_LISTED))
      print(`user ${d.userId}: ${d.problems.join('; ')}`);
    if (report.differences.length > MAX_LISTED)
      print(`… and ${report.differences.length - MAX_LISTED} more users`);
    const rows = Object.entries(report.rows)
      .map(([t, n]) => `${n} ${t}`)
      .join(', ');
    const scope = `generation ${report.generation} (view version ${report.viewVersion}), ${report.users} users, rows: ${rows}`;
    if (report.differences.length === 0) {
      print(`verify: OK: every view matches its rows; ${scope}`);
      return ExitCode.Ok;
    }
    print(
      `verify: FAILED: ${report.differences.length} of ${report.users} users differ from their rows; ${scope}`,
    );
    return ExitCode.Failed;
  } finally {
    await store.close();
  }
}
