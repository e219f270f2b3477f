/**
 * Maximum query depth (GraphQL Armor `max-depth`, default 6). Root fields are depth 1. Introspection
 * fields (`__schema`, `__type`, `__typename`) are not counted, as in Armor's `ignoreIntrospection`, so
 * tools that introspect keep working when introspection is enabled.
 */
import type { ValidationRule } from 'graphql';
import { ApiErrorCode } from '../codes.js';
import { apiError } from '../errors.js';
import { measureSelections, type Measure } from './selection-walk.js';

const DEPTH: Measure = {
  field: (name, _aliased, inner) => (name.startsWith('__') ? 0 : 1 + inner),
  combine: (a, b) => (a > b ? a : b),
};

/** Rejects operations whose fields nest deeper than `maxDepth` with QUERY_TOO_DEEP. */
export function createMaxDepthRule(maxDepth: number): ValidationRule {
  return (context) => ({
    OperationDefinition(operation) {
      const depth = measureSelections(operation.selectionSet, (n) => context.getFragment(n), DEPTH);
      if (depth > maxDepth) {
        context.reportError(
          apiError(ApiErrorCode.QueryTooDeep, `Query depth ${depth} exceeds the maximum of ${maxDepth}.`, {
            status: 400,
            nodes: operation,
          }),
        );
      }
    },
  });
}
