/**
 * Certificates made for a test with `openssl` (installed on every machine the tests run on): a CA, a
 * server certificate it signs for `localhost` / 127.0.0.1, a client certificate it signs (mutual TLS), and
 * an unrelated CA (the "wrong CA"). Files live in a temp dir removed after the test file.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

export interface TestCerts {
  readonly dir: string;
  /** Paths, for KAFKA_SSL_*_FILE. */
  readonly caFile: string;
  readonly otherCaFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** PEM contents, for the server. */
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
}

const openssl = (dir: string, args: string[]): void => {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
};

function makeCa(dir: string, name: string): void {
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
  ]);
}

function signed(dir: string, ca: string, name: string, extensions: string): void {
  openssl(dir, [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
  ]);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.pem`,
  ]);
}

/** Makes the whole set (a few hundred ms of RSA key generation). */
export function makeTestCerts(): TestCerts {
  const dir = tempDir('matview-certs-');
  makeCa(dir, 'test-ca');
  makeCa(dir, 'other-ca');
  signed(
    dir,
    'test-ca',
    'broker',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
  );
  signed(dir, 'test-ca', 'matview-client', 'extendedKeyUsage=clientAuth\n');
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    dir,
    caFile: join(dir, 'test-ca.pem'),
    otherCaFile: join(dir, 'other-ca.pem'),
    clientCertFile: join(dir, 'matview-client.pem'),
    clientKeyFile: join(dir, 'matview-client.key'),
    ca: read('test-ca.pem'),
    serverCert: read('broker.pem'),
    serverKey: read('broker.key'),
  };
}
