#!/usr/bin/env node
// Entry point for the `matview` command. Runs the bundle of the TypeScript sources (dist/matview.mjs,
// rebuilt by scripts/build.mjs whenever a source is newer; it starts in a third of the time tsx takes);
// if the bundle cannot be written, runs the sources through tsx with the project's tsconfig. The bundle is
// not minified and keeps `// src/...` markers; NODE_OPTIONS=--enable-source-maps maps stack traces back to
// the sources (dist/matview.mjs.map), at ~0.1 s of start-up.
import module from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureBuilt } from '../scripts/build.mjs';

// Node 22.1+ keeps V8's compiled code of the modules it loads on disk (in the OS temp directory), as
// TypeScript's and npm's own commands do: `matview help` on Node 24 exited in 365 ms against 402 (medians of 6
// alternated runs); `matview serve`'s start moved less than its spread. NODE_DISABLE_COMPILE_CACHE=1 turns it
// off; Node 20 has no such cache.
module.enableCompileCache?.();

const bundle = await ensureBuilt();
if (bundle !== undefined) {
  await import(pathToFileURL(bundle).href);
} else {
  const { register } = await import('tsx/esm/api');
  register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
  await import('../src/cli/main.ts');
}
