/**
 * A small Confluent Schema Registry client: the one call a consumer needs, `GET /schemas/ids/{id}`
 * (Confluent Schema Registry API reference, "Schemas"), with the settings registry clients share:
 * - several URLs, comma-separated (`schema.registry.url`): tried in turn, starting with the last that answered;
 * - HTTP basic auth from `user:password` (`basic.auth.user.info`) or from the URL's user info
 *   (`basic.auth.credentials.source=URL`), e.g. a Confluent Cloud API key and secret;
 * - TLS: a CA bundle to trust, a client certificate and key (mutual TLS), and whether to verify the server.
 *
 * Schemas are immutable per id, so callers cache answers forever (see avro.ts). What comes back is
 * classified, never guessed: "this id does not exist" only when the registry says so with its own
 * error code 40403; anything else that is not a schema (unreachable, timeout, 5xx, 401/403, a 404 from
 * something that is not a registry) is a retriable SchemaRegistryError, so an outage or a wrong URL
 * makes the feed wait and say why, and never sends good records to the dead-letter topic.
 */
import http from 'node:http';
import https from 'node:https';
import { SchemaRegistryError } from '../errors.js';

export interface SchemaRegistryOptions {
  /** One or more base URLs (`http://registry:8081`, `https://…`), possibly with user info and a path prefix. */
  readonly urls: readonly string[];
  /** `user:password` for HTTP basic auth; wins over user info in the URL. */
  readonly userInfo?: string;
  /** PEM CA bundle to trust instead of Node's default CAs. */
  readonly ca?: Buffer;
  /** PEM client certificate and key, for mutual TLS. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** Verify the server certificate (default true). */
  readonly rejectUnauthorized?: boolean;
  /** Per request (default 10 s). */
  readonly timeoutMs?: number;
}

export type SchemaLookup =
  | { readonly found: true; readonly schema: string; readonly schemaType: string }
  | { readonly found: false; readonly message: string };

/** Where schemas come from: the registry client, or a test double. */
export interface SchemaSource {
  /** Resolves with the schema or "not found"; rejects with SchemaRegistryError when the registry cannot say. */
  lookup(id: number): Promise<SchemaLookup>;
}

/** Confluent's error code for "Schema not found" (io.confluent.kafka.schemaregistry.rest.exceptions). */
const SCHEMA_NOT_FOUND = 40403;
const MAX_BODY_BYTES = 8 * 1024 * 1024;
const ACCEPT =
  'application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5';

interface Target {
  readonly base: URL;
  readonly label: string;
  readonly authorization: string | undefined;
}

function targetOf(raw: string, userInfo: string | undefined): Target {
  const base = new URL(raw);
  const fromUrl =
    base.username === ''
      ? undefined
      : `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`;
  base.username = '';
  base.password = '';
  const creds = userInfo ?? fromUrl;
  return {
    base,
    label: base.origin + base.pathname.replace(/\/$/, ''),
    authorization: creds === undefined ? undefined : `Basic ${Buffer.from(creds).toString('base64')}`,
  };
}

export function createSchemaRegistryClient(options: SchemaRegistryOptions): SchemaSource {
  if (options.urls.length === 0) throw new SchemaRegistryError('no schema registry URL');
  const targets = options.urls.map((u) => targetOf(u, options.userInfo));
  const timeoutMs = options.timeoutMs ?? 10_000;
  const tls = {
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    ...(options.cert === undefined ? {} : { cert: options.cert }),
    ...(options.key === undefined ? {} : { key: options.key }),
    rejectUnauthorized: options.rejectUnauthorized ?? true,
  };
  const agents = {
    http: new http.Agent({ keepAlive: true }),
    https: new https.Agent({ keepAlive: true, ...tls }),
  };
  let preferred = 0;

  const request = (target: Target, id: number): Promise<SchemaLookup> =>
    new Promise((resolve, reject) => {
      const url = new URL(`${target.base.pathname.replace(/\/$/, '')}/schemas/ids/${id}`, target.base);
      const secure = url.protocol === 'https:';
      const fail = (why: string, cause?: unknown): void =>
        reject(
          new SchemaRegistryError(
            `schema registry ${target.label} could not give schema ${id}: ${why}`,
            cause === undefined ? undefined : { cause },
          ),
        );
      const req = (secure ? https : http).request(
        url,
        {
          method: 'GET',
          agent: secure ? agents.https : agents.http,
          headers: {
            accept: ACCEPT,
            ...(target.authorization === undefined ? {} : { authorization: target.authorization }),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BODY_BYTES) {
              res.destroy();
              fail(`answer larger than ${MAX_BODY_BYTES} bytes`);
            } else chunks.push(chunk);
          });
          res.on('error', (e) => fail(e.message, e));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown;
            try {
              body = JSON.parse(text);
            } catch {
              body = undefined;
            }
            const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
            if (status === 200 && typeof o['schema'] === 'string') {
              const schemaType = typeof o['schemaType'] === 'string' ? o['schemaType'] : 'AVRO';
              resolve({ found: true, schema: o['schema'], schemaType });
            } else if (status === 404 && o['error_code'] === SCHEMA_NOT_FOUND) {
              resolve({
                found: false,
                message: typeof o['message'] === 'string' ? o['message'] : 'Schema not found',
              });
            } else if (status === 401 || status === 403) {
              fail(`HTTP ${status}: the registry refused the credentials (check SCHEMA_REGISTRY_USER_INFO)`);
            } else {
              const detail = typeof o['message'] === 'string' ? o['message'] : text.slice(0, 200);
              fail(
                status === 200
                  ? 'the answer is not a schema (is schemaRegistryUrl a schema registry?)'
                  : `HTTP ${status}${detail === '' ? '' : `: ${detail}`}`,
              );
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e) => fail(e.message, e));
      req.end();
    });

  return {
    async lookup(id) {
      let last: unknown;
      for (let n = 0; n < targets.length; n++) {
        const i = (preferred + n) % targets.length;
        try {
          const answer = await request(targets[i]!, id);
          preferred = i;
          return answer;
        } catch (e) {
          last = e;
        }
      }
      throw last;
    },
  };
}
