/**
 * Every request limit (CONTRACT.md §4, config `limits`): just under passes, just over gets the documented
 * code and status — through the fast path's server and for the WebSocket layer's `validateOperation`.
 * Body limits are checked on what is sent, never on time.
 */
import { request } from 'node:http';
import { Lexer, Source, TokenKind, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createOperationValidator } from '../../api/limits.js';
import { buildApiSchema } from '../../api/schema/build.js';
import { asOfOf, gql, makeUser, testConfig, useTestApi, type TestResponse } from '../utils/testkit.js';

const env = {
  MAX_BODY_BYTES: '2000',
  MAX_QUERY_DEPTH: '3',
  MAX_ALIASES: '3',
  MAX_TOKENS: '100',
  MAX_IDS: '5',
  MAX_BATCH_OPERATIONS: '2',
};
const users = Array.from({ length: 10 }, (_, i) => makeUser(i + 1));

function code(res: TestResponse): unknown {
  return res.json<{ errors?: { extensions?: { code?: string } }[] }>().errors?.[0]?.extensions?.code;
}

function expectOk(res: TestResponse): void {
  expect(res.json()).not.toHaveProperty('errors');
  expect(res.status).toBe(200);
}

function expectRefused(res: TestResponse, status: number, expected: string): void {
  expect({ status: res.status, code: code(res) }).toEqual({ status, code: expected });
}

function tokens(query: string): number {
  const lexer = new Lexer(new Source(query));
  let count = 0;
  while (lexer.advance().kind !== TokenKind.EOF) count++;
  return count;
}

/** Streams `total` bytes (chunked, or with the given headers) and stops once the server has answered. */
function streamBody(url: string, total: number, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string; sent: number }>((resolve, reject) => {
    const req = request(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
    });
    let answered = false;
    let sent = 0;
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sent }));
      res.on('error', reject);
    });
    // Once answered, the server may cut the connection while we are still writing: expected.
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    void (async () => {
      while (!answered && sent < total && !req.destroyed) {
        await new Promise<void>((done) => req.write(chunk, () => done()));
        sent += chunk.length;
        // Let I/O run between chunks so the answer is seen as soon as it arrives.
        await new Promise<void>((done) => setImmediate(done));
      }
      if (!answered && !req.destroyed) req.end();
    })();
  });
}

