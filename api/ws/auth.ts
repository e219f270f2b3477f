/**
 * Optional bearer-token check for the subscription socket. The token travels in `connection_init`'s payload
 * (`connectionParams.authorization`), because browsers cannot set headers on a WebSocket handshake
 * (graphql-ws recipes: "Server usage with ws and custom auth handling"). Off when no tokens are configured.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** Decides whether a `connection_init` payload carries an accepted token. */
export type TokenCheck = (connectionParams: Readonly<Record<string, unknown>> | undefined) => boolean;

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * Builds the check for `WS_AUTH_TOKENS`, or undefined when the list is empty (auth off). Accepts
 * `authorization: "Bearer <token>"` (scheme case-insensitive, RFC 6750 §2.1) or the bare token. Tokens are
 * compared as SHA-256 digests with `timingSafeEqual`, so the time taken says nothing about a near miss.
 */
export function createTokenCheck(tokens: readonly string[]): TokenCheck | undefined {
  if (tokens.length === 0) return undefined;
  const accepted = tokens.map(digest);
  return (connectionParams) => {
    const header = connectionParams?.['authorization'];
    if (typeof header !== 'string') return false;
    const token = /^bearer\s+/i.test(header) ? header.replace(/^bearer\s+/i, '') : header;
    const presented = digest(token.trim());
    let ok = false;
    // Check every token, no early exit: the position of a match is not observable either.
    for (const candidate of accepted) ok = timingSafeEqual(candidate, presented) || ok;
    return ok;
  };
}
