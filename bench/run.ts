/**
 * The benchmark runner (issue 7), shaped like graphql-js `benchmark/`: each scenario is a small
 * `{ name, description, run }` module in bench/scenarios/, and this file runs them in one process, on one
 * machine, one after the other, then prints a table per scenario and writes the results.
 *
 *   npm run bench                     every scenario → bench/results/latest.{json,md}
 *   npm run bench -- read ingest      some of them   → bench/results/partial.{json,md} (not checked in)
 *                                     (so does a full run in which a scenario failed)
 *   npm run bench -- --quick          smaller sizes and shorter runs (a smoke test of the harness)
 *
 * Benchmarks never run inside `npm test`.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, freemem, release, totalmem, type } from 'node:os';
import { join } from 'node:path';
import {
  defaultTmpRoot,
  load,
  removeDir,
  ROOT,
  tempDir,
  type Check,
  type Row,
  type Scenario,
  type ScenarioContext,
} from './lib/common.js';
import { catchup } from './scenarios/catchup.js';
import { fanout } from './scenarios/fanout.js';
import { freshness } from './scenarios/freshness.js';
import { ingest } from './scenarios/ingest.js';
import { read } from './scenarios/read.js';
import { rebuild } from './scenarios/rebuild.js';
import { viewTopic } from './scenarios/view-topic.js';

const SCENARIOS: readonly Scenario[] = [read, ingest, catchup, fanout, freshness, rebuild, viewTopic];

interface ScenarioResult {
  name: string;
  description: string;
  seconds: number;
  loadStart: string;
  loadEnd: string;
  error?: string;
  rows: Row[];
  checks: Check[];
  notes: string[];
}

function versionOf(pkg: string): string {
  try {
    const json = JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as {
      version: string;
    };
    return json.version;
  } catch {
    return '?';
  }
}

function commandOutput(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return '?';
  }
}

const cell = (v: number | string | null | undefined): string =>
  v === null || v === undefined
    ? ''
    : typeof v === 'number'
      ? Number.isInteger(v)
        ? String(v)
        : v.toFixed(2)
      : v;

/** Rows of one scenario as aligned text columns (or markdown when `md`), one table per group of rows. */
function tables(rows: readonly Row[], md: boolean): string {
  const groups = [...new Set(rows.map((r) => r.group))];
  return groups
    .map((g) =>
      table(
        rows.filter((r) => r.group === g),
        md,
        g ?? '',
      ),
    )
    .join('\n\n');
}

