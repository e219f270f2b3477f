/**
 * Scenario 1, read: `user(id)` and `GET /users/:id` against the alternatives of seed 002, one process per
 * target, all measured in this run on this machine.
 *
 * - Ids are drawn from a Zipf distribution (s = 0.99) over all users; the requests are built once and every
 *   target gets the very same list (GraphQL targets the same POST bodies, REST targets the same GETs).
 * - Fixed rate (1,000 req/s, seed 002's SLA) gives the latency a client sees at that load.
 * - Saturation is measured in interleaved rounds (every target once per round, median over rounds), so
 *   drifting background load hits every target alike; each figure is also given as a ratio to `limit` (bare
 *   node:http, GET or POST to match the target) from the same round.
 * - Server CPU per request comes from the target process itself (`process.cpuUsage()`); for postgres-direct
 *   and redis-view it leaves out the database's own CPU.
 * - Heavy user: only the user with ~1M followers, for postgres-direct against matview.
 */
import {
  distribution,
  median,
  prng,
  round,
  zipf,
  type Scenario,
  type ScenarioContext,
} from '../lib/common.js';
import { HEAVY_USER } from '../lib/dataset.js';
import {
  runFixedRate,
  runLoad,
  startTarget,
  type LoadResult,
  type Request,
  type TargetProcess,
} from '../lib/load.js';
import { buildView, startPostgres, startRedis } from '../lib/peers.js';
import type { TargetKind } from '../lib/serve.js';

const QUERY =
  'query User($id: ID!) { user(id: $id) { userId username name description location webPageUrl joinedDate ' +
  'profileImageUrl backgroundImageUrl tweetCount followingCount followerCount likeCount } }';

interface Target {
  readonly name: string;
  readonly kind: TargetKind;
  readonly method: 'GET' | 'POST';
  /** The `limit` row this target is compared with. */
  readonly base: string;
}

/** The offered rate of the fixed-rate phases (seed 002's SLA load), also the catch-up and rebuild scenarios' reads. */
export const SLA_READ_RATE = 1_000;

/** The 20,000 Zipf(0.99) user ids every `user(id)` load here draws from, over the ids "0" to `users - 1`. */
export function zipfIds(users: number): string[] {
  const draw = zipf(users, 0.99, prng(7));
  return Array.from({ length: 20_000 }, () => String(draw()));
}

/** `user(id)` with seed 002's 13 fields over GraphQL (also what the catch-up and rebuild scenarios read). */
export const post = (id: string): Request => ({
  method: 'POST',
  path: '/graphql',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ query: QUERY, variables: { id } }),
});
const get = (id: string): Request => ({ method: 'GET', path: `/users/${id}` });

