/**
 * KAFKA_SSL* and KAFKA_SASL* (README "Secured clusters"): after config.ts has checked each variable's form,
 * this checks that they make sense together, reads the files they name (certificates, keys, `_FILE`
 * secrets, as Kubernetes mounts them), and proves the TLS material loads, so a wrong path, a key that does
 * not match its certificate or a password set twice stops the process at start with one line, instead of
 * failing every connection later. Secrets are wrapped (secret.ts) and never quoted in a message.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { KafkaSasl, KafkaSecurity, KafkaTls, SaslMechanism } from '../feed/kafka-security.js';
import { Secret } from './secret.js';

/** The variables this module reads, as config.ts validated them. */
export interface KafkaSecurityEnv {
  readonly KAFKA_SSL: boolean;
  readonly KAFKA_SSL_CA_FILE?: string | undefined;
  readonly KAFKA_SSL_CERT_FILE?: string | undefined;
  readonly KAFKA_SSL_KEY_FILE?: string | undefined;
  readonly KAFKA_SSL_REJECT_UNAUTHORIZED: boolean;
  readonly KAFKA_SASL_MECHANISM?: SaslMechanism | undefined;
  readonly KAFKA_SASL_USERNAME?: string | undefined;
  readonly KAFKA_SASL_USERNAME_FILE?: string | undefined;
  readonly KAFKA_SASL_PASSWORD?: string | undefined;
  readonly KAFKA_SASL_PASSWORD_FILE?: string | undefined;
  readonly KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND?: string | undefined;
  readonly KAFKA_SASL_OAUTHBEARER_TOKEN_FILE?: string | undefined;
}

/** Builds the security settings, or returns every problem found (one sentence each, no secret in any). */
export function kafkaSecurityFrom(
  env: KafkaSecurityEnv,
  /** Which variables were set explicitly (a default `true` must not count as "set"). */
  set: (name: string) => boolean,
): { security: KafkaSecurity; problems: string[] } {
  const problems: string[] = [];
  const tls = tlsFrom(env, set, problems);
  const sasl = saslFrom(env, problems);
  return { security: { tls, sasl }, problems };
}