describe('request limits over HTTP', () => {
  const t = useTestApi({ users, env });

  it('body size: a body of exactly MAX_BODY_BYTES passes, one byte more gets 413', async () => {
    const base = JSON.stringify({ query: '{ user(id: "1") { userId } }' });
    const padded = (size: number) => base.slice(0, -1) + ' '.repeat(size - base.length) + '}';
    expect(Buffer.byteLength(padded(2000))).toBe(2000);
    expectOk(await gql(t.url, padded(2000)));
    expectRefused(await gql(t.url, padded(2001)), 413, 'PAYLOAD_TOO_LARGE');
  });

  it('body size: a 10 MB chunked body is refused once the cap is passed, before it is all sent', async () => {
    const total = 10 * 1024 * 1024;
    const res = await streamBody(t.url, total);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ errors: [{ extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
    expect(res.sent).toBeLessThan(total);
  });

  it('body size: a declared 10 MB Content-Length is refused before the body is read', async () => {
    const total = 10 * 1024 * 1024;
    const res = await streamBody(t.url, total, { 'content-length': String(total) });
    expect(res.status).toBe(413);
    expect(res.sent).toBeLessThan(total);
  });

  it('the connection stays usable after a refused small body', async () => {
    expectRefused(await gql(t.url, ' '.repeat(3000)), 413, 'PAYLOAD_TOO_LARGE');
    expectOk(await gql(t.url, { query: '{ user(id: "1") { userId } }' }));
  });

  it('depth: MAX_QUERY_DEPTH levels pass, one more is QUERY_TOO_DEEP', async () => {
    expectOk(await gql(t.url, { query: '{ user(id: "1") { version { sequence } } }' }));
    expectRefused(
      await gql(t.url, { query: '{ user(id: "1") { version { source { topic } } } }' }),
      400,
      'QUERY_TOO_DEEP',
    );
    expectRefused(
      await gql(t.url, {
        query: '{ user(id: "1") { ...V } } fragment V on User { version { source { topic } } }',
      }),
      400,
      'QUERY_TOO_DEEP',
    );
  });

  it('aliases: MAX_ALIASES pass, one more is TOO_MANY_ALIASES (fragments count per spread)', async () => {
    expectOk(await gql(t.url, { query: '{ a: user(id: "1") { b: userId c: name } }' }));
    expectRefused(
      await gql(t.url, { query: '{ a: user(id: "1") { b: userId c: name d: location } }' }),
      400,
      'TOO_MANY_ALIASES',
    );
    expectRefused(
      await gql(t.url, {
        query: '{ a: user(id: "1") { ...F } b: user(id: "2") { ...F } } fragment F on User { x: userId }',
      }),
      400,
      'TOO_MANY_ALIASES',
    );
  });

  it('tokens: MAX_TOKENS tokens pass, one more is TOO_MANY_TOKENS', async () => {
    const query = (n: number) => `{ user(id: "1") { ${'userId '.repeat(n - 10)}} }`;
    expect(tokens(query(100))).toBe(100);
    expectOk(await gql(t.url, { query: query(100) }));
    expectRefused(await gql(t.url, { query: query(101) }), 400, 'TOO_MANY_TOKENS');
    // An unterminated document is cut at the limit first; a short one is an ordinary parse failure.
    expectRefused(
      await gql(t.url, { query: `{ user(id: "1") { ${'userId '.repeat(120)}` }),
      400,
      'TOO_MANY_TOKENS',
    );
    expectRefused(await gql(t.url, { query: '{ user(id: "1") { userId ' }), 400, 'GRAPHQL_PARSE_FAILED');
  });

  it('ids: MAX_IDS ids pass, one more is TOO_MANY_IDS (literal and variable)', async () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1));
    const literal = (n: number) => `{ users(ids: ${JSON.stringify(ids(n))}) { userId } }`;
    expectOk(await gql(t.url, { query: literal(5) }));
    expectRefused(await gql(t.url, { query: literal(6) }), 400, 'TOO_MANY_IDS');
    const query = 'query($ids: [ID!]!) { users(ids: $ids) { userId } }';
    expectOk(await gql(t.url, { query, variables: { ids: ids(5) } }));
    expectRefused(await gql(t.url, { query, variables: { ids: ids(6) } }), 400, 'TOO_MANY_IDS');
  });

  it('batching: MAX_BATCH_OPERATIONS operations pass, one more is BATCH_TOO_LARGE', async () => {
    const op = { query: '{ user(id: "1") { userId } }' };
    const ok = await gql(t.url, [op, op]);
    expect(ok.status).toBe(200);
    const one = { data: { user: { userId: '1' } }, extensions: asOfOf(t) };
    expect(ok.json()).toEqual([one, one]);
    expectRefused(await gql(t.url, [op, op, op]), 400, 'BATCH_TOO_LARGE');
  });
});

describe('batching off', () => {
  const t = useTestApi({ users, env: { MAX_BATCH_OPERATIONS: '0' } });

  it('refuses any array body with BATCH_TOO_LARGE', async () => {
    expectRefused(await gql(t.url, [{ query: '{ __typename }' }]), 400, 'BATCH_TOO_LARGE');
  });
});

describe('validateOperation (for the WebSocket layer)', () => {
  const validate = createOperationValidator(buildApiSchema(), testConfig(env));
  const codes = (query: string, variables?: Record<string, unknown>) =>
    validate(parse(query), variables).map((e) => e.extensions['code']);

  it('applies the same rules to subscriptions', () => {
    expect(codes('subscription { usersChanged(ids: ["1","2","3","4","5"]) { userId } }')).toEqual([]);
    expect(codes('subscription { usersChanged(ids: ["1","2","3","4","5","6"]) { userId } }')).toEqual([
      'TOO_MANY_IDS',
    ]);
    const byVariable = 'subscription($ids: [ID!]!) { usersChanged(ids: $ids) { userId } }';
    expect(codes(byVariable, { ids: ['1', '2', '3', '4', '5'] })).toEqual([]);
    expect(codes(byVariable, { ids: ['1', '2', '3', '4', '5', '6'] })).toEqual(['TOO_MANY_IDS']);
    expect(codes('subscription { userChanged(id: "1") { user { version { source { topic } } } } }')).toEqual([
      'QUERY_TOO_DEEP',
    ]);
    expect(codes('subscription { userChanged(id: "1") { nope } }')).toEqual([undefined]);
  });

  it('refuses introspection unless enabled', () => {
    expect(codes('{ __schema { queryType { name } } }').length).toBeGreaterThan(0);
    const open = createOperationValidator(buildApiSchema(), testConfig({ ...env, INTROSPECTION: 'true' }));
    expect(open(parse('{ __schema { queryType { name } } }'))).toEqual([]);
  });
});
