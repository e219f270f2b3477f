/** What a Kafka failure means for an operator (src/feed/kafka-errors.ts): classified by name, type and code. */
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { KafkaAuthError } from '../../src/errors.js';
import { classifyKafkaError, describeKafkaError, kafkaFailure } from '../../src/feed/kafka-errors.js';
import { protocolError } from '../../src/feed/kafkajs-internals.js';

const { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded } = kafkajs;
/** kafkajs errors its published types do not declare (or declare without arguments), by name as kafkajs makes them. */
const named = (name: string, message: string) => Object.assign(new Error(message), { name });

const retried = (cause: Error) =>
  new KafkaJSNumberOfRetriesExceeded(cause, { retryCount: 2, retryTime: 300, cause } as never);

describe('classifyKafkaError', () => {
  it.each([
    [
      'a SASL failure',
      named('KafkaJSSASLAuthenticationError', 'SASL PLAIN authentication failed: bad'),
      'authentication',
    ],
    ['SASL_AUTHENTICATION_FAILED', protocolError(58), 'authentication'],
    ['an unsupported mechanism', protocolError(33), 'authentication'],
    ['a token source failure', new KafkaAuthError('command exited with 1'), 'authentication'],
    [
      'an unknown CA, behind kafkajs retries',
      retried(
        new KafkaJSConnectionError('Connection error: self-signed certificate in certificate chain', {
          code: 'SELF_SIGNED_CERT_IN_CHAIN',
        } as never),
      ),
      'tls',
    ],
    [
      'a host name mismatch',
      new KafkaJSConnectionError('x', { code: 'ERR_TLS_CERT_ALTNAME_INVALID' } as never),
      'tls',
    ],
    [
      'a refused connection',
      retried(
        new KafkaJSConnectionError('Connection error: connect ECONNREFUSED', {
          code: 'ECONNREFUSED',
        } as never),
      ),
      'connection',
    ],
    ['a closed connection', named('KafkaJSConnectionClosedError', 'Closed connection'), 'connection'],
    ['a topic ACL', protocolError(29), 'authorization'],
    ['a leader change', protocolError(6), 'protocol'],
  ])('should classify %s', (_what, error, cause) => {
    expect(classifyKafkaError(error)).toBe(cause);
  });
});

describe('describeKafkaError', () => {
  it("should keep kafkajs' words without its wrappers, and OpenSSL's reason without its file and line", () => {
    const openssl = new KafkaJSConnectionError(
      'Connection error: 809CAB0D617F0000:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 116\n',
      { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' } as never,
    );
    expect(describeKafkaError(retried(openssl))).toBe(
      'tlsv13 alert certificate required (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED)',
    );
    expect(describeKafkaError(new Error('store busy'))).toBe('Error: store busy');
  });

  it('should give each cause its catalogued code and what to check', () => {
    const err = kafkaFailure(retried(new KafkaJSConnectionError('x', { code: 'CERT_HAS_EXPIRED' } as never)));
    expect({ code: err.code, retriable: err.retriable }).toEqual({
      code: 'MV_ERR_KAFKA_TLS',
      retriable: true,
    });
    expect(err.message).toMatch(
      /^TLS handshake with a Kafka broker failed: x \(CERT_HAS_EXPIRED\); check KAFKA_SSL_CA_FILE/,
    );
  });
});
