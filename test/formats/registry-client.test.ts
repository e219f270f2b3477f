/**
 * The registry client with the settings registry clients share: basic auth (setting or URL user info),
 * several URLs, TLS with a private CA, mutual TLS. Certificates are made in the test with openssl.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SchemaRegistryError } from '../../src/errors.js';
import { createSchemaRegistryClient } from '../../src/formats/registry-client.js';
import { startRegistry, type RegistryDouble } from '../utils/schema-registry.js';
import { tempDir } from '../utils/tmp.js';

const SCHEMA = { type: 'record', name: 'R', fields: [{ name: 'id', type: 'long' }] };
const opened: RegistryDouble[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});
const start = async (...args: Parameters<typeof startRegistry>) => {
  const r = await startRegistry(...args);
  opened.push(r);
  return r;
};
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as SchemaRegistryError,
  );

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
let pki: { ca: Buffer; key: Buffer; cert: Buffer; clientKey: Buffer; clientCert: Buffer };
beforeAll(() => {
  const dir = tempDir();
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=matview test CA',
  );
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const who of ['server', 'client']) {
    ssl(
      'req',
      ...ec,
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
      '-subj',
      `/CN=${who === 'server' ? '127.0.0.1' : 'matview'}`,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${who}.pem`,
      '-days',
      '2',
      ...(who === 'server' ? ['-extfile', 'san.ext'] : []),
    );
  }
  const read = (name: string) => readFileSync(f(name));
  pki = {
    ca: read('ca.pem'),
    key: read('server.key'),
    cert: read('server.pem'),
    clientKey: read('client.key'),
    clientCert: read('client.pem'),
  };
});

describe('schema registry client', () => {
  it('should send basic auth from the setting or from the URL, and call a refusal retriable, naming the setting', async () => {
    const r = await start({ userInfo: 'key:s3cr3t' });
    const id = r.register('s', SCHEMA);
    const viaSetting = createSchemaRegistryClient({ urls: [r.url], userInfo: 'key:s3cr3t' });
    const viaUrl = createSchemaRegistryClient({ urls: [r.url.replace('://', '://key:s3cr3t@')] });
    for (const c of [viaSetting, viaUrl])
      expect(await c.lookup(id)).toEqual({ found: true, schema: JSON.stringify(SCHEMA), schemaType: 'AVRO' });
    const wrong = await failure(
      createSchemaRegistryClient({ urls: [r.url], userInfo: 'key:wrong' }).lookup(id),
    );
    expect(wrong).toBeInstanceOf(SchemaRegistryError);
    expect(wrong?.retriable).toBe(true);
    expect(wrong?.message).toMatch(
      /HTTP 401: the registry refused the credentials \(check SCHEMA_REGISTRY_USER_INFO\)/,
    );
    expect(wrong?.message).not.toContain('wrong');
  });

  it('should say "not found" only on the registry\'s 40403, and fail over to the next URL', async () => {
    const r = await start();
    const client = createSchemaRegistryClient({ urls: ['http://127.0.0.1:1', r.url] });
    expect(await client.lookup(42)).toEqual({ found: false, message: 'Schema 42 not found' });
    r.mode = 'not-a-registry';
    expect(await failure(client.lookup(42))).toBeInstanceOf(SchemaRegistryError);
  });

  it('should trust a private CA when given one, refuse the server without it, and present a client certificate', async () => {
    const r = await start({
      tls: { key: pki.key, cert: pki.cert, ca: pki.ca, requestCert: true, rejectUnauthorized: true },
    });
    const id = r.register('s', SCHEMA);
    const mtls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
    expect(await createSchemaRegistryClient({ urls: [r.url], ...mtls }).lookup(id)).toMatchObject({
      found: true,
    });
    const untrusted = await failure(
      createSchemaRegistryClient({ urls: [r.url], cert: pki.clientCert, key: pki.clientKey }).lookup(id),
    );
    expect(untrusted?.message).toMatch(/certificate/);
    const noClientCert = await failure(createSchemaRegistryClient({ urls: [r.url], ca: pki.ca }).lookup(id));
    expect(noClientCert).toBeInstanceOf(SchemaRegistryError);
    expect(
      await createSchemaRegistryClient({
        urls: [r.url],
        rejectUnauthorized: false,
        cert: pki.clientCert,
        key: pki.clientKey,
      }).lookup(id),
    ).toMatchObject({ found: true });
  });
});
