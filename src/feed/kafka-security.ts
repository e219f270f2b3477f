/**
 * How matview authenticates to Kafka and encrypts the connection: the part of the client options that
 * the consumer, the dead-letter producer, the admin client and the CLI share (KAFKA_SSL*, KAFKA_SASL*,
 * README "Secured clusters"). Values are already read and validated (src/ops/kafka-security-config.ts);
 * secrets stay wrapped until they are handed to kafkajs.
 */
import type { SASLOptions } from 'kafkajs';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from '../ops/logger.js';
import type { Secret } from '../ops/secret.js';
import { createOAuthBearerProvider, type OAuthTokenSource } from './oauth-token.js';

export interface KafkaTls {
  /** PEM of the CAs to trust instead of Node's bundled roots (KAFKA_SSL_CA_FILE); undefined: the bundled roots. */
  readonly ca: string | undefined;
  /** PEM of the client certificate for mutual TLS (KAFKA_SSL_CERT_FILE), with its key. */
  readonly cert: string | undefined;
  readonly key: Secret | undefined;
  /** KAFKA_SSL_REJECT_UNAUTHORIZED: false accepts any server certificate (tests, never production). */
  readonly rejectUnauthorized: boolean;
}

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512' | 'oauthbearer';

export type KafkaSasl =
  | {
      readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
      readonly username: string;
      readonly password: Secret;
    }
  | { readonly mechanism: 'oauthbearer'; readonly token: OAuthTokenSource };

export interface KafkaSecurity {
  /** undefined: plaintext. */
  readonly tls: KafkaTls | undefined;
  /** undefined: no authentication. */
  readonly sasl: KafkaSasl | undefined;
}

export const PLAINTEXT: KafkaSecurity = Object.freeze({ tls: undefined, sasl: undefined });

/** Node's TLS options for kafkajs (`ssl`), or undefined for plaintext. */
export function tlsOptions(tls: KafkaTls | undefined): ConnectionOptions | undefined {
  if (tls === undefined) return undefined;
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key.reveal() }),
  };
}

/**
 * kafkajs' `sasl` option. One object per client: kafkajs caches its authenticator on it. The OAUTHBEARER
 * provider is shared by every connection of the client, so a token is fetched once and refreshed before
 * it expires (src/feed/oauth-token.ts).
 */
export function saslOptions(sasl: KafkaSasl | undefined, logger: Logger): SASLOptions | undefined {
  if (sasl === undefined) return undefined;
  if (sasl.mechanism === 'oauthbearer') {
    return { mechanism: 'oauthbearer', oauthBearerProvider: createOAuthBearerProvider(sasl.token, logger) };
  }
  return { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password.reveal() };
}

/** A short, secret-free description for logs: `SASL_SSL/SCRAM-SHA-512`, `SSL`, `PLAINTEXT`… (Kafka's names). */
export function describeSecurity(security: KafkaSecurity): string {
  const protocol = `${security.sasl === undefined ? '' : 'SASL_'}${security.tls === undefined ? 'PLAINTEXT' : 'SSL'}`;
  return security.sasl === undefined ? protocol : `${protocol}/${security.sasl.mechanism.toUpperCase()}`;
}
