/**
 * A schema registry inside the test: a small HTTP(S) server speaking the part of Confluent Schema
 * Registry's REST API that producers and consumers use (API reference, "Schemas" and "Subjects"):
 * - `POST /subjects/{subject}/versions` `{"schema": "…"}` → `{"id": n}` (the same schema text gets the same id);
 * - `GET /schemas/ids/{id}` → `{"schema": "…"}` (plus `schemaType` when not Avro), or 404 `{"error_code": 40403}`.
 * It can require basic auth, be switched to answering 503 (an outage), and counts the lookups it served.
 */
import {
  createServer as createHttp,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttps, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface RegistryDouble {
  readonly url: string;
  /** Registers a schema under a subject (as a serializer does) and returns its id. */
  register(subject: string, schema: unknown, schemaType?: 'AVRO' | 'PROTOBUF' | 'JSON'): number;
  /** `down`: every request gets 503; `not-a-registry`: 404 without the registry's error code. */
  mode: 'up' | 'down' | 'not-a-registry';
  /** `GET /schemas/ids/…` requests answered with a schema. */
  readonly lookups: number;
  close(): Promise<void>;
}

export interface RegistryDoubleOptions {
  /** Require `Authorization: Basic` with this `user:password`. */
  readonly userInfo?: string;
  /** Serve HTTPS with these options (key, cert; `ca` + `requestCert` for mutual TLS). */
  readonly tls?: ServerOptions;
}

export async function startRegistry(options: RegistryDoubleOptions = {}): Promise<RegistryDouble> {
  const schemas: { schema: string; schemaType: string }[] = [];
  let lookups = 0;
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
    res.end(JSON.stringify(body));
  };
  const double: RegistryDouble = {
    url: '',
    mode: 'up',
    get lookups() {
      return lookups;
    },
    register(_subject, schema, schemaType = 'AVRO') {
      const text = typeof schema === 'string' ? schema : JSON.stringify(schema);
      const found = schemas.findIndex((s) => s.schema === text && s.schemaType === schemaType);
      if (found >= 0) return found + 1;
      schemas.push({ schema: text, schemaType });
      return schemas.length;
    },
    close: async () => undefined,
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (double.mode === 'down') return send(res, 503, { error_code: 50301, message: 'Service Unavailable' });
    if (double.mode === 'not-a-registry') {
      res.writeHead(404, { 'content-type': 'text/html' });
      return res.end('<h1>Not Found</h1>');
    }
    if (options.userInfo !== undefined) {
      const expected = `Basic ${Buffer.from(options.userInfo).toString('base64')}`;
      if (req.headers.authorization !== expected)
        return send(res, 401, { error_code: 401, message: 'Unauthorized' });
    }
    const m = /^\/schemas\/ids\/(\d+)$/.exec(req.url ?? '');
    if (req.method === 'GET' && m !== null) {
      const s = schemas[Number(m[1]) - 1];
      if (s === undefined) return send(res, 404, { error_code: 40403, message: `Schema ${m[1]} not found` });
      lookups++;
      return send(res, 200, s.schemaType === 'AVRO' ? { schema: s.schema } : s);
    }
    send(res, 404, { error_code: 404, message: 'HTTP 404 Not Found' });
  };
  const server: Server =
    options.tls === undefined ? createHttp(handler) : createHttps({ ...options.tls }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(double, {
    url: `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
