/**
 * The fast read path for POST /graphql (DESIGN.md "api"; the hard performance goal of issue 4).
 * A bounded cache (approximate LRU) keyed by the query text remembers, per document, what the first sight found out:
 * parsed with the token limit, validated with the same rules as Apollo (api/limits.ts), and — for a plain
 * query over `user`/`users`/`feedStatus`/`topUsers`/`totals` — compiled into a plan that reads the store
 * synchronously and writes the response JSON itself (fast-path/compile.ts). Everything else (and every request a plan cannot answer
 * exactly) goes through Apollo; the cache then just says "not ours" without parsing again.
 */
import { parse, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { FeedMonitor } from './feed-monitor.js';
import type { ViewReader } from '../src/store/types.js';
import type { AsOfSource } from './consistency/as-of.js';
import { compileFastPlan, type FastPlan, type Variables } from './fast-path/compile.js';
import { ClockCache } from './fast-path/clock-cache.js';
import type { ValidateOperation } from './limits.js';

export type { FastPlan, Variables } from './fast-path/compile.js';

/**
 * Bounds of a cache of documents keyed by query text (the fast path's plans, the WebSocket layer's parsed
 * subscriptions): distinct documents remembered, and the longest query text worth remembering.
 */
export const DOCUMENT_CACHE_ENTRIES = 1000;
export const MAX_CACHED_QUERY_LENGTH = 4096;
/** Marks a document the fast path does not serve (invalid, or not a plain query over the fields above). */
const NOT_OURS = null;

/** What the fast path needs: the schema and validation Apollo uses, and the store it reads. */
export interface FastPathOptions {
  readonly schema: GraphQLSchema;
  readonly reader: ViewReader;
  /** Answers `feedStatus`; without it that field goes through Apollo. */
  readonly feed?: Pick<FeedMonitor, 'snapshot'>;
  readonly validate: ValidateOperation;
  readonly maxTokens: number;
  readonly maxIds: number;
  /** Writes `extensions.asOf` into every response, as Apollo's `useAsOf` plugin does; without it, none. */
  readonly asOf?: Pick<AsOfSource, 'json'>;
}

/** The fast path of one server; `createGraphqlRoute` asks it first for every plain JSON POST. */
export interface FastPath {
  /**
   * The plan for this request's query and operationName, or undefined when Apollo must answer.
   * The caller still checks the plan's `run` result, which is undefined when Apollo must answer after all.
   */
  planFor(query: string, operationName: unknown): FastPlan | undefined;
}

/** Builds the fast path of one server (plans are bound to its reader). */
export function createFastPath(options: FastPathOptions): FastPath {
  const { schema, reader, validate, maxTokens, maxIds } = options;
  const plans = new ClockCache<string, FastPlan | typeof NOT_OURS>(DOCUMENT_CACHE_ENTRIES);

  const firstSight = (query: string): FastPlan | typeof NOT_OURS => {
    let document: DocumentNode;
    try {
      document = parse(query, { maxTokens, noLocation: true });
    } catch {
      return NOT_OURS;
    }
    if (validate(document).length > 0) return NOT_OURS;
    return compileFastPlan(schema, document, reader, maxIds, options.feed, options.asOf?.json) ?? NOT_OURS;
  };

  return {
    planFor(query, operationName) {
      if (query.length > MAX_CACHED_QUERY_LENGTH) return undefined;
      let plan = plans.get(query);
      if (plan === undefined) {
        plan = firstSight(query);
        plans.set(query, plan);
      }
      if (plan === NOT_OURS) return undefined;
      // graphql-js GetOperation: a given name must match the (single) operation's name.
      if (operationName !== undefined && operationName !== null && operationName !== plan.operationName)
        return undefined;
      return plan;
    },
  };
}

/** True when `variables` is what Apollo accepts for a POST body: absent, null or a plain object. */
export function isVariablesRecord(variables: unknown): variables is Variables | null | undefined {
  return (
    variables === undefined ||
    variables === null ||
    (typeof variables === 'object' && !Array.isArray(variables))
  );
}
