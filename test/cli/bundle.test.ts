/**
 * The bundle `bin/matview.js` runs (scripts/build.mjs): npm packages are bundled in, but those that must stay
 * one instance loaded from node_modules. ordered-binary above all: lmdb configures its own instance when it
 * loads, and src/store/string-keys.ts writes keys with the instance it imports, so a bundled copy of its own
 * would write keys the store does not find (nothing else would fail loudly). Each of these packages must be
 * imported by the bundles, never inlined into them.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** esbuild marks each module it inlines with a `// node_modules/<package>/<file>` line. */
const inlined = (bundle: string, pkg: string): boolean => bundle.includes(`\n// node_modules/${pkg}/`);
const imported = (bundle: string, pkg: string): boolean =>
  new RegExp(`^import [^;]* from "${pkg}";$`, 'm').test(bundle);

describe('the bundle', () => {
  it('imports lmdb, ordered-binary, kafkajs, lz4-napi and pino from node_modules and inlines graphql', () => {
    // `matview help` builds the bundles first when a source is newer (bin/matview.js, ensureBuilt).
    const help = spawnSync(process.execPath, [`${root}bin/matview.js`, 'help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    const main = readFileSync(`${root}dist/matview.mjs`, 'utf8');
    const writer = readFileSync(`${root}dist/batch-writer.mjs`, 'utf8');
    for (const pkg of ['lmdb', 'ordered-binary', 'kafkajs', 'lz4-napi', 'pino']) {
      expect({ pkg, imported: imported(main, pkg), inlined: inlined(main, pkg) }).toEqual({
        pkg,
        imported: true,
        inlined: false,
      });
    }
    expect(imported(writer, 'lmdb')).toBe(true);
    // The decode thread's bundle: kafkajs' record types only, no LMDB handle of its own.
    const decoder = readFileSync(`${root}dist/record-decoder.mjs`, 'utf8');
    expect(decoder).toContain('record-decoder.ts');
    expect(imported(decoder, 'lmdb')).toBe(false);
    expect(inlined(writer, 'lmdb') || inlined(writer, 'ordered-binary')).toBe(false);
    // The rest is bundled: one copy of graphql, whatever imports it.
    expect(inlined(main, 'graphql')).toBe(true);
    expect(imported(main, 'graphql')).toBe(false);
  });
});
