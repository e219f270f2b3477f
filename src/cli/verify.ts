/**
 * `matview verify`: recomputes every registered view from the stored source rows and names each key whose
 * stored value differs. Exit 0 when everything matches, 1 on any difference. Read-only; safe while a server
 * runs on the same DATA_DIR.
 */
import type { Config } from '../ops/config.js';
import { storePathOf } from '../store/data-dir.js';
import { openStore } from '../store/lmdb-store.js';
import { verifyGeneration, verifyReplicaGeneration } from '../store/verify.js';
import { ExitCode, parse, type Print } from './args.js';

/** Most users listed one per line; the rest are only counted. */
const MAX_LISTED = 100;

export async function runVerify(config: Config, args: readonly string[], print: Print): Promise<ExitCode> {
  const { values } = parse('verify', args, { shadow: { type: 'boolean' } }, 0);
  const store = openStore({ path: storePathOf(config.dataDir), readOnly: true });
  try {
    const generation = values.shadow === true ? store.shadowGeneration() : store.activeGeneration();
    if (generation === undefined) {
      print('verify: no rebuild in progress, so no shadow generation to verify');
      return ExitCode.Failed;
    }
    // A replica's views come from its view topic: what it derives from them is checked instead.
    const role = store.role();
    const replica = role?.kind === 'replica';
    const report = replica
      ? verifyReplicaGeneration(store.registry, generation)
      : verifyGeneration(store.registry, generation);
    const topicViews = replica ? `the views of view topic "${role.topic}"` : undefined;
    for (const d of report.differences.slice(0, MAX_LISTED))
      print(`${d.view} ${d.key}: ${d.problems.join('; ')}`);
    if (report.differences.length > MAX_LISTED)
      print(`… and ${report.differences.length - MAX_LISTED} more keys`);
    const rows = Object.entries(report.rows)
      .map(([t, n]) => `${n} ${t}`)
      .join(', ');
    const views = Object.entries(report.keys)
      .map(([v, n]) => `${v} ${n} keys`)
      .join(', ');
    const notHeld =
      report.notHeld.length === 0
        ? ''
        : `; not checked, not held by this generation at their registered version (a rebuild adds them): ${report.notHeld.join(', ')}`;
    const scope = `generation ${report.generation}; views: ${views}${replica ? '' : `; rows: ${rows}`}${notHeld}`;
    if (report.differences.length === 0) {
      print(`verify: OK: every view matches ${topicViews ?? 'its rows'}; ${scope}`);
      return ExitCode.Ok;
    }
    print(
      `verify: FAILED: ${report.differences.length} keys differ from ${topicViews ?? 'the rows'}; ${scope}`,
    );
    return ExitCode.Failed;
  } finally {
    await store.close();
  }
}
