/**
 * How to start one of matview's worker threads (the writer thread, the decode thread): from the bundle
 * (`dist/<bundled>.mjs` next to `dist/matview.mjs`, see scripts/build.mjs), or from the TypeScript source
 * through tsx's loader (tests, `tsx`, the CLI's fallback).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker running `source` (a .ts file, relative to `here`, the caller's `import.meta.url`) or, when the
 * caller runs from the bundle, `dist/<bundled>.mjs`.
 */
export function startWorker(here: string, source: string, bundled: string, options: WorkerOptions): Worker {
  if (here.endsWith('.mjs')) return new Worker(new URL(`./${bundled}.mjs`, here), options);
  const href = new URL(source, here).href;
  // Loader hooks are per thread in Node 20: the worker registers tsx itself, then imports the source.
  const manifest = createRequire(here).resolve('tsx/package.json');
  const exportsOf = (JSON.parse(readFileSync(manifest, 'utf8')) as TsxManifest).exports;
  const api = pathToFileURL(join(dirname(manifest), exportsOf['./esm/api'].import.default)).href;
  return new Worker(
    `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(href)}); });`,
    { ...options, eval: true },
  );
}

interface TsxManifest {
  readonly exports: { readonly './esm/api': { readonly import: { readonly default: string } } };
}
