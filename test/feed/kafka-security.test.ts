/**
 * TLS and SASL on the wire (issue 14): each mechanism's credentials, taken from the configuration exactly
 * as an operator sets them (loadConfig), reach a real SASL exchange with a broker stand-in
 * (test/utils/kafka-stand-in.ts), through the same client builder the consumer, the dead-letter producer
 * and the admin client use; TLS runs against certificates made here with openssl. Refused credentials and
 * refused handshakes must show as `retrying` with the cause, be counted, and be retried.
 *
 * What only a real broker proves (README "Secured clusters"): its own SCRAM credential store and ACLs,
 * OAUTHBEARER token validation (signature, audience, expiry), re-authentication driven by the broker's
 * connections.max.reauth.ms, and Fetch/Produce over the secured listener with real records.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaFailureCause } from '../../src/feed/kafka-errors.js';
import { createKafkaSource } from '../../src/feed/kafka-source.js';
import { createKafkaWriter } from '../../src/feed/kafka-writer.js';
import type { FeedSource } from '../../src/feed/types.js';
import { loadConfig } from '../../src/ops/config.js';
import { silentLogger } from '../../src/ops/logger.js';
import { kafkaOffsetRanges } from '../../src/wiring/offset-ranges.js';
import { makeTestCerts, type TestCerts } from '../utils/certs.js';
import {
  startStandIn,
  type StandIn,
  type StandInEvent,
  type StandInOptions,
} from '../utils/kafka-stand-in.js';
import { eventually, runningWithoutFailures } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

let certs: TestCerts;
const opened: { close(): Promise<void> }[] = [];
const sources: FeedSource[] = [];

beforeAll(() => {
  certs = makeTestCerts();
});
afterAll(async () => {
  await Promise.allSettled(sources.map((s) => s.stop()));
  await Promise.allSettled(opened.map((o) => o.close()));
});

async function standIn(options: StandInOptions): Promise<StandIn> {
  const s = await startStandIn({ topics: { users: 2 }, ...options });
  opened.push(s);
  return s;
}

/** The Kafka settings an operator's environment gives (the real config path: validation, `_FILE` reads). */
function kafkaConfig(broker: StandIn, env: Record<string, string>) {
  const config = loadConfig({ KAFKA_BROKERS: broker.brokers.join(','), DATA_DIR: tempDir(), ...env });
  return config.kafka!;
}

/** A file holding `content`, for the `_FILE` variables. */
function file(name: string, content: string): string {
  const path = join(tempDir('matview-secret-'), name);
  writeFileSync(path, content);
  return path;
}

/** Starts the Kafka source (the consumer) against the stand-in with `env`; records failure causes. */
async function startSource(broker: StandIn, env: Record<string, string>) {
  const kafka = kafkaConfig(broker, env);
  const causes: KafkaFailureCause[] = [];
  const source = createKafkaSource({
    brokers: kafka.brokers,
    clientId: 'matview-test',
    connectionTimeoutMs: 2_000,
    logger: silentLogger,
    security: kafka.security,
    fetchMaxWaitMs: 100,
    onFailure: (cause) => causes.push(cause),
  });
  sources.push(source);
  await source.start({
    topics: ['users'],
    resumeFrom: () => undefined,
    handler: async () => undefined,
    onFatal: () => undefined,
  });
  return { source, causes, kafka };
}

const ofKind = <K extends StandInEvent['kind']>(broker: StandIn, kind: K) =>
  broker.events.filter((e): e is Extract<StandInEvent, { kind: K }> => e.kind === kind);

/** A JWT (unsigned: the stand-in does not verify signatures, a real broker does) expiring at `exp` (s). */
const jwt = (sub: string, exp: number): string =>
  [{ alg: 'none', typ: 'JWT' }, { sub, exp }, 'sig']
    .map((part) =>
      typeof part === 'string' ? part : Buffer.from(JSON.stringify(part)).toString('base64url'),
    )
    .join('.');

