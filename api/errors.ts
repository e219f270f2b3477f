/**
 * Deliberate API errors: a GraphQLError carrying one of our codes (and, for request-level errors, the
 * HTTP status Apollo should use). Anything thrown that is not built here (or by graphql-js / Apollo
 * for a client mistake) is masked at the boundary (see `plugins/use-masked-errors.ts`).
 */
import { GraphQLError, type ASTNode } from 'graphql';
import type { ApiErrorCode } from './codes.js';

/**
 * A client-caused GraphQL error with a stable `extensions.code`. `status` becomes the HTTP status when the
 * error rejects the whole request (Apollo reads `extensions.http` and strips it from the response).
 */
export function apiError(
  code: ApiErrorCode,
  message: string,
  options: { status?: number; nodes?: ASTNode | readonly ASTNode[] } = {},
): GraphQLError {
  const extensions: Record<string, unknown> = { code };
  if (options.status !== undefined) extensions['http'] = { status: options.status };
  return new GraphQLError(message, {
    ...(options.nodes === undefined ? {} : { nodes: options.nodes }),
    extensions,
  });
}
