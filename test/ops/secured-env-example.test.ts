/**
 * deploy/secured-cluster.env.example is loaded through matview's configuration, as it stands and with each
 * commented alternative switched on, with its file paths pointed at real files made here: an example that
 * does not validate would be worse than none.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/ops/config.js';
import { makeTestCerts, type TestCerts } from '../utils/certs.js';
import { tempDir } from '../utils/tmp.js';

const text = readFileSync('deploy/secured-cluster.env.example', 'utf8');

/** `KEY=VALUE` lines: the active ones, and the commented ones per `# ---` section. */
function parse() {
  const active: Record<string, string> = {};
  const sections: { title: string; lines: [string, string][] }[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('# ---')) sections.push({ title: line.replace(/^# -+ | -+$/g, ''), lines: [] });
    const m = /^(#?)([A-Z_]+)=(.*)$/.exec(line);
    if (m === null) continue;
    if (m[1] === '') active[m[2]!] = m[3]!;
    else sections.at(-1)?.lines.push([m[2]!, m[3]!]);
  }
  return { active, sections };
}

let certs: TestCerts;
let files: Record<string, string>;
beforeAll(() => {
  certs = makeTestCerts();
  const dir = tempDir('matview-env-');
  const write = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  files = {
    '/etc/kafka-ca/ca.pem': certs.caFile,
    '/etc/kafka-client/matview.pem': certs.clientCertFile,
    '/etc/kafka-client/matview.key': certs.clientKeyFile,
    '/run/secrets/kafka-password': write('kafka-password', 'pw\n'),
    '/run/secrets/confluent-api-secret': write('confluent', 'secret\n'),
    '/var/run/secrets/tokens/kafka-token': write('token', 'eyJhbGciOiJub25lIn0.eyJleHAiOjJ9.x'),
    '/data': dir,
  };
});

/** The example's paths replaced by the files made here. */
const local = (env: Record<string, string>) =>
  Object.fromEntries(Object.entries(env).map(([k, v]) => [k, files[v] ?? v]));

const sectionOf = (title: RegExp) => {
  const s = parse().sections.find((x) => title.test(x.title));
  if (s === undefined) throw new Error(`no section ${String(title)}`);
  return Object.fromEntries(s.lines);
};

describe('deploy/secured-cluster.env.example', () => {
  it('should validate as it stands: SCRAM-SHA-512 over TLS with a private CA and a password file', () => {
    const kafka = loadConfig(local(parse().active)).kafka!;
    expect(kafka.brokers).toHaveLength(3);
    expect(kafka.security.tls?.ca).toBe(certs.ca);
    expect(kafka.security.sasl).toMatchObject({ mechanism: 'scram-sha-512', username: 'svc-matview' });
  });

  it('should validate with mutual TLS switched on', () => {
    const kafka = loadConfig(local({ ...parse().active, ...sectionOf(/^TLS/) })).kafka!;
    expect(kafka.security.tls?.key?.reveal()).toMatch(/PRIVATE KEY/);
  });

  it('should validate with the PLAIN and the OAUTHBEARER alternatives in place of SCRAM', () => {
    const base = parse().active;
    const withoutSasl = Object.fromEntries(
      Object.entries(base).filter(([k]) => !k.startsWith('KAFKA_SASL_')),
    );
    const plain = loadConfig(local({ ...withoutSasl, ...sectionOf(/PLAIN/) })).kafka!;
    expect(plain.security.sasl?.mechanism).toBe('plain');
    const { KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND: command, ...fromFile } = sectionOf(/OAUTHBEARER/);
    expect(command).toBeDefined();
    const oauth = loadConfig(local({ ...withoutSasl, ...fromFile })).kafka!;
    expect(oauth.security.sasl).toEqual({
      mechanism: 'oauthbearer',
      token: { file: files['/var/run/secrets/tokens/kafka-token'] },
    });
  });
});
