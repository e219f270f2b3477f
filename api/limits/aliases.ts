/**
 * Maximum aliases per operation (GraphQL Armor `max-aliases`, default 15). Aliases let one request ask
 * for the same field many times (`a1: user(id: "1") a2: user(id: "2") …`); fragments are counted at every
 * spread, or they would be a way around the limit.
 */
import type { ValidationRule } from 'graphql';
import { ApiErrorCode } from '../codes.js';
import { apiError } from '../errors.js';
import { measureSelections, type Measure } from './selection-walk.js';

const ALIASES: Measure = {
  field: (_name, aliased, inner) => (aliased ? 1 : 0) + inner,
  combine: (a, b) => a + b,
};

/** Rejects operations using more than `maxAliases` aliases with TOO_MANY_ALIASES. */
export function createMaxAliasesRule(maxAliases: number): ValidationRule {
  return (context) => ({
    OperationDefinition(operation) {
      const count = measureSelections(operation.selectionSet, (n) => context.getFragment(n), ALIASES);
      if (count > maxAliases) {
        context.reportError(
          apiError(
            ApiErrorCode.TooManyAliases,
            `Operation uses ${count} aliases; the maximum is ${maxAliases}.`,
            {
              status: 400,
              nodes: operation,
            },
          ),
        );
      }
    },
  });
}