function table(rows: readonly Row[], md: boolean, title: string): string {
  if (rows.length === 0) return '';
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r.values)))];
  const header = [title, ...columns];
  const body = rows.map((r) => [r.name, ...columns.map((c) => cell(r.values[c]))]);
  if (md) {
    const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
    return [line(header), line(header.map(() => '---')), ...body.map(line)].join('\n');
  }
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const fmt = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(header), ...body.map(fmt)].join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) {
    console.error(
      `unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`,
    );
    process.exit(2);
  }
  const selected = names.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => names.includes(s.name));
  const full = names.length === 0 && !quick;

  const tmpRoot = defaultTmpRoot();
  mkdirSync(tmpRoot, { recursive: true });
  const tmp = tempDir(tmpRoot, 'run');
  // Postgres runs as its own user: it must reach its socket directory inside.
  chmodSync(tmp, 0o755);
  const cache = join(tmpRoot, 'cache');
  mkdirSync(cache, { recursive: true });

  const started = new Date();
  const loadAtStart = load();
  console.log(
    `matview bench: ${selected.map((s) => s.name).join(', ')}${quick ? ' (quick)' : ''}; load average ${loadAtStart}`,
  );
  const results: ScenarioResult[] = [];
  for (const scenario of selected) {
    const result: ScenarioResult = {
      name: scenario.name,
      description: scenario.description,
      seconds: 0,
      loadStart: load(),
      loadEnd: '',
      rows: [],
      checks: [],
      notes: [],
    };
    const cleanups: (() => Promise<void> | void)[] = [];
    const ctx: ScenarioContext = {
      tmp: tempDir(tmp, scenario.name),
      cache,
      quick,
      log: (m) => console.log(`[${scenario.name}] ${m}`),
      row: (name, values, group) =>
        result.rows.push({
          scenario: scenario.name,
          name,
          values,
          ...(group === undefined ? {} : { group }),
        }),
      check: (target, measured, met) =>
        result.checks.push({ scenario: scenario.name, target, measured, met }),
      note: (m) => {
        console.log(`[${scenario.name}] note: ${m}`);
        result.notes.push(m);
      },
      defer: (c) => cleanups.push(c),
    };
    chmodSync(ctx.tmp, 0o755);
    const t0 = Date.now();
    console.log(`\n== ${scenario.name}: ${scenario.description} (load ${result.loadStart})`);
    try {
      await scenario.run(ctx);
    } catch (e) {
      result.error = e instanceof Error ? (e.stack ?? e.message) : String(e);
      console.error(`[${scenario.name}] failed: ${result.error}`);
    } finally {
      for (const c of cleanups.reverse()) {
        try {
          await c();
        } catch (e) {
          console.error(`[${scenario.name}] cleanup failed: ${String(e)}`);
        }
      }
    }
    result.seconds = Math.round((Date.now() - t0) / 1000);
    result.loadEnd = load();
    results.push(result);
    console.log(`\n${tables(result.rows, false)}\n`);
    for (const c of result.checks)
      console.log(`${c.met === null ? '  ?' : c.met ? ' ok' : 'MISS'}  ${c.target}: ${c.measured}`);
  }
  removeDir(tmp);
  // A full run in which a scenario failed does not replace the checked-in results: it is written as a partial one.
  const failed = results.filter((r) => r.error !== undefined).map((r) => r.name);
  const complete = full && failed.length === 0;

  const cpu = cpus();
  const report = {
    date: started.toISOString(),
    full,
    quick,
    durationSeconds: Math.round((Date.now() - started.getTime()) / 1000),
    loadAverage: { start: loadAtStart, end: load() },
    machine: {
      cpus: cpu.length,
      cpuModel: cpu[0]?.model ?? '?',
      memoryGiB: Math.round(totalmem() / 1024 ** 3),
      freeMemoryGiB: Math.round(freemem() / 1024 ** 3),
      os: `${type()} ${release()}`,
    },
    versions: {
      node: process.version,
      matview: commandOutput('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
      lmdb: versionOf('lmdb'),
      graphql: versionOf('graphql'),
      '@apollo/server': versionOf('@apollo/server'),
      'graphql-ws': versionOf('graphql-ws'),
      kafkajs: versionOf('kafkajs'),
      autocannon: versionOf('autocannon'),
      pg: versionOf('pg'),
      ioredis: versionOf('ioredis'),
      kcat: commandOutput('kcat', ['-V']).split('\n')[0] ?? '?',
    },
    scenarios: results,
  };
  const md = [
    `# matview benchmark results`,
    '',
    `${report.date}, ${report.durationSeconds} s${complete ? '' : full ? ` (every scenario, but ${failed.join(', ')} failed)` : ' (partial run)'}. Machine: ${report.machine.cpus} × ${report.machine.cpuModel}, ` +
      `${report.machine.memoryGiB} GiB, ${report.machine.os}. Load average (1/5/15 min) at start ${report.loadAverage.start}, at end ${report.loadAverage.end}.`,
    '',
    `Versions: ${Object.entries(report.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
    '',
    'How to read these: see bench/README.md. Compare ratios within this file only (one run, one machine).',
    '',
    '## Targets',
    '',
    '| scenario | target | measured | met |',
    '| --- | --- | --- | --- |',
    ...results.flatMap((r) =>
      r.checks.map(
        (c) =>
          `| ${r.name} | ${c.target} | ${c.measured} | ${c.met === null ? '?' : c.met ? 'yes' : '**no**'} |`,
      ),
    ),
    '',
    ...results.flatMap((r) => [
      `## ${r.name}`,
      '',
      `${r.description}. ${r.seconds} s, load average ${r.loadStart} → ${r.loadEnd}.`,
      '',
      tables(r.rows, true),
      '',
      ...(r.notes.length > 0 ? [...r.notes.map((n) => `- ${n}`), ''] : []),
      ...(r.error !== undefined ? ['```', r.error, '```', ''] : []),
    ]),
  ].join('\n');
  const outDir = join(ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const base = complete ? 'latest' : 'partial';
  writeFileSync(join(outDir, `${base}.json`), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(outDir, `${base}.md`), md);
  console.log(`\nwrote bench/results/${base}.json and ${base}.md; load average ${report.loadAverage.end}`);
  process.exit(results.some((r) => r.error !== undefined) ? 1 : 0);
}

await main();
