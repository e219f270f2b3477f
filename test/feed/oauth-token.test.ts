/** OAUTHBEARER tokens (src/feed/oauth-token.ts): where the expiry comes from, when a token is refreshed, what a failure says. */
import { describe, expect, it } from 'vitest';
import {
  createOAuthBearerProvider,
  dueForRefresh,
  fetchToken,
  jwtExpiry,
  parseToken,
  type OAuthToken,
} from '../../src/feed/oauth-token.js';
import { silentLogger } from '../../src/ops/logger.js';
import { Secret } from '../../src/ops/secret.js';

const jwt = (claims: object) =>
  [{ alg: 'none' }, claims].map((p) => Buffer.from(JSON.stringify(p)).toString('base64url')).join('.') +
  '.sig';

describe('parseToken', () => {
  it('should read a JWT expiry from its exp claim, and an OAuth token response from expires_in', () => {
    const token = jwt({ exp: 2_000_000_000 });
    expect(parseToken(`${token}\n`, 0, 'x')).toEqual({ value: token, expiresAt: 2_000_000_000_000 });
    expect(parseToken('{"access_token":"abc","expires_in":60}', 1_000, 'x')).toEqual({
      value: 'abc',
      expiresAt: 61_000,
    });
    expect(parseToken('opaque-token', 0, 'x')).toEqual({ value: 'opaque-token', expiresAt: undefined });
    expect(jwtExpiry('a.b')).toBeUndefined();
    expect(jwtExpiry(jwt({ sub: 'no exp' }))).toBeUndefined();
  });

  it.each([
    ['', 'the OAUTHBEARER token in f is empty'],
    ['two words', 'the OAUTHBEARER token in f is not one token (it contains spaces)'],
    ['{"access_token":', 'the OAUTHBEARER token in f looks like JSON but does not parse'],
    ['{"token":"secret-value"}', 'the OAUTHBEARER token in f is JSON without a string "access_token"'],
  ])('should refuse %j without quoting it', (text, message) => {
    expect(() => parseToken(text, 0, 'in f')).toThrow(message);
  });
});

describe('dueForRefresh', () => {
  it('should refresh after 80% of the lifetime, and every time when the expiry is unknown', () => {
    const token: OAuthToken = { value: 't', expiresAt: 10_000 };
    expect(dueForRefresh(token, 0, 7_999)).toBe(false);
    expect(dueForRefresh(token, 0, 8_000)).toBe(true);
    expect(dueForRefresh({ value: 't', expiresAt: undefined }, 0, 0)).toBe(true);
  });
});

describe('the token provider', () => {
  it('should reuse a token until it is due, then fetch a new one; on a failed refresh keep a still valid one', async () => {
    let now = 0;
    const issued: (OAuthToken | Error)[] = [
      { value: 'a', expiresAt: 10_000 },
      new Error('identity provider down'),
      { value: 'b', expiresAt: 30_000 },
      new Error('identity provider down'),
    ];
    let fetches = 0;
    const provider = createOAuthBearerProvider({ file: '/unused' }, silentLogger, {
      now: () => now,
      fetch: async () => {
        const next = issued[fetches++]!;
        if (next instanceof Error) throw next;
        return next;
      },
    });
    expect(await provider()).toEqual({ value: 'a' });
    now = 5_000;
    expect(await provider()).toEqual({ value: 'a' });
    expect(fetches).toBe(1);
    now = 8_500; // due; the refresh fails, 'a' is still valid
    expect(await provider()).toEqual({ value: 'a' });
    expect(await provider()).toEqual({ value: 'b' });
    now = 40_000; // 'b' expired and the refresh fails: authentication must fail
    await expect(provider()).rejects.toThrow('identity provider down');
  });
});

describe('fetchToken', () => {
  it('should run the command and say how it failed without quoting it', async () => {
    expect(
      await fetchToken(
        { command: new Secret(`printf '%s' '{"access_token":"t1","expires_in":10}'`) },
        () => 0,
      ),
    ).toEqual({
      value: 't1',
      expiresAt: 10_000,
    });
    await expect(
      fetchToken({ command: new Secret('echo "401 unauthorized" >&2; exit 7 # --client-secret s3cr3t') }),
    ).rejects.toThrow(/^KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND exited with 7: 401 unauthorized$/);
    await expect(fetchToken({ file: '/nonexistent/token' })).rejects.toThrow(
      'could not read the OAUTHBEARER token file /nonexistent/token: ENOENT',
    );
  });
});
