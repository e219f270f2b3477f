/**
 * Maximum length of `ids` arguments (`users(ids:)`, `usersChanged(ids:)`): one request must not turn into
 * an unbounded batch read or an unbounded set of watched users. A literal list is checked during
 * validation; a list passed as a variable can only be checked per request, against the variable values.
 */
import {
  Kind,
  visit,
  type ASTNode,
  type DocumentNode,
  type GraphQLError,
  type ValidationRule,
} from 'graphql';
import { ApiErrorCode } from '../codes.js';
import { apiError } from '../errors.js';

const IDS = 'ids';

function tooManyIds(count: number, maxIds: number, nodes?: ASTNode): GraphQLError {
  const message = `ids has ${count} items; the maximum is ${maxIds}.`;
  return apiError(ApiErrorCode.TooManyIds, message, {
    status: 400,
    ...(nodes === undefined ? {} : { nodes }),
  });
}

/** Validation rule: a literal `ids: [...]` longer than `maxIds` fails with TOO_MANY_IDS. */
export function createMaxIdsRule(maxIds: number): ValidationRule {
  return (context) => ({
    Argument(argument) {
      if (
        argument.name.value === IDS &&
        argument.value.kind === Kind.LIST &&
        argument.value.values.length > maxIds
      ) {
        context.reportError(tooManyIds(argument.value.values.length, maxIds, argument));
      }
    },
  });
}

const variablesByDocument = new WeakMap<DocumentNode, readonly string[]>();

/** Names of the variables passed directly as an `ids` argument anywhere in the document (memoized). */
export function idsVariables(document: DocumentNode): readonly string[] {
  let names = variablesByDocument.get(document);
  if (names === undefined) {
    const found = new Set<string>();
    visit(document, {
      Argument(argument) {
        if (argument.name.value === IDS && argument.value.kind === Kind.VARIABLE)
          found.add(argument.value.name.value);
      },
    });
    names = [...found];
    variablesByDocument.set(document, names);
  }
  return names;
}

/** Per-request half of the limit: the error for the first over-long list variable, or undefined. */
export function checkIdsVariables(
  document: DocumentNode,
  variables: Readonly<Record<string, unknown>> | null | undefined,
  maxIds: number,
): GraphQLError | undefined {
  if (variables == null) return undefined;
  for (const name of idsVariables(document)) {
    const value = variables[name];
    if (Array.isArray(value) && value.length > maxIds) return tooManyIds(value.length, maxIds);
  }
  return undefined;
}