export const read: Scenario = {
  name: 'read',
  description: 'user(id) over GraphQL and REST vs bare node:http, Apollo, Postgres and Redis',
  async run(ctx: ScenarioContext) {
    const users = ctx.quick ? 100_000 : 1_000_000;
    const duration = ctx.quick ? 3 : 8;
    const rounds = ctx.quick ? 1 : 3;
    const fixedDuration = ctx.quick ? 4 : 10;
    const connections = 20;

    const viewPath = await buildView(ctx.cache, users, ctx.log);
    const processes = new Map<TargetKind, TargetProcess>();
    ctx.defer(async () => {
      for (const p of processes.values()) await p.stop();
    });
    const start = async (kind: TargetKind, opts: Parameters<typeof startTarget>[1]) => {
      try {
        processes.set(kind, await startTarget(kind, opts));
      } catch (e) {
        ctx.note(`read: ${kind} skipped: ${(e as Error).message}`);
      }
    };
    const versions: Record<string, string> = {};
    let postgresUrl: string | undefined;
    try {
      const peer = await startPostgres(ctx.cache, ctx.tmp, users, ctx.log);
      ctx.defer(() => peer.stop());
      postgresUrl = peer.url;
      versions['postgres'] = peer.version;
    } catch (e) {
      ctx.note(`read: postgres-direct skipped: ${(e as Error).message}`);
    }
    let redisUrl: string | undefined;
    try {
      const peer = await startRedis(users, ctx.log);
      ctx.defer(() => peer.stop());
      redisUrl = peer.url;
      versions['redis'] = peer.version;
    } catch (e) {
      ctx.note(`read: redis-view skipped: ${(e as Error).message}`);
    }
    for (const [peer, version] of Object.entries(versions)) ctx.note(`read: ${peer} ${version}`);
    await start('limit', { users });
    await start('matview', { users, viewPath });
    await start('apollo-default', { users });
    if (postgresUrl !== undefined) await start('postgres-direct', { users, postgresUrl });
    if (redisUrl !== undefined) await start('redis-view', { users, redisUrl });

    const all: Target[] = [
      { name: 'limit GET', kind: 'limit', method: 'GET', base: 'limit GET' },
      { name: 'limit POST', kind: 'limit', method: 'POST', base: 'limit POST' },
      { name: 'matview-rest', kind: 'matview', method: 'GET', base: 'limit GET' },
      { name: 'matview-graphql', kind: 'matview', method: 'POST', base: 'limit POST' },
      { name: 'apollo-default', kind: 'apollo-default', method: 'POST', base: 'limit POST' },
      { name: 'postgres-direct', kind: 'postgres-direct', method: 'GET', base: 'limit GET' },
      { name: 'redis-view', kind: 'redis-view', method: 'POST', base: 'limit POST' },
    ];
    const targets = all.filter((t) => processes.has(t.kind));

    // The same 20,000 Zipf-distributed ids for everyone.
    const ids = zipfIds(users);
    const distinct = new Set(ids).size;
    ctx.log(`read: ${users} users, ${ids.length} Zipf(0.99) requests over ${distinct} distinct ids`);
    const requests = { GET: ids.map(get), POST: ids.map(post) };
    const heavy = { GET: [get(String(HEAVY_USER))], POST: [post(String(HEAVY_USER))] };
    const proc = (t: Target) => processes.get(t.kind)!;

    // Warm-up: JIT, caches (Postgres buffers, page cache of the LMDB file).
    for (const t of targets) await runLoad(proc(t), requests[t.method], { duration: 2, connections });

    // Fixed rate.
    const fixed = new Map<string, LoadResult>();
    for (const t of targets) {
      const r = await runFixedRate(proc(t), requests[t.method], {
        duration: fixedDuration,
        rate: SLA_READ_RATE,
      });
      fixed.set(t.name, r);
      ctx.log(
        `  ${SLA_READ_RATE} req/s ${t.name}: p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} ms, ${r.errors} errors`,
      );
    }

    // Saturation, interleaved rounds.
    const sat = new Map<string, LoadResult[]>(targets.map((t) => [t.name, []]));
    const ratioSamples = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (let round = 0; round < rounds; round++) {
      const thisRound = new Map<string, LoadResult>();
      for (const t of targets) {
        const r = await runLoad(proc(t), requests[t.method], { duration, connections });
        thisRound.set(t.name, r);
        sat.get(t.name)!.push(r);
        ctx.log(`  round ${round + 1} ${t.name}: ${r.rps.toFixed(0)} req/s, p99 ${r.p99.toFixed(2)} ms`);
      }
      for (const t of targets) {
        const base = thisRound.get(t.base)?.rps;
        if (base !== undefined) ratioSamples.get(t.name)!.push(thisRound.get(t.name)!.rps / base);
      }
    }

    const summary = new Map<string, { rps: number; ratio: number; cpu: number }>();
    for (const t of targets) {
      const rs = sat.get(t.name)!;
      const f = fixed.get(t.name)!;
      const baseCpu = median(sat.get(t.base)?.map((r) => r.cpuPerRequest) ?? []);
      const s = {
        rps: median(rs.map((r) => r.rps)),
        ratio: median(ratioSamples.get(t.name)!),
        cpu: median(rs.map((r) => r.cpuPerRequest)),
      };
      summary.set(t.name, s);
      ctx.row(t.name, {
        'sat req/s': round(s.rps, 0),
        'x limit': round(s.ratio),
        'sat p50 ms': round(median(rs.map((r) => r.p50))),
        'sat p99 ms': round(median(rs.map((r) => r.p99))),
        'sat max ms': round(Math.max(...rs.map((r) => r.max))),
        'CPU µs/req': round(s.cpu, 1),
        'CPU x limit': round(baseCpu / s.cpu),
        '1k/s p50 ms': round(f.p50),
        '1k/s p95 ms': round(f.p95),
        '1k/s p99 ms': round(f.p99),
        '1k/s max ms': round(f.max),
        errors: rs.reduce((n, r) => n + r.errors, f.errors),
      });
    }

    // Heavy user: the ~1M-follower user only.
    const heavyTargets = targets.filter((t) =>
      ['postgres-direct', 'matview-rest', 'matview-graphql'].includes(t.name),
    );
    const heavyRps = new Map<string, number>();
    for (const t of heavyTargets) {
      const r = await runLoad(proc(t), heavy[t.method], { duration, connections });
      heavyRps.set(t.name, r.rps);
      ctx.row(`${t.name} heavy user`, {
        'sat req/s': round(r.rps, 0),
        'sat p50 ms': round(r.p50),
        'sat p99 ms': round(r.p99),
        'sat max ms': round(r.max),
        'CPU µs/req': round(r.cpuPerRequest, 1),
        errors: r.errors,
      });
    }
    if (postgresUrl !== undefined) {
      // One heavy-user request alone, no load: what a single caller waits.
      const single: number[] = [];
      const pgTarget = processes.get('postgres-direct');
      for (let i = 0; pgTarget !== undefined && i < 20; i++) {
        const t0 = performance.now();
        await fetch(`${pgTarget.url}/users/${HEAVY_USER}`).then((r) => r.arrayBuffer());
        single.push(performance.now() - t0);
      }
      const d = distribution(single);
      ctx.row('postgres-direct heavy user, one at a time', {
        'p50 ms': round(d.p50),
        'max ms': round(d.max),
      });
    }

    // Targets.
    const rest = summary.get('matview-rest');
    const gql = summary.get('matview-graphql');
    if (rest)
      ctx.check('matview-rest >= 0.8x limit throughput', `${rest.ratio.toFixed(2)}x`, rest.ratio >= 0.8);
    if (gql)
      ctx.check('matview-graphql >= 0.5x limit throughput', `${gql.ratio.toFixed(2)}x`, gql.ratio >= 0.5);
    for (const name of ['matview-rest', 'matview-graphql']) {
      const f = fixed.get(name);
      if (f) ctx.check(`${name} p99 <= 2 ms at 1,000 req/s`, `${f.p99.toFixed(2)} ms`, f.p99 <= 2);
    }
    const pgHeavy = heavyRps.get('postgres-direct');
    for (const name of ['matview-rest', 'matview-graphql']) {
      const mv = heavyRps.get(name);
      if (pgHeavy !== undefined && mv !== undefined) {
        ctx.check(
          `${name} >= 20x postgres-direct on the heavy user`,
          `${(mv / pgHeavy).toFixed(1)}x`,
          mv / pgHeavy >= 20,
        );
      }
    }
    for (const peer of ['redis-view', 'apollo-default']) {
      const p = summary.get(peer);
      if (p && gql)
        ctx.check(`matview-graphql ahead of ${peer}`, `${(gql.rps / p.rps).toFixed(2)}x`, gql.rps > p.rps);
    }
  },
};
