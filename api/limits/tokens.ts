/**
 * Maximum lexical tokens per document. graphql-js enforces it while parsing (`parse(source, { maxTokens })`,
 * graphql-js `language/parser.ts`), but reports it as an ordinary syntax error. To give clients a code of
 * its own without matching message text, we check the fact instead: the error sits exactly at the start
 * of the token after the last allowed one.
 */
import { Lexer, Source, TokenKind, type GraphQLError } from 'graphql';

/** True when `error` is the parser's "more than maxTokens tokens" abort for this limit. */
export function isTokenLimitError(error: GraphQLError, maxTokens: number): boolean {
  const position = error.positions?.[0];
  const body = error.source?.body;
  if (position === undefined || body === undefined) return false;
  const lexer = new Lexer(new Source(body));
  try {
    // The parser counts every non-EOF token it advances over (comments are skipped by the lexer).
    for (let count = 0; count <= maxTokens; count++) {
      const token = lexer.advance();
      if (token.kind === TokenKind.EOF) return false;
      if (count === maxTokens) return token.start === position;
    }
  } catch {
    // A lexical error before the limit: this is a plain syntax error.
  }
  return false;
}