describe('SASL/PLAIN', () => {
  it('should send the configured user and password (from a _FILE) in one PLAIN message, from the consumer, the producer and the admin client', async () => {
    const broker = await standIn({ sasl: { mechanisms: ['PLAIN'], users: { alice: 'pl4in-pa55word' } } });
    const env = {
      KAFKA_SASL_MECHANISM: 'plain',
      KAFKA_SASL_USERNAME: 'alice',
      // As Kubernetes mounts it, plus the newline `echo` would add.
      KAFKA_SASL_PASSWORD_FILE: file('password', 'pl4in-pa55word\n'),
    };
    const { source, kafka } = await startSource(broker, env);
    await runningWithoutFailures(source);
    const afterConsumer = ofKind(broker, 'plain').length;
    const client = {
      brokers: kafka.brokers,
      clientId: 'matview-test',
      connectionTimeoutMs: 2_000,
      logger: silentLogger,
      security: kafka.security,
    };
    const writer = createKafkaWriter(client);
    await writer.connect();
    await writer.close();
    const afterProducer = ofKind(broker, 'plain').length;
    await kafkaOffsetRanges(client)(['users']);
    const afterAdmin = ofKind(broker, 'plain').length;
    expect([afterConsumer > 0, afterProducer > afterConsumer, afterAdmin > afterProducer]).toEqual([
      true,
      true,
      true,
    ]);
    expect(
      new Set(
        ofKind(broker, 'plain').map(({ authorizationId, username, password, ok }) =>
          JSON.stringify({ authorizationId, username, password, ok }),
        ),
      ),
    ).toEqual(
      new Set([
        JSON.stringify({ authorizationId: '', username: 'alice', password: 'pl4in-pa55word', ok: true }),
      ]),
    );
    expect(ofKind(broker, 'handshake').every((h) => h.mechanism === 'PLAIN')).toBe(true);
  });
});

describe.each(['scram-sha-256', 'scram-sha-512'] as const)('SASL/%s', (mechanism) => {
  const wire = mechanism.toUpperCase();

  it('should complete the client-first, server-first, client-final exchange with a proof from the salted password', async () => {
    const broker = await standIn({
      sasl: { mechanisms: [wire], users: { 'bob,the=admin': 'scr4m-secret' } },
    });
    const { source } = await startSource(broker, {
      KAFKA_SASL_MECHANISM: mechanism,
      KAFKA_SASL_USERNAME_FILE: file('username', 'bob,the=admin'),
      KAFKA_SASL_PASSWORD: 'scr4m-secret',
    });
    await runningWithoutFailures(source);
    const [first] = ofKind(broker, 'scram-client-first');
    expect(first).toMatchObject({ mechanism: wire, gs2Header: 'n,,', username: 'bob,the=admin' });
    expect(first!.clientNonce.length).toBeGreaterThanOrEqual(16);
    // c=biws is base64("n,,"): the GS2 header again, no channel binding.
    expect(
      ofKind(broker, 'scram-client-final').map(({ channelBinding, proofValid }) => ({
        channelBinding,
        proofValid,
      }))[0],
    ).toEqual({
      channelBinding: 'biws',
      proofValid: true,
    });
  });

  it('should report a wrong password as an authentication failure, count it, retry, and recover when it is fixed', async () => {
    const users: Record<string, string> = { bob: 'the-right-one' };
    const broker = await standIn({ sasl: { mechanisms: [wire], users } });
    const { source, causes } = await startSource(broker, {
      KAFKA_SASL_MECHANISM: mechanism,
      KAFKA_SASL_USERNAME: 'bob',
      KAFKA_SASL_PASSWORD: 'a-wrong-one',
    });
    const status = await eventually(
      () => {
        const s = source.status();
        return s.state === 'retrying' && /authentication failed/i.test(s.reason ?? '') ? s : undefined;
      },
      20_000,
      'retrying with the authentication failure',
    );
    expect(status.reason).toMatch(/^Kafka authentication failed: .*KAFKA_SASL_MECHANISM/);
    expect(status.reason).not.toContain('a-wrong-one');
    expect(causes).toContain('authentication');
    expect(ofKind(broker, 'scram-client-final').some((f) => !f.proofValid)).toBe(true);
    // It keeps trying; once the broker accepts that password (a fixed credential store), it runs.
    const attempts = ofKind(broker, 'scram-client-first').length;
    await eventually(
      () => (ofKind(broker, 'scram-client-first').length > attempts ? true : undefined),
      20_000,
      'another attempt',
    );
    users['bob'] = 'a-wrong-one';
    await runningWithoutFailures(source);
  });
});

