/**
 * What a kafkajs error means for an operator: authentication, TLS, an unreachable cluster, missing
 * permissions, or a routine protocol answer (a leader moved). Classified by kafkajs' error `name`, the
 * protocol error `type` (`src/protocol/error.js`) and Node's TLS error `code`, never by message text.
 */
import {
  KafkaAuthError,
  KafkaNotAuthorizedError,
  KafkaRequestError,
  KafkaTlsError,
  KafkaUnreachableError,
  isMatviewError,
  type MatviewError,
} from '../errors.js';

/** The `cause` label of `matview_kafka_failures_total`. */
export type KafkaFailureCause = 'authentication' | 'tls' | 'connection' | 'authorization' | 'protocol';

/** kafkajs wraps errors (KafkaJSNumberOfRetriesExceeded → KafkaJSNonRetriableError → … → the original). */
export function errorChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    chain.push(e);
    const next = (e as { cause?: unknown; originalError?: unknown }).cause;
    e = next === e ? undefined : next;
  }
  return chain;
}

const field = (e: unknown, name: string): unknown =>
  typeof e === 'object' && e !== null ? (e as Record<string, unknown>)[name] : undefined;

/** Protocol error types (kafkajs `src/protocol/error.js`) that mean the credentials were refused. */
const AUTH_TYPES = new Set([
  'SASL_AUTHENTICATION_FAILED',
  'ILLEGAL_SASL_STATE',
  'UNSUPPORTED_SASL_MECHANISM',
]);
/** Protocol error types that mean an ACL refused the operation. */
const AUTHORIZATION_TYPES = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
]);
/** kafkajs errors that mean no answer from a broker. */
const CONNECTION_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSLockTimeout',
  'KafkaJSNoBrokerAvailableError',
]);
/**
 * Node's certificate verification codes (OpenSSL `X509_V_ERR_*` without the prefix, docs of `tls`
 * "X509 certificate error codes"), plus Node's own TLS and OpenSSL error codes.
 */
const X509_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'OUT_OF_MEM',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);
const isTlsCode = (code: unknown): boolean =>
  typeof code === 'string' &&
  (X509_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_'));

/** Classifies any error of the Kafka client (or one of ours about Kafka). */
export function classifyKafkaError(error: unknown): KafkaFailureCause {
  const chain = errorChain(error);
  for (const e of chain) {
    if (isMatviewError(e)) {
      if (e.code === 'MV_ERR_KAFKA_AUTH') return 'authentication';
      if (e.code === 'MV_ERR_KAFKA_TLS') return 'tls';
      if (e.code === 'MV_ERR_KAFKA_UNREACHABLE') return 'connection';
      if (e.code === 'MV_ERR_KAFKA_NOT_AUTHORIZED') return 'authorization';
    }
    const name = field(e, 'name');
    const type = field(e, 'type');
    if (name === 'KafkaJSSASLAuthenticationError' || AUTH_TYPES.has(String(type))) return 'authentication';
    if (isTlsCode(field(e, 'code'))) return 'tls';
    if (AUTHORIZATION_TYPES.has(String(type))) return 'authorization';
  }
  for (const e of chain) if (CONNECTION_NAMES.has(String(field(e, 'name')))) return 'connection';
  return 'protocol';
}

/** kafkajs errors that only wrap another one: their names say nothing about what went wrong. */
const WRAPPERS = new Set(['KafkaJSNumberOfRetriesExceeded', 'KafkaJSNonRetriableError']);

/** OpenSSL's reason inside Node's message (`…:SSL routines:<function>:<reason>:<file>:<line>:…`). */
const OPENSSL_REASON = /SSL routines:[^:]*:([^:]+):/;

/**
 * What went wrong in kafkajs' (and Node's) own words: the innermost error's message, without kafkajs'
 * wrapper names and OpenSSL's file and line noise, with Node's error code when there is one
 * (`unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`). Holds no secret:
 * kafkajs' messages never quote credentials.
 */
export function describeKafkaError(error: unknown): string {
  const chain = errorChain(error);
  const meaningful = chain.filter((e) => !WRAPPERS.has(String(field(e, 'name'))));
  const inner = meaningful[meaningful.length - 1] ?? chain[chain.length - 1];
  const top = meaningful[0] ?? inner;
  const text = (e: unknown): string => {
    if (!(e instanceof Error)) return String(e);
    const openssl = OPENSSL_REASON.exec(e.message);
    const message = openssl?.[1] ?? e.message.trim();
    const code = field(e, 'code');
    const name = e.name.startsWith('KafkaJS') ? '' : `${e.name}: `;
    return `${name}${message}${typeof code === 'string' && !message.includes(code) ? ` (${code})` : ''}`;
  };
  const inside = text(inner);
  const outside = text(top);
  return top === inner || outside.includes(inside) ? outside : `${outside} (caused by ${inside})`;
}

/** What an operator should check for each cause (the end of the log line and of `feedStatus.reason`). */
const ADVICE: Record<KafkaFailureCause, string> = {
  authentication:
    'check KAFKA_SASL_MECHANISM and the credentials (KAFKA_SASL_USERNAME/PASSWORD, their _FILE variants, or the OAUTHBEARER token source)',
  tls: "check KAFKA_SSL_CA_FILE (the CA that signed the brokers' certificates), the broker host names, and KAFKA_SSL_CERT_FILE/KEY_FILE when the listener requires client certificates",
  connection:
    'check KAFKA_BROKERS, the network, and that KAFKA_SSL and KAFKA_SASL_MECHANISM match the listener (a TLS or SASL listener closes connections that do not speak it)',
  authorization: 'grant the ACLs listed in SECURITY.md "Kafka permissions"',
  protocol: 'see the cause',
};

const TITLE: Record<KafkaFailureCause, string> = {
  authentication: 'Kafka authentication failed',
  tls: 'TLS handshake with a Kafka broker failed',
  connection: 'Kafka brokers unreachable',
  authorization: 'Kafka refused an operation (not authorized)',
  protocol: 'Kafka request failed',
};

/** One readable sentence: what failed, why (kafkajs' own words), and what to check. */
export function explainKafkaError(error: unknown): string {
  const cause = classifyKafkaError(error);
  return `${TITLE[cause]}: ${describeKafkaError(error)}; ${ADVICE[cause]}`;
}

/** The catalogued error for a Kafka failure (its `code` goes into the log line), with the original as cause. */
export function kafkaFailure(error: unknown): MatviewError {
  const message = explainKafkaError(error);
  switch (classifyKafkaError(error)) {
    case 'authentication':
      return new KafkaAuthError(message, { cause: error });
    case 'tls':
      return new KafkaTlsError(message, { cause: error });
    case 'connection':
      return new KafkaUnreachableError(message, { cause: error });
    case 'authorization':
      return new KafkaNotAuthorizedError(message, { cause: error });
    case 'protocol':
      return isMatviewError(error) ? error : new KafkaRequestError(message, { cause: error });
  }
}
