/**
 * The masking boundary (envelop `useMaskedErrors`): a deliberate error keeps its message and
 * `extensions.code`; anything else (a bug, a store failure) reaches the client as "Unexpected error."
 * with code INTERNAL_SERVER_ERROR, and the original goes to the log. Stack traces appear only in
 * development (Apollo `includeStacktraceInErrorResponses`, set from `config.development`).
 *
 * Deliberate means: a GraphQLError whose whole `originalError` chain is GraphQLErrors — those come from
 * graphql-js (syntax, validation, coercion), Apollo (bad request) or `apiError()`.
 */
import type { ApolloServerOptions, BaseContext } from '@apollo/server';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Logger } from '../../src/ops/logger.js';
import { ApiErrorCode, isApiErrorCode } from '../codes.js';
import { isTokenLimitError } from '../limits.js';

/** The message every masked error carries. */
export const MASKED_MESSAGE = 'Unexpected error.';

type FormatError = NonNullable<ApolloServerOptions<BaseContext>['formatError']>;

/** Codes Apollo puts on the errors it wraps, hiding a more specific code underneath. */
const WRAPPER_CODES: ReadonlySet<unknown> = new Set([
  ApiErrorCode.GraphqlValidationFailed,
  ApiErrorCode.GraphqlParseFailed,
]);

/** Our own specific code somewhere in the chain (Apollo re-labels validation errors). */
function ownCode(error: GraphQLError): ApiErrorCode | undefined {
  for (let e: unknown = error; e instanceof GraphQLError; e = e.originalError) {
    const code = e.extensions['code'];
    if (isApiErrorCode(code) && !WRAPPER_CODES.has(code)) return code;
  }
  return undefined;
}

function isDeliberate(error: unknown): error is GraphQLError {
  let e: unknown = error;
  while (e instanceof GraphQLError) {
    if (e.originalError === undefined || e.originalError === null) return true;
    e = e.originalError;
  }
  return false;
}

/** Apollo's `formatError`, masking as described above; `maxTokens` tells the token-limit error apart. */
export function createFormatError(options: {
  logger: Logger;
  development: boolean;
  maxTokens: number;
}): FormatError {
  const { logger, development, maxTokens } = options;
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    if (isDeliberate(error)) {
      let code = ownCode(error);
      if (
        code === undefined &&
        formatted.extensions?.['code'] === ApiErrorCode.GraphqlParseFailed &&
        isTokenLimitError(error, maxTokens)
      ) {
        code = ApiErrorCode.TooManyTokens;
      }
      return code === undefined ? formatted : { ...formatted, extensions: { ...formatted.extensions, code } };
    }
    logger.error({ err: error, path: formatted.path }, 'unexpected error in a GraphQL operation');
    const masked: { -readonly [K in keyof GraphQLFormattedError]: GraphQLFormattedError[K] } = {
      message: MASKED_MESSAGE,
    };
    if (formatted.locations !== undefined) masked.locations = formatted.locations;
    if (formatted.path !== undefined) masked.path = formatted.path;
    const extensions: Record<string, unknown> = { code: ApiErrorCode.InternalServerError };
    if (development) {
      extensions['originalMessage'] = formatted.message;
      if (formatted.extensions?.['stacktrace'] !== undefined)
        extensions['stacktrace'] = formatted.extensions['stacktrace'];
    }
    masked.extensions = extensions;
    return masked;
  };
}