describe('SASL/OAUTHBEARER', () => {
  it('should send the GS2 header and auth=Bearer <token> read from the token file', async () => {
    const token = jwt('matview', Math.floor(Date.now() / 1000) + 3600);
    const broker = await standIn({ sasl: { mechanisms: ['OAUTHBEARER'], acceptToken: (t) => t === token } });
    const { source } = await startSource(broker, {
      KAFKA_SASL_MECHANISM: 'oauthbearer',
      KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: file('token', `${token}\n`),
    });
    await runningWithoutFailures(source);
    expect(ofKind(broker, 'oauthbearer')[0]).toMatchObject({ gs2Header: 'n,,', token, ok: true });
  });

  it('should take the token from a command that prints an OAuth token response', async () => {
    const broker = await standIn({
      sasl: { mechanisms: ['OAUTHBEARER'], acceptToken: (t) => t === 'tok-from-cmd' },
    });
    const { source } = await startSource(broker, {
      KAFKA_SASL_MECHANISM: 'oauthbearer',
      KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND: `printf '%s' '{"access_token":"tok-from-cmd","token_type":"bearer","expires_in":3600}'`,
    });
    await runningWithoutFailures(source);
    expect(ofKind(broker, 'oauthbearer').every((e) => e.token === 'tok-from-cmd' && e.ok)).toBe(true);
  });

  it('should authenticate with a refreshed token once the first one nears its expiry', async () => {
    // The first token lives 3 s; the broker grants sessions of 1 s (KIP-368), so kafkajs authenticates
    // again and again and asks the provider each time. It keeps the first token until 80% of its life has
    // passed, then reads the file again, where the rotation put the next one.
    const now = Math.floor(Date.now() / 1000);
    const first = jwt('first', now + 3);
    const second = jwt('second', now + 3600);
    const tokenFile = file('token', first);
    const broker = await standIn({
      sasl: {
        mechanisms: ['OAUTHBEARER'],
        acceptToken: (t) => t === first || t === second,
        sessionLifetimeMs: 1_000,
      },
    });
    const { source } = await startSource(broker, {
      KAFKA_SASL_MECHANISM: 'oauthbearer',
      KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: tokenFile,
    });
    await runningWithoutFailures(source);
    writeFileSync(tokenFile, second); // the rotation
    await eventually(
      () => (ofKind(broker, 'oauthbearer').some((e) => e.token === second) ? true : undefined),
      30_000,
      'an authentication with the refreshed token',
    );
    const tokens = ofKind(broker, 'oauthbearer').map((e) => e.token);
    const switched = tokens.indexOf(second);
    expect(tokens.slice(0, switched).every((t) => t === first)).toBe(true);
    expect(ofKind(broker, 'oauthbearer').every((e) => e.ok)).toBe(true);
    await runningWithoutFailures(source);
  });
});

describe('TLS', () => {
  const server = () => ({ key: certs.serverKey, cert: certs.serverCert });

  it('should connect to a broker whose certificate the configured CA signed', async () => {
    const broker = await standIn({ tls: server() });
    const { source } = await startSource(broker, { KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: certs.caFile });
    await runningWithoutFailures(source);
    expect(ofKind(broker, 'connection').every((c) => c.tls)).toBe(true);
  });

  it('should refuse a broker certificate another CA signed, with a clear TLS error, and keep retrying', async () => {
    const broker = await standIn({ tls: server() });
    const { source, causes } = await startSource(broker, {
      KAFKA_SSL: 'true',
      KAFKA_SSL_CA_FILE: certs.otherCaFile,
    });
    const status = await eventually(
      () => (source.status().state === 'retrying' && causes.length > 1 ? source.status() : undefined),
      20_000,
      'a refused handshake, retried',
    );
    expect(status.reason).toMatch(
      /^TLS handshake with a Kafka broker failed: .*(self-signed|unable to verify|certificate)/i,
    );
    expect(status.reason).toMatch(/KAFKA_SSL_CA_FILE/);
    expect(new Set(causes)).toEqual(new Set(['tls']));
    expect(ofKind(broker, 'request')).toEqual([]); // not one Kafka request over an unverified channel
  });

  it('should present the client certificate to a broker that requires mutual TLS, and fail without it', async () => {
    const broker = await standIn({ tls: { ...server(), ca: certs.ca, requestCert: true } });
    const { source } = await startSource(broker, {
      KAFKA_SSL: 'true',
      KAFKA_SSL_CA_FILE: certs.caFile,
      KAFKA_SSL_CERT_FILE: certs.clientCertFile,
      KAFKA_SSL_KEY_FILE: certs.clientKeyFile,
    });
    await runningWithoutFailures(source);
    expect(new Set(ofKind(broker, 'connection').map((c) => c.clientCertificate))).toEqual(
      new Set(['matview-client']),
    );

    const without = await startSource(broker, { KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: certs.caFile });
    const status = await eventually(
      () => (without.source.status().state === 'retrying' ? without.source.status() : undefined),
      20_000,
      'refused without a client certificate',
    );
    expect(status.reason).toMatch(/TLS|certificate|Connection/i);
  });

  it('should run SCRAM over TLS (SASL_SSL), as managed clusters do', async () => {
    const broker = await standIn({
      tls: server(),
      sasl: { mechanisms: ['SCRAM-SHA-512'], users: { carol: 'over-tls' } },
    });
    const { source } = await startSource(broker, {
      KAFKA_SSL: 'true',
      KAFKA_SSL_CA_FILE: certs.caFile,
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'carol',
      KAFKA_SASL_PASSWORD: 'over-tls',
    });
    await runningWithoutFailures(source);
    expect(ofKind(broker, 'connection').every((c) => c.tls)).toBe(true);
    expect(ofKind(broker, 'scram-client-final').every((f) => f.proofValid)).toBe(true);
  });
});
