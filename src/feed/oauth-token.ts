/**
 * SASL/OAUTHBEARER tokens for kafkajs, from a command (KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND: whatever
 * prints a token, e.g. a cloud CLI or `curl` against the identity provider's token endpoint) or a file
 * (KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: e.g. a Kubernetes projected service-account token, which the kubelet
 * rotates). kafkajs asks for a token each time a connection authenticates, including the
 * re-authentications a broker asks for when the session it granted is about to end (KIP-368); it leaves
 * caching and refreshing to the provider (kafkajs `src/broker/saslAuthenticator/oauthBearer.js`).
 *
 * The provider keeps the token until 80% of its lifetime has passed, then fetches a new one, like the
 * Java client's `sasl.login.refresh.window.factor` (0.8). The lifetime comes from, in order: the JSON
 * `expires_in` of an OAuth 2.0 token response (RFC 6749 §5.1) when the source prints one, or the token's
 * own `exp` claim when it is a JWT (RFC 7519 §4.1.4; read, not verified: the broker verifies). A token
 * whose expiry is unknown is fetched again for every authentication. If a refresh fails while the token
 * in hand is still valid, that one is used (with a warning) and the next authentication tries again.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { KafkaAuthError } from '../errors.js';
import type { Logger } from '../ops/logger.js';
import type { Secret } from '../ops/secret.js';

export type OAuthTokenSource = { readonly command: Secret } | { readonly file: string };

export interface OAuthToken {
  readonly value: string;
  /** Epoch ms at which the token expires; undefined when neither the source nor the token says. */
  readonly expiresAt: number | undefined;
}

/** Share of a token's lifetime after which it is refreshed (Java `sasl.login.refresh.window.factor`). */
export const REFRESH_WINDOW_FACTOR = 0.8;
/** The token command gets this long; past it, authentication fails and is retried with backoff. */
const COMMAND_TIMEOUT_MS = 30_000;

/** The `exp` claim of a JWT in epoch ms, or undefined when `token` is not a JWT with one. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads a token out of what a command printed or a file holds: either the token itself, or an OAuth 2.0
 * token response (`{"access_token": "…", "expires_in": 3600}`). Throws KafkaAuthError, never quoting the
 * text (it is a credential).
 */
export function parseToken(text: string, obtainedAt: number, where: string): OAuthToken {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let body: { access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(trimmed) as typeof body;
    } catch {
      throw new KafkaAuthError(`the OAUTHBEARER token ${where} looks like JSON but does not parse`);
    }
    if (typeof body.access_token !== 'string' || body.access_token === '')
      throw new KafkaAuthError(`the OAUTHBEARER token ${where} is JSON without a string "access_token"`);
    const expiresAt =
      typeof body.expires_in === 'number' && body.expires_in > 0
        ? obtainedAt + body.expires_in * 1000
        : jwtExpiry(body.access_token);
    return { value: body.access_token, expiresAt };
  }
  if (trimmed === '' || /\s/.test(trimmed))
    throw new KafkaAuthError(
      `the OAUTHBEARER token ${where} is ${trimmed === '' ? 'empty' : 'not one token (it contains spaces)'}`,
    );
  return { value: trimmed, expiresAt: jwtExpiry(trimmed) };
}

const run = promisify(execFile);

/** Fetches a fresh token from its source (runs the command / reads the file). */
export async function fetchToken(
  source: OAuthTokenSource,
  now: () => number = Date.now,
): Promise<OAuthToken> {
  if ('file' in source) {
    let text: string;
    try {
      text = await readFile(source.file, 'utf8');
    } catch (cause) {
      throw new KafkaAuthError(
        `could not read the OAUTHBEARER token file ${source.file}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`,
        { cause },
      );
    }
    return parseToken(text, now(), `in ${source.file}`);
  }
  try {
    const { stdout } = await run('/bin/sh', ['-c', source.command.reveal()], {
      timeout: COMMAND_TIMEOUT_MS,
      maxBuffer: 1024 * 1024,
    });
    return parseToken(stdout, now(), 'printed by KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND');
  } catch (cause) {
    if (cause instanceof KafkaAuthError) throw cause;
    // Neither the command line (it may hold a client secret) nor its output (it may hold the token) is
    // quoted: the exit status and the first line of stderr say enough to go and look.
    const failure = cause as { code?: unknown; signal?: unknown; stderr?: unknown };
    const status = failure.signal
      ? `was killed (${String(failure.signal)})`
      : `exited with ${String(failure.code)}`;
    const firstLine =
      typeof failure.stderr === 'string' ? failure.stderr.trim().split('\n')[0]?.slice(0, 200) : '';
    throw new KafkaAuthError(
      `KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND ${status}${firstLine ? `: ${firstLine}` : ''}`,
      { cause: new Error(status) },
    );
  }
}

/** True when `token` (obtained at `obtainedAt`) should be replaced at `now`. */
export function dueForRefresh(token: OAuthToken, obtainedAt: number, now: number): boolean {
  if (token.expiresAt === undefined) return true;
  return now >= obtainedAt + REFRESH_WINDOW_FACTOR * (token.expiresAt - obtainedAt);
}

export interface OAuthProviderOptions {
  readonly now?: () => number;
  readonly fetch?: (source: OAuthTokenSource) => Promise<OAuthToken>;
}

/** One provider per token source, so every client of the process shares the token and its refreshes. */
const providers = new WeakMap<OAuthTokenSource, () => Promise<{ value: string }>>();

/** kafkajs' `oauthBearerProvider` for `source` (shared by every client built from the same configuration). */
export function createOAuthBearerProvider(
  source: OAuthTokenSource,
  logger: Logger,
  options: OAuthProviderOptions = {},
): () => Promise<{ value: string }> {
  const shared = providers.get(source);
  if (shared !== undefined && options.now === undefined && options.fetch === undefined) return shared;
  const now = options.now ?? Date.now;
  const get = options.fetch ?? ((s: OAuthTokenSource) => fetchToken(s, now));
  const log = logger.child({ component: 'oauthbearer' });
  let current: { token: OAuthToken; obtainedAt: number } | undefined;
  let refreshing: Promise<{ token: OAuthToken; obtainedAt: number }> | undefined;

  const provider = async (): Promise<{ value: string }> => {
    const at = now();
    if (current !== undefined && !dueForRefresh(current.token, current.obtainedAt, at))
      return { value: current.token.value };
    refreshing ??= (async () => {
      const obtainedAt = now();
      const token = await get(source);
      return { token, obtainedAt };
    })().finally(() => (refreshing = undefined));
    try {
      const fresh = await refreshing;
      if (current === undefined || fresh.token.value !== current.token.value)
        log.info(
          {
            expiresAt:
              fresh.token.expiresAt === undefined ? null : new Date(fresh.token.expiresAt).toISOString(),
          },
          'OAUTHBEARER token obtained',
        );
      current = fresh;
      return { value: fresh.token.value };
    } catch (error) {
      const still = current?.token.expiresAt;
      if (current !== undefined && still !== undefined && at < still) {
        log.warn(
          { err: error, expiresAt: new Date(still).toISOString() },
          'could not refresh the OAUTHBEARER token; using the current one until it expires',
        );
        return { value: current.token.value };
      }
      throw error;
    }
  };
  if (options.now === undefined && options.fetch === undefined) providers.set(source, provider);
  return provider;
}
