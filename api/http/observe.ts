/**
 * `matview_graphql_request_seconds{operation}` without letting clients mint label values: operation
 * names come from requests, so only well-formed names get a label of their own, and only the first
 * MAX_NAMES of them; the rest share `other`. Label children are cached because prom-client hashes the
 * label set on every `labels()` call.
 */
import type { Metrics } from '../../src/ops/metrics.js';

const MAX_NAMES = 100;
const NAME = /^[_A-Za-z][_0-9A-Za-z]{0,63}$/;
const ANONYMOUS = 'anonymous';
const OTHER = 'other';

type Histogram = Metrics['graphqlSeconds'];
type Child = ReturnType<Histogram['labels']>;

/** Records one GraphQL request's duration under its (bounded) operation label. */
export interface RequestTimer {
  /** `startedAt` is a `performance.now()` reading (a double: no BigInt allocated per request). */
  observe(operationName: unknown, startedAt: number): void;
}

/** Builds the timer for one server's histogram. */
export function createRequestTimer(histogram: Histogram): RequestTimer {
  const children = new Map<string, Child>();
  const child = (label: string): Child => {
    let found = children.get(label);
    if (found === undefined) {
      found = histogram.labels(label);
      children.set(label, found);
    }
    return found;
  };
  const childFor = (name: unknown): Child => {
    if (typeof name !== 'string' || name === '') return child(ANONYMOUS);
    const known = children.get(name);
    if (known !== undefined) return known;
    return NAME.test(name) && children.size < MAX_NAMES ? child(name) : child(OTHER);
  };
  return {
    observe(operationName, startedAt) {
      childFor(operationName).observe((performance.now() - startedAt) / 1000);
    },
  };
}