function readText(variable: string, path: string, problems: string[]): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    problems.push(
      `${variable}=${JSON.stringify(path)} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
    return undefined;
  }
}

function tlsFrom(
  env: KafkaSecurityEnv,
  set: (name: string) => boolean,
  problems: string[],
): KafkaTls | undefined {
  const fileVars = [
    'KAFKA_SSL_CA_FILE',
    'KAFKA_SSL_CERT_FILE',
    'KAFKA_SSL_KEY_FILE',
    'KAFKA_SSL_REJECT_UNAUTHORIZED',
  ];
  if (!env.KAFKA_SSL) {
    for (const name of fileVars)
      if (set(name))
        problems.push(`${name} is set but KAFKA_SSL is not "true": set KAFKA_SSL=true to connect with TLS`);
    return undefined;
  }
  if ((env.KAFKA_SSL_CERT_FILE === undefined) !== (env.KAFKA_SSL_KEY_FILE === undefined))
    problems.push(
      'KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (mutual TLS needs the certificate and its key)',
    );
  const ca =
    env.KAFKA_SSL_CA_FILE === undefined
      ? undefined
      : readText('KAFKA_SSL_CA_FILE', env.KAFKA_SSL_CA_FILE, problems);
  const cert =
    env.KAFKA_SSL_CERT_FILE === undefined
      ? undefined
      : readText('KAFKA_SSL_CERT_FILE', env.KAFKA_SSL_CERT_FILE, problems);
  const key =
    env.KAFKA_SSL_KEY_FILE === undefined
      ? undefined
      : readText('KAFKA_SSL_KEY_FILE', env.KAFKA_SSL_KEY_FILE, problems);
  // The same parsing Node does for every connection, once now: a file that is not PEM, or a key that does
  // not belong to the certificate, is a configuration error (OpenSSL's reason says which).
  if (ca !== undefined) {
    try {
      createSecureContext({ ca });
      if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate in it');
    } catch (e) {
      problems.push(
        `KAFKA_SSL_CA_FILE=${JSON.stringify(env.KAFKA_SSL_CA_FILE)} does not hold PEM certificates (${(e as Error).message})`,
      );
    }
  }
  if (cert !== undefined && key !== undefined) {
    try {
      createSecureContext({ cert, key });
    } catch (e) {
      problems.push(
        `KAFKA_SSL_CERT_FILE=${JSON.stringify(env.KAFKA_SSL_CERT_FILE)} and KAFKA_SSL_KEY_FILE=${JSON.stringify(env.KAFKA_SSL_KEY_FILE)} ` +
          `are not a PEM certificate and its unencrypted private key (${(e as Error).message})`,
      );
    }
  }
  return {
    ca,
    cert,
    key: key === undefined ? undefined : new Secret(key),
    rejectUnauthorized: env.KAFKA_SSL_REJECT_UNAUTHORIZED,
  };
}

/** A value from `NAME` or from the file `NAME_FILE` (one of them), its trailing newline dropped. */
function valueOrFile(
  name: string,
  value: string | undefined,
  file: string | undefined,
  mechanism: string,
  problems: string[],
): string | undefined {
  if (value !== undefined && file !== undefined) {
    problems.push(`${name} and ${name}_FILE are both set: set one of them`);
    return undefined;
  }
  if (value === undefined && file === undefined) {
    problems.push(`KAFKA_SASL_MECHANISM=${mechanism} needs ${name} (or ${name}_FILE)`);
    return undefined;
  }
  if (value !== undefined) return value;
  const text = readText(`${name}_FILE`, file!, problems);
  if (text === undefined) return undefined;
  // Kubernetes writes secrets as they are; `echo secret > file` adds a newline that is not part of them.
  const trimmed = text.replace(/\r?\n$/, '');
  if (trimmed === '') problems.push(`${name}_FILE=${JSON.stringify(file)} is empty`);
  return trimmed === '' ? undefined : trimmed;
}

function saslFrom(env: KafkaSecurityEnv, problems: string[]): KafkaSasl | undefined {
  const credentials = [
    'KAFKA_SASL_USERNAME',
    'KAFKA_SASL_USERNAME_FILE',
    'KAFKA_SASL_PASSWORD',
    'KAFKA_SASL_PASSWORD_FILE',
  ] as const;
  const tokens = ['KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND', 'KAFKA_SASL_OAUTHBEARER_TOKEN_FILE'] as const;
  const mechanism = env.KAFKA_SASL_MECHANISM;
  if (mechanism === undefined) {
    for (const name of [...credentials, ...tokens])
      if (env[name] !== undefined) problems.push(`${name} is set but KAFKA_SASL_MECHANISM is not`);
    return undefined;
  }
  if (mechanism === 'oauthbearer') {
    for (const name of credentials)
      if (env[name] !== undefined)
        problems.push(`${name} does not apply to KAFKA_SASL_MECHANISM=oauthbearer (it takes a token)`);
    const command = env.KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND;
    const file = env.KAFKA_SASL_OAUTHBEARER_TOKEN_FILE;
    if ((command === undefined) === (file === undefined)) {
      problems.push(
        'KAFKA_SASL_MECHANISM=oauthbearer needs exactly one of KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND and KAFKA_SASL_OAUTHBEARER_TOKEN_FILE',
      );
      return undefined;
    }
    if (file !== undefined) {
      // Read now only to fail fast; the token is read again whenever it is due for a refresh.
      if (readText('KAFKA_SASL_OAUTHBEARER_TOKEN_FILE', file, problems) === undefined) return undefined;
      return { mechanism, token: { file } };
    }
    return { mechanism, token: { command: new Secret(command!) } };
  }
  for (const name of tokens)
    if (env[name] !== undefined) problems.push(`${name} only applies to KAFKA_SASL_MECHANISM=oauthbearer`);
  const username = valueOrFile(
    'KAFKA_SASL_USERNAME',
    env.KAFKA_SASL_USERNAME,
    env.KAFKA_SASL_USERNAME_FILE,
    mechanism,
    problems,
  );
  const password = valueOrFile(
    'KAFKA_SASL_PASSWORD',
    env.KAFKA_SASL_PASSWORD,
    env.KAFKA_SASL_PASSWORD_FILE,
    mechanism,
    problems,
  );
  if (username === undefined || password === undefined) return undefined;
  return { mechanism, username, password: new Secret(password) };
}
