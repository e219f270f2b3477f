/**
 * Request limits (GraphQL Armor's defaults, DESIGN.md "Reference points"), one place for every transport:
 * Apollo gets `limitRules` as extra validation rules plus the per-request `ids` check (plugins/use-limits),
 * the fast path validates with the same rules, and the WebSocket layer calls `validateOperation` from
 * graphql-ws `onSubscribe`. Body size and batch size are HTTP concerns (api/http/graphql-route.ts); the
 * token limit is the parser's `maxTokens` option.
 */
import { NoSchemaIntrospectionCustomRule, specifiedRules, validate } from 'graphql';
import type { DocumentNode, GraphQLError, GraphQLSchema, ValidationRule } from 'graphql';
import type { Config } from '../src/ops/config.js';
import { createMaxAliasesRule } from './limits/aliases.js';
import { createMaxDepthRule } from './limits/depth.js';
import { checkIdsVariables, createMaxIdsRule } from './limits/ids.js';

export { checkIdsVariables, idsVariables } from './limits/ids.js';
export { isTokenLimitError } from './limits/tokens.js';

/** The configured limits (src/ops/config.ts `limits`). */
export type Limits = Config['limits'];

/** Our validation rules on top of graphql-js' `specifiedRules`: depth, aliases, literal `ids` length. */
export function limitRules(limits: Limits): ValidationRule[] {
  return [
    createMaxDepthRule(limits.maxDepth),
    createMaxAliasesRule(limits.maxAliases),
    createMaxIdsRule(limits.maxIds),
  ];
}

/**
 * Validates a parsed operation exactly as the HTTP endpoint does: GraphQL spec validation, the limit rules,
 * no introspection unless enabled, then the `ids` variables of this request. Empty array: go ahead.
 */
export type ValidateOperation = (
  document: DocumentNode,
  variables?: Readonly<Record<string, unknown>> | null,
) => GraphQLError[];

/** Builds `validateOperation` for a schema and configuration (reused by the subscription layer). */
export function createOperationValidator(
  schema: GraphQLSchema,
  config: Pick<Config, 'limits' | 'introspection'>,
): ValidateOperation {
  const rules = [
    ...specifiedRules,
    ...limitRules(config.limits),
    ...(config.introspection ? [] : [NoSchemaIntrospectionCustomRule]),
  ];
  // Validation depends on the document alone: callers that reuse parsed documents (the WebSocket layer's
  // cache) validate each one once. Keyed weakly, so a forgotten document takes its entry with it.
  const validated = new WeakMap<DocumentNode, readonly GraphQLError[]>();
  return (document, variables) => {
    let errors = validated.get(document);
    if (errors === undefined) validated.set(document, (errors = validate(schema, document, rules)));
    if (errors.length > 0) return [...errors];
    const idsError = checkIdsVariables(document, variables, config.limits.maxIds);
    return idsError === undefined ? [] : [idsError];
  };
}
