/**
 * KAFKA_SSL* and KAFKA_SASL* validation (src/ops/kafka-security-config.ts through loadConfig): what they
 * build, and one sentence per mistake, none quoting a secret.
 */
import { inspect } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/ops/config.js';
import { Secret } from '../../src/ops/secret.js';
import { makeTestCerts, type TestCerts } from '../utils/certs.js';
import { tempDir } from '../utils/tmp.js';

let certs: TestCerts;
beforeAll(() => {
  certs = makeTestCerts();
});

const SECRET = 'hunter2-but-longer-0x5eed';
const security = (env: Record<string, string>) =>
  loadConfig({ KAFKA_BROKERS: 'kafka:9093', ...env }).kafka!.security;
const file = (content: string) => {
  const path = join(tempDir('matview-cfg-'), 'f');
  writeFileSync(path, content);
  return path;
};

describe('Kafka security configuration', () => {
  it('should default to plaintext without authentication', () => {
    expect(security({})).toEqual({ tls: undefined, sasl: undefined });
  });

  it('should read the CA, client certificate and key, and keep the key out of every printout', () => {
    const s = security({
      KAFKA_SSL: 'true',
      KAFKA_SSL_CA_FILE: certs.caFile,
      KAFKA_SSL_CERT_FILE: certs.clientCertFile,
      KAFKA_SSL_KEY_FILE: certs.clientKeyFile,
    });
    expect(s.tls?.ca).toBe(certs.ca);
    expect(s.tls?.rejectUnauthorized).toBe(true);
    expect(s.tls?.key).toBeInstanceOf(Secret);
    expect(s.tls?.key?.reveal()).toMatch(/PRIVATE KEY/);
    for (const shown of [JSON.stringify(s), inspect(s, { depth: 5 }), `${String(s.tls?.key)}`])
      expect(shown).not.toMatch(/PRIVATE KEY/);
  });

  it('should take SASL credentials from variables or files (a trailing newline is not part of them)', () => {
    expect(
      security({
        KAFKA_SASL_MECHANISM: 'scram-sha-512',
        KAFKA_SASL_USERNAME_FILE: file('svc-matview\n'),
        KAFKA_SASL_PASSWORD_FILE: file(`${SECRET}\n`),
      }).sasl,
    ).toMatchObject({ mechanism: 'scram-sha-512', username: 'svc-matview' });
    const s = security({
      KAFKA_SASL_MECHANISM: 'plain',
      KAFKA_SASL_USERNAME: 'u',
      KAFKA_SASL_PASSWORD: SECRET,
    });
    expect(s.sasl?.mechanism === 'plain' && s.sasl.password.reveal()).toBe(SECRET);
    expect(JSON.stringify(s)).not.toContain(SECRET);
    expect(
      inspect(
        loadConfig({
          KAFKA_BROKERS: 'k:1',
          KAFKA_SASL_MECHANISM: 'plain',
          KAFKA_SASL_USERNAME: 'u',
          KAFKA_SASL_PASSWORD: SECRET,
        }),
        { depth: 10 },
      ),
    ).not.toContain(SECRET);
  });

  it('should take an OAUTHBEARER token command or file', () => {
    const tokenFile = file('tok');
    expect(
      security({ KAFKA_SASL_MECHANISM: 'oauthbearer', KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: tokenFile }).sasl,
    ).toEqual({
      mechanism: 'oauthbearer',
      token: { file: tokenFile },
    });
    const s = security({
      KAFKA_SASL_MECHANISM: 'oauthbearer',
      KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND: `get-token --secret ${SECRET}`,
    });
    expect(JSON.stringify(s)).not.toContain(SECRET);
  });

  it.each([
    [
      { KAFKA_SSL_CA_FILE: '/ca.pem' },
      'KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not "true": set KAFKA_SSL=true to connect with TLS',
    ],
    [
      { KAFKA_SSL_REJECT_UNAUTHORIZED: 'false' },
      'KAFKA_SSL_REJECT_UNAUTHORIZED is set but KAFKA_SSL is not "true"',
    ],
    [
      { KAFKA_SSL: 'true', KAFKA_SSL_CERT_FILE: '/c.pem' },
      'KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together',
    ],
    [
      { KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: '/nonexistent/ca.pem' },
      'KAFKA_SSL_CA_FILE="/nonexistent/ca.pem" cannot be read (ENOENT)',
    ],
    [{ KAFKA_SSL: 'yes' }, 'KAFKA_SSL="yes"'],
    [
      { KAFKA_SASL_MECHANISM: 'gssapi' },
      'KAFKA_SASL_MECHANISM="gssapi" must be "plain", "scram-sha-256", "scram-sha-512" or "oauthbearer"',
    ],
    [
      { KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_PASSWORD: SECRET },
      'KAFKA_SASL_MECHANISM=plain needs KAFKA_SASL_USERNAME (or KAFKA_SASL_USERNAME_FILE)',
    ],
    [
      {
        KAFKA_SASL_MECHANISM: 'plain',
        KAFKA_SASL_USERNAME: 'u',
        KAFKA_SASL_PASSWORD: SECRET,
        KAFKA_SASL_PASSWORD_FILE: '/p',
      },
      'KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set: set one of them',
    ],
    [{ KAFKA_SASL_PASSWORD: SECRET }, 'KAFKA_SASL_PASSWORD is set but KAFKA_SASL_MECHANISM is not'],
    [
      { KAFKA_SASL_MECHANISM: 'oauthbearer' },
      'KAFKA_SASL_MECHANISM=oauthbearer needs exactly one of KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND and KAFKA_SASL_OAUTHBEARER_TOKEN_FILE',
    ],
    [
      {
        KAFKA_SASL_MECHANISM: 'oauthbearer',
        KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND: 'x',
        KAFKA_SASL_PASSWORD: SECRET,
      },
      'KAFKA_SASL_PASSWORD does not apply to KAFKA_SASL_MECHANISM=oauthbearer',
    ],
    [
      {
        KAFKA_SASL_MECHANISM: 'scram-sha-256',
        KAFKA_SASL_USERNAME: 'u',
        KAFKA_SASL_PASSWORD: SECRET,
        KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: '/t',
      },
      'KAFKA_SASL_OAUTHBEARER_TOKEN_FILE only applies to KAFKA_SASL_MECHANISM=oauthbearer',
    ],
  ])('should refuse %j with one sentence, never quoting a secret', (env, message) => {
    let error: unknown;
    try {
      loadConfig({ KAFKA_BROKERS: 'kafka:9093', ...env });
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).not.toContain(SECRET);
  });

  it('should refuse files that are not PEM, a key that does not match its certificate, and an empty password file', () => {
    const attempt = (env: Record<string, string>) => {
      try {
        loadConfig({ KAFKA_BROKERS: 'kafka:9093', ...env });
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(attempt({ KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: file('not a certificate') })).toMatch(
      /KAFKA_SSL_CA_FILE=".*" does not hold PEM certificates/,
    );
    const mismatch = attempt({
      KAFKA_SSL: 'true',
      KAFKA_SSL_CERT_FILE: certs.clientCertFile,
      KAFKA_SSL_KEY_FILE: join(certs.dir, 'broker.key'),
    });
    expect(mismatch).toMatch(
      /KAFKA_SSL_CERT_FILE=".*" and KAFKA_SSL_KEY_FILE=".*" are not a PEM certificate and its unencrypted private key \(.*key values mismatch/,
    );
    expect(mismatch).not.toMatch(/PRIVATE KEY/);
    expect(
      attempt({
        KAFKA_SASL_MECHANISM: 'plain',
        KAFKA_SASL_USERNAME: 'u',
        KAFKA_SASL_PASSWORD_FILE: file('\n'),
      }),
    ).toMatch(/KAFKA_SASL_PASSWORD_FILE=".*" is empty/);
  });
});
