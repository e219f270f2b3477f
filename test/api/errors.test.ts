/**
 * The masking boundary (CONTRACT.md §4: "No error leaks a stack trace outside development mode"):
 * deliberate errors keep message and code, everything else is "Unexpected error." and only logged.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  asOfOf,
  gql,
  http,
  makeUser,
  useTestApi,
  type TestApi,
  type TestResponse,
} from '../utils/testkit.js';

/** A logger whose error lines the test can read. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, stream), lines };
}

/** Requests that fail in every way a client can make one fail, plus a server-side failure. */
async function failures(t: TestApi): Promise<TestResponse[]> {
  t.reader.failWith = new Error('LMDB: MDB_CORRUPTED at /secret/path');
  try {
    return [
      await gql(t.url, { query: '{ user(id: "1") { userId } }' }),
      await gql(t.url, { query: '{ users(ids: ["1"]) { userId } }' }),
      await http(`${t.url}/users/1`),
      await gql(t.url, { query: '{ user(id: "1") { userId ' }),
      await gql(t.url, { query: '{ user(id: "1") { nope } }' }),
      await gql(t.url, { query: 'query($id: ID!) { user(id: $id) { userId } }', variables: { id: {} } }),
      await gql(t.url, '{"query": '),
      await gql(t.url, { query: 'subscription { userChanged(id: "1") { kind } }' }),
      await gql(t.url, { nothing: true }),
    ];
  } finally {
    t.reader.failWith = undefined;
  }
}

describe('in production', () => {
  const { logger, lines } = capturingLogger();
  const t = useTestApi({ users: [makeUser(1)], logger });

  it('masks unexpected errors and logs the original', async () => {
    lines.length = 0;
    t.reader.failWith = new Error('LMDB: MDB_CORRUPTED at /secret/path');
    try {
      const res = await gql(t.url, { query: '{ user(id: "1") { userId } }' });
      expect(res.json()).toEqual({
        errors: [
          {
            message: 'Unexpected error.',
            locations: [{ line: 1, column: 3 }],
            path: ['user'],
            extensions: { code: 'INTERNAL_SERVER_ERROR' },
          },
        ],
        data: { user: null },
        extensions: asOfOf(t),
      });
      const rest = await http(`${t.url}/users/1`);
      expect(rest.status).toBe(500);
      expect(rest.json()).toEqual({ error: { code: 'INTERNAL_SERVER_ERROR', message: 'Unexpected error.' } });
    } finally {
      t.reader.failWith = undefined;
    }
    const logged = JSON.stringify(lines);
    expect(logged).toContain('MDB_CORRUPTED');
  });

  it('keeps deliberate errors: message and code', async () => {
    const res = await gql(t.url, { query: '{ user(id: "1") { nope } }' });
    expect(res.json()).toEqual({
      errors: [
        {
          message: 'Cannot query field "nope" on type "User". Did you mean "name"?',
          locations: [{ line: 1, column: 19 }],
          extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
        },
      ],
      extensions: asOfOf(t),
    });
    const coercion = await gql(t.url, {
      query: 'query($id: ID!) { user(id: $id) { userId } }',
      variables: { id: { not: 'an id' } },
    });
    expect(coercion.status).toBe(400);
    expect(coercion.json()).toMatchObject({ errors: [{ extensions: { code: 'BAD_USER_INPUT' } }] });
  });

  it('refuses subscriptions over HTTP with a clear error', async () => {
    const res = await gql(t.url, { query: 'subscription { userChanged(id: "1") { kind } }' });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ errors: [{ extensions: { code: 'SUBSCRIPTIONS_UNAVAILABLE' } }] });
  });

  it('never sends a stack trace or internal detail', async () => {
    for (const res of await failures(t)) {
      expect(res.status).toBeGreaterThanOrEqual(200);
      expect(res.text).not.toMatch(/stacktrace|\n\s+at |MDB_CORRUPTED|secret/);
    }
  });
});

describe('in development', () => {
  const t = useTestApi({ users: [makeUser(1)], env: { NODE_ENV: 'development' } });

  it('adds the original message and stack trace to masked errors', async () => {
    t.reader.failWith = new Error('LMDB: MDB_CORRUPTED');
    try {
      const res = await gql(t.url, { query: '{ user(id: "1") { userId } }' });
      const error = res.json<{ errors: { message: string; extensions: Record<string, unknown> }[] }>()
        .errors[0];
      expect(error?.message).toBe('Unexpected error.');
      expect(error?.extensions['code']).toBe('INTERNAL_SERVER_ERROR');
      expect(error?.extensions['originalMessage']).toBe('LMDB: MDB_CORRUPTED');
      expect(error?.extensions['stacktrace']).toEqual(
        expect.arrayContaining([expect.stringMatching(/MDB_CORRUPTED/)]),
      );
    } finally {
      t.reader.failWith = undefined;
    }
  });
});
