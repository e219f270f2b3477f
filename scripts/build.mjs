// Bundles matview's TypeScript sources into dist/matview.mjs, the store's writer thread into
// dist/batch-writer.mjs (src/store/writer-thread.ts starts it from there) and the decode thread into
// dist/record-decoder.mjs (src/pipeline/decode-thread.ts), with esbuild, the compiler tsx runs
// on every import. Loading one bundle instead of ~150 modules through tsx's loader hooks takes a process from
// ~2.1 s to ~1.0 s to start, which is what restarts, restores and CLI tools wait for. The npm packages are
// bundled too (but EXTERNAL): Node's loader spent a third of a start resolving, reading and wrapping ~570 of
// their files one by one; bundled, `matview serve` is listening 0.75-0.90 s after spawn instead of 0.98-1.10
// s, and `matview help` exits in 0.53 s instead of 0.77 (5 runs each, bench box). `bin/matview.js` calls
// `ensureBuilt()`, so the bundle is never older than the sources or the installed packages (package-lock.json);
// run `node scripts/build.mjs` to build explicitly (the Docker image does, at build time). src/cli/main.ts
// imports each command's module when it runs (esbuild then initializes that part of the bundle lazily): a
// command no longer evaluates the server, the API and kafkajs it does not use (`matview help` 0.26 s against
// 0.33, `matview rebuild` 0.38-0.46 s against 0.59, next to a running server).
import { copyFileSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE = join(ROOT, 'dist', 'matview.mjs');
/** What the bundle is made of: a change to any of these makes it stale. */
const INPUTS = ['src', 'api', 'package.json', 'package-lock.json', 'tsconfig.json', 'scripts/build.mjs'];
/**
 * npm packages loaded from node_modules at run time, not bundled:
 * - native addons and what loads them: lmdb, lz4-napi;
 * - packages whose one instance others share: ordered-binary (lmdb configures its own instance at load, and
 *   src/store/string-keys.ts must write keys exactly as lmdb does), kafkajs (src/feed/kafkajs-internals.ts
 *   requires its internal files by path, which must be the same copy as its public API; required when used,
 *   src/feed/kafkajs-module.ts, so that operator commands do not load it) and its codec plugin;
 * - pino, whose transports load their own files by path;
 * - class-validator, an optional peer of type-graphql that matview does not install (never loaded);
 * - build tools the sources never import at run time.
 */
const EXTERNAL = [
  'lmdb',
  'lz4-napi',
  'ordered-binary',
  'kafkajs',
  'kafkajs-snappy',
  'pino',
  'class-validator',
  'esbuild',
  'tsx',
];

/**
 * Bundled CommonJS packages call `require` for Node's built-in modules (and their optional dependencies, in
 * try/catch): an ES module has none, so the bundle defines one, resolving from dist/ as a file there would.
 */
const REQUIRE_BANNER =
  "import { createRequire as __matviewCreateRequire } from 'node:module'; const require = __matviewCreateRequire(import.meta.url);";

/** Files read at run time next to the bundle (`new URL('./x', import.meta.url)` in the sources). */
const ASSETS = [
  ['api/page/index.html', 'index.html'],
  ['api/page/dashboard.html', 'dashboard.html'],
  ['api/page/shared.css', 'shared.css'],
  ['api/page/shared.js', 'shared.js'],
];

function newestInput(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestInput(join(path, entry)));
  return newest;
}

/** True when dist/matview.mjs exists and is newer than every input. */
export function isFresh() {
  let built;
  try {
    built = statSync(BUNDLE).mtimeMs;
  } catch {
    return false;
  }
  return INPUTS.every((input) => newestInput(join(ROOT, input)) <= built);
}

/** Builds into a private directory, then renames into place: concurrent builds never expose a half-written file. */
export async function build() {
  const { build: esbuild } = await import('esbuild');
  const staging = join(ROOT, 'dist', `.build-${process.pid}-${Date.now()}`);
  mkdirSync(staging, { recursive: true });
  await esbuild({
    entryPoints: {
      matview: join(ROOT, 'src/cli/main.ts'),
      'batch-writer': join(ROOT, 'src/store/batch-writer.ts'),
      'record-decoder': join(ROOT, 'src/pipeline/record-decoder.ts'),
    },
    outdir: staging,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: EXTERNAL,
    banner: { js: REQUIRE_BANNER },
    sourcemap: 'linked',
    tsconfig: join(ROOT, 'tsconfig.json'),
    // Paths in the bundle's comments relative to the repository, from whatever directory it is built.
    absWorkingDir: ROOT,
    logLevel: 'warning',
  });
  for (const [from, to] of ASSETS) copyFileSync(join(ROOT, from), join(staging, to));
  for (const [, to] of ASSETS) renameSync(join(staging, to), join(ROOT, 'dist', to));
  // The workers first: the main bundle (renamed last, it is what `isFresh` checks) starts them.
  for (const file of [
    'batch-writer.mjs.map',
    'batch-writer.mjs',
    'record-decoder.mjs.map',
    'record-decoder.mjs',
    'matview.mjs.map',
  ])
    renameSync(join(staging, file), join(ROOT, 'dist', file));
  renameSync(join(staging, 'matview.mjs'), BUNDLE);
  rmSync(staging, { recursive: true, force: true });
}

/** The bundle's path, built first when stale; undefined when it cannot be written (e.g. a read-only install). */
export async function ensureBuilt() {
  if (isFresh()) return BUNDLE;
  try {
    await build();
    return BUNDLE;
  } catch {
    return undefined;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await build();
