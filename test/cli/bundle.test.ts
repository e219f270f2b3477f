/**
 * The bundle `bin/matview.js` runs (scripts/build.mjs): npm packages are bundled in, but those that must stay
 * one instance loaded from node_modules. ordered-binary above all: lmdb configures its own instance when it
 * loads, and src/store/string-keys.ts writes keys with the instance it imports, so a bundled copy of its own
 * would write keys the store does not find (nothing else would fail loudly). Each of these packages must be
 * imported by the bundles, never inlined into them. kafkajs is required by the modules that use it, when they
 * are initialized: an operator command such as `matview help` does not load it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import module from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../utils/tmp.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** esbuild marks each module it inlines with a `// node_modules/<package>/<file>` line. */
const inlined = (bundle: string, pkg: string): boolean => bundle.includes(`\n// node_modules/${pkg}/`);
const imported = (bundle: string, pkg: string): boolean =>
  new RegExp(`^import [^;]* from "${pkg}";$`, 'm').test(bundle);

describe('the bundle', () => {
  it('imports lmdb, ordered-binary, lz4-napi and pino from node_modules, requires kafkajs when used, and inlines graphql', () => {
    // `matview help` builds the bundles first when a source is newer (bin/matview.js, ensureBuilt).
    const help = spawnSync(process.execPath, [`${root}bin/matview.js`, 'help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    const main = readFileSync(`${root}dist/matview.mjs`, 'utf8');
    const writer = readFileSync(`${root}dist/batch-writer.mjs`, 'utf8');
    for (const pkg of ['lmdb', 'ordered-binary', 'lz4-napi', 'pino']) {
      expect({ pkg, imported: imported(main, pkg), inlined: inlined(main, pkg) }).toEqual({
        pkg,
        imported: true,
        inlined: false,
      });
    }
    // Not loaded with the bundle: required from node_modules by the modules that use it, when they are
    // initialized (src/feed/kafkajs-module.ts), so the operator commands do not load it.
    expect({ imported: imported(main, 'kafkajs'), inlined: inlined(main, 'kafkajs') }).toEqual({
      imported: false,
      inlined: false,
    });
    expect(main).toMatch(/^ {4}kafkajs = createRequire\d*\(import\.meta\.url\)\("kafkajs"\);$/m);
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

  it('does not load kafkajs for `matview help`', () => {
    // A preload that says, as the process exits, whether any of kafkajs' files was loaded.
    const probe = join(tempDir(), 'probe.cjs');
    writeFileSync(
      probe,
      "process.on('exit', () => process.stderr.write('kafkajs loaded: ' + Object.keys(require('node:module')._cache).some((f) => f.includes('/node_modules/kafkajs/')) + '\\n'));",
    );
    const help = spawnSync(process.execPath, ['--require', probe, `${root}bin/matview.js`, 'help'], {
      encoding: 'utf8',
    });
    expect(help.status).toBe(0);
    expect(help.stderr).toContain('kafkajs loaded: false');
  });

  it("keeps the compiled code in Node's compile cache, on the Node releases that have one", () => {
    const tmp = tempDir();
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
    delete env['NODE_COMPILE_CACHE'];
    delete env['NODE_DISABLE_COMPILE_CACHE'];
    const help = spawnSync(process.execPath, [`${root}bin/matview.js`, 'help'], { encoding: 'utf8', env });
    expect(help.status).toBe(0);
    // Node 22.1+: a directory per Node version in the temp directory; Node 20: none.
    const hasCache = typeof (module as { enableCompileCache?: unknown }).enableCompileCache === 'function';
    const cached = existsSync(join(tmp, 'node-compile-cache'))
      ? readdirSync(join(tmp, 'node-compile-cache')).filter((d) => d.startsWith(`${process.version}-`))
      : [];
    expect(cached.length).toBe(hasCache ? 1 : 0);
  });
});
