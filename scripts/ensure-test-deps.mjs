#!/usr/bin/env node
/**
 * `npm pretest`: makes sure the system tools the tests drive are installed, installing them with
 * apt-get when we can (root + Debian/Ubuntu), otherwise failing with the exact command to run.
 * Silent when everything is present, so it adds nothing to a normal test run. `npm prebench` runs it for
 * kcat alone (the benchmarks' mock cluster; they install Postgres and Redis themselves).
 *
 * To add a tool, append to TOOLS: { binary, debianPackage, neededFor, skip? }.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** @typedef {{ binary: string; debianPackage: string; neededFor: string; skip?: () => string | undefined }} Tool */

/** @type {Tool[]} */
const TOOLS = [
  {
    binary: 'kcat',
    debianPackage: 'kcat',
    neededFor: 'the librdkafka mock Kafka cluster and foreign-producer (snappy/lz4/zstd) tests',
    // With a real cluster the tests do not start the mock; kcat is then only needed by the
    // kcat-producer tests, which will report it themselves.
    skip: () => (process.env.KAFKA_BROKERS ? 'KAFKA_BROKERS is set' : undefined),
  },
  {
    binary: 'chromium',
    debianPackage: 'chromium',
    // test/live/page.test.ts launches /usr/bin/chromium through playwright-core (no bundled browser download).
    neededFor: 'the browser test of the live page at / (test/live/page.test.ts)',
  },
  {
    binary: 'promtool',
    debianPackage: 'prometheus',
    // test/ops/deploy.test.ts runs `promtool check rules` and `promtool test rules` on deploy/prometheus/.
    neededFor: 'checking and unit-testing the alerting rules in deploy/prometheus (test/ops/deploy.test.ts)',
  },
];

/** @param {string} binary */
function onPath(binary) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, binary), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** @param {string} command @param {string[]} args */
function run(command, args) {
  // stdout to stderr: npm shows it, and nothing is printed on the happy path anyway.
  const result = spawnSync(command, args, {
    stdio: ['ignore', process.stderr, process.stderr],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return result.status === 0;
}

// `node scripts/ensure-test-deps.mjs kcat`: those tools only (`npm run bench` needs kcat alone).
const only = process.argv.slice(2);
const unknown = only.filter((b) => !TOOLS.some((t) => t.binary === b));
if (unknown.length > 0) {
  console.error(
    `ensure-test-deps: no such tool: ${unknown.join(', ')} (known: ${TOOLS.map((t) => t.binary).join(', ')})`,
  );
  process.exit(2);
}
const wanted = only.length === 0 ? TOOLS : TOOLS.filter((t) => only.includes(t.binary));
const missing = wanted.filter((tool) => tool.skip?.() === undefined && !onPath(tool.binary));
if (missing.length === 0) process.exit(0);

const packages = [...new Set(missing.map((t) => t.debianPackage))];
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (isRoot && onPath('apt-get')) {
  console.error(`ensure-test-deps: installing ${packages.join(', ')} with apt-get…`);
  if (
    run('apt-get', ['update']) &&
    run('apt-get', ['install', '-y', '--no-install-recommends', ...packages])
  ) {
    const still = missing.filter((t) => !onPath(t.binary));
    if (still.length === 0) process.exit(0);
  }
}

const lines = missing.map(
  (t) => `  - ${t.binary} (Debian/Ubuntu package "${t.debianPackage}"): needed for ${t.neededFor}`,
);
console.error(
  [
    `Missing tools for ${only.length === 0 ? 'the test suite' : 'the benchmarks'}:`,
    ...lines,
    '',
    'Install them with:',
    `  sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}`,
    '(macOS: brew install kcat). Or run the tests against a real cluster with KAFKA_BROKERS=host:port.',
  ].join('\n'),
);
process.exit(1);
