/**
 * Shared pieces of the benchmark harness: the scenario contract, result rows, statistics, the Zipf
 * sampler, temp dirs and small process helpers. Nothing here measures anything by itself.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/** One figure of a scenario: a named row with numbers (and notes) the runner prints and saves. */
export interface Row {
  readonly scenario: string;
  /** What was measured, e.g. `matview-rest @ saturation`. */
  readonly name: string;
  readonly values: Readonly<Record<string, number | string | null>>;
  /** Rows of one group share a table (and its columns), tables in the order their groups first appear. */
  readonly group?: string;
}

/** A target check: what the issue asked for, what we measured, met or not. */
export interface Check {
  readonly scenario: string;
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
}

export interface ScenarioContext {
  /** Scratch directory of the whole run (deleted at the end). */
  readonly tmp: string;
  /** Directory for data kept across runs (the 1M-user view, Postgres data): same content every run. */
  readonly cache: string;
  readonly quick: boolean;
  log(message: string): void;
  row(name: string, values: Row['values'], group?: string): void;
  check(target: string, measured: string, met: boolean | null): void;
  /** Something scaled down, skipped or worth knowing when reading the figures. */
  note(message: string): void;
  /** Cleanup to run at the end of the run, even when a scenario fails. */
  defer(cleanup: () => Promise<void> | void): void;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  run(ctx: ScenarioContext): Promise<void>;
}

export const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

export function tempDir(parent: string, prefix: string): string {
  mkdirSync(parent, { recursive: true });
  return mkdtempSync(join(parent, `${prefix}-`));
}

export const defaultTmpRoot = (): string => join(tmpdir(), 'matview-bench');

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** Percentile of sorted numbers (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

export interface Distribution {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export function distribution(values: ArrayLike<number>): Distribution {
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length === 0 ? NaN : (sorted[sorted.length - 1] ?? NaN),
    mean: sorted.length === 0 ? NaN : sum / sorted.length,
  };
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

export const round = (x: number, digits = 2): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

/** Seeded PRNG (mulberry32), shared with the demo generator, so a run can be replayed from its seed. */
import { mulberry32 as prng } from '../../src/demo/generator.js';

export { prng };

/**
 * Zipf sampler over ranks 0..n-1 (P(rank k) ∝ 1/(k+1)^s), by inverse CDF with binary search. Ranks are
 * mapped to user numbers through a fixed permutation, so the hot users are spread over the key space
 * (like real ids) rather than being the smallest keys.
 */
export function zipf(n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / Math.pow(k + 1, s);
  for (let k = 0; k < n; k++) cdf[k] = (cdf[k] ?? 0) / sum;
  // A multiplier coprime with n spreads ranks over 0..n-1.
  const step = 2_654_435_761 % n || 1;
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cdf[mid] ?? 1) < u) lo = mid + 1;
      else hi = mid;
    }
    return Number((BigInt(lo) * BigInt(step)) % BigInt(n));
  };
}

/** Polls `check` until it returns true, at most `timeoutMs`; returns whether it did. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 20,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(everyMs);
  }
  return check();
}

export const ms = (nanoseconds: bigint): number => Number(nanoseconds) / 1e6;

/** Kills `child` if this process exits first; the hook goes away with the child (no listener piles up). */
export function killOnExit(child: ChildProcess): void {
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
}
