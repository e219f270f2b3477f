/**
 * Issue 18, point 5, the request side of gateways and partners, spoken with the protocols' own hashes:
 * - automatic persisted queries (Apollo's APQ: `extensions.persistedQuery = { version: 1, sha256Hash }`): not
 *   found, registered, then served from the cache, by the fast path with Apollo's very bytes; GET too; the
 *   cache bounded by APQ_CACHE_BYTES; off with 0;
 * - the persisted-documents allow-list (PERSISTED_DOCUMENTS_FILE), in both manifest formats: a listed
 *   operation by id (documentId, `sha256:` id, Apollo's persisted query hash) or by its exact text runs; any
 *   other is refused, over POST, GET, batches and WebSocket alike.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BoundedTextCache } from '../../api/gateway/apq-cache.js';
import { createDocumentGate } from '../../api/gateway/documents.js';
import { attachLiveWebSocket } from '../../api/ws.js';
import type { LiveSource } from '../../src/live/types.js';
import { silentLogger } from '../../src/ops/logger.js';
import { RawSocket } from '../live/helpers.js';
import { tempDir } from '../utils/tmp.js';
import { asOfOf, gql, http, makeUser, testConfig, useTestApi, userLive } from '../utils/testkit.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const QUERY = 'query One($id: ID!) { user(id: $id) { userId tweetCount } }';
const pq = (query: string) => ({ persistedQuery: { version: 1, sha256Hash: sha256(query) } });
const users = [makeUser(1), makeUser(2)];

describe('automatic persisted queries', () => {
  const fast = useTestApi({ users });
  const apollo = useTestApi({ users, fastPath: false });

  it('answers an unknown hash with PERSISTED_QUERY_NOT_FOUND, registers it with the text, then serves the hash alone', async () => {
    const hashOnly = { variables: { id: '1' }, extensions: pq(QUERY) };
    const miss = await gql(fast.url, hashOnly);
    expect(miss.status).toBe(200); // Apollo's protocol: the client sends the text next
    expect(miss.json()).toMatchObject({ errors: [{ extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }] });
    const registered = await gql(fast.url, { query: QUERY, ...hashOnly });
    expect(registered.json()).toEqual({
      data: { user: { userId: '1', tweetCount: 1 } },
      extensions: asOfOf(fast),
    });
    fast.reader.resetCalls();
    const hit = await gql(fast.url, hashOnly);
    expect(hit.json()).toEqual({ data: { user: { userId: '1', tweetCount: 1 } }, extensions: asOfOf(fast) });
    expect(fast.reader.calls.getUsersUnversioned).toBe(1); // the fast path answered
    // Byte for byte what Apollo alone answers to the same exchange.
    await gql(apollo.url, { query: QUERY, ...hashOnly });
    expect(hit.text).toBe((await gql(apollo.url, hashOnly)).text);
  });

  it('refuses a text that does not match its hash, and serves hashes over GET', async () => {
    const wrong = await gql(fast.url, { query: '{ user(id: "2") { userId } }', extensions: pq(QUERY) });
    expect(wrong.status).toBe(400);
    expect(wrong.json()).toMatchObject({ errors: [{ message: 'provided sha does not match query' }] });
    const text = '{ user(id: "2") { username } }';
    await gql(fast.url, { query: text, extensions: pq(text) });
    const get = await http(`${fast.url}/graphql?extensions=${encodeURIComponent(JSON.stringify(pq(text)))}`, {
      headers: { 'apollo-require-preflight': '1' },
    });
    expect(get.json()).toEqual({ data: { user: { username: 'user2' } }, extensions: asOfOf(fast) });
  });

  it('keeps at most APQ_CACHE_BYTES of text, least recently used out first', async () => {
    const cache = new BoundedTextCache(100);
    await cache.set('apq:a', 'x'.repeat(40)); // 45 bytes with its key
    await cache.set('apq:b', 'y'.repeat(40));
    expect(cache.peek('apq:a')).toBeDefined(); // a is now the most recently used
    await cache.set('apq:c', 'z'.repeat(40));
    expect([
      cache.peek('apq:a') !== undefined,
      cache.peek('apq:b'),
      cache.peek('apq:c') !== undefined,
    ]).toEqual([true, undefined, true]);
    expect(cache.bytes).toBe(90);
    await cache.set('apq:huge', 'h'.repeat(200)); // larger than the whole cache: not kept, nothing evicted
    expect([cache.bytes, cache.peek('apq:huge')]).toEqual([90, undefined]);
  });
});

describe('APQ bounded on a server', () => {
  const t = useTestApi({ users, env: { APQ_CACHE_BYTES: '450' } });

  it('forgets the oldest registrations once the bound is passed', async () => {
    const texts = [1, 2, 3].map(
      (n) => `query Q${n}($id: ID!) { user(id: $id) { userId ${'username '.repeat(10)}} }`,
    );
    for (const text of texts) await gql(t.url, { query: text, variables: { id: '1' }, extensions: pq(text) });
    const codes = await Promise.all(
      texts.map(async (text) => {
        const res = await gql(t.url, { variables: { id: '1' }, extensions: pq(text) });
        return (
          res.json<{ errors?: { extensions: { code: string } }[] }>().errors?.[0]?.extensions.code ?? 'ok'
        );
      }),
    );
    expect(codes).toEqual(['PERSISTED_QUERY_NOT_FOUND', 'ok', 'ok']);
  });
});

describe('APQ_CACHE_BYTES=0', () => {
  const t = useTestApi({ users, env: { APQ_CACHE_BYTES: '0' } });

  it('answers PERSISTED_QUERY_NOT_SUPPORTED', async () => {
    const res = await gql(t.url, { variables: { id: '1' }, extensions: pq(QUERY) });
    expect(res.json()).toMatchObject({ errors: [{ extensions: { code: 'PERSISTED_QUERY_NOT_SUPPORTED' } }] });
  });
});

// ---------------------------------------------------------------------------------------------------------

const LISTED = QUERY;
const SUBSCRIPTION = 'subscription Watch($id: ID!) { userChanged(id: $id) { kind user { userId } } }';
const NOT_LISTED = '{ user(id: "1") { username } }';
const dir = tempDir();
const apolloManifest = join(dir, 'apollo.json');
writeFileSync(
  apolloManifest,
  JSON.stringify({
    format: 'apollo-persisted-query-manifest',
    version: 1,
    operations: [
      { id: sha256(LISTED), name: 'One', type: 'query', body: LISTED },
      { id: sha256(SUBSCRIPTION), name: 'Watch', type: 'subscription', body: SUBSCRIPTION },
    ],
  }),
);
const codegenManifest = join(dir, 'persisted-documents.json');
writeFileSync(codegenManifest, JSON.stringify({ [sha256(LISTED)]: LISTED, custom: SUBSCRIPTION }));
const live: LiveSource = userLive((ids) => ({
  async *[Symbol.asyncIterator]() {
    for (const id of ids) yield { userId: id, kind: 'SNAPSHOT', user: makeUser(Number(id)) };
  },
}));

const codeOf = (res: { json<T>(): T }) =>
  res.json<{ errors?: { extensions: { code: string } }[] }>().errors?.[0]?.extensions.code;

describe.each([
  ['Apollo persisted query manifest', apolloManifest],
  ['GraphQL Code Generator persisted-documents.json', codegenManifest],
])('PERSISTED_DOCUMENTS_FILE: %s', (_format, file) => {
  const env = { PERSISTED_DOCUMENTS_FILE: file };
  const t = useTestApi({ users, env, live });
  const one = { data: { user: { userId: '1', tweetCount: 1 } } };

  it('runs a listed operation by id, by sha256: id, by persisted query hash and by its text, on the fast path', async () => {
    const id = sha256(LISTED);
    const variables = { id: '1' };
    t.reader.resetCalls();
    for (const body of [
      { documentId: id, variables },
      { documentId: `sha256:${id}`, variables },
      { extensions: pq(LISTED), variables },
      { query: LISTED, variables },
      { query: LISTED, variables, extensions: pq(LISTED) },
    ]) {
      const res = await gql(t.url, body);
      expect({ body, status: res.status, json: res.json() }).toEqual({
        body,
        status: 200,
        json: { ...one, extensions: asOfOf(t) },
      });
    }
    expect(t.reader.calls.getUsersUnversioned).toBe(5);
  });

  it('refuses any other operation, unknown ids, and batches holding one', async () => {
    const other = await gql(t.url, { query: NOT_LISTED });
    expect({ status: other.status, code: codeOf(other) }).toEqual({
      status: 400,
      code: 'PERSISTED_QUERY_NOT_IN_LIST',
    });
    // An APQ registration is no way around the list.
    const registration = await gql(t.url, { query: NOT_LISTED, extensions: pq(NOT_LISTED) });
    expect(codeOf(registration)).toBe('PERSISTED_QUERY_NOT_IN_LIST');
    for (const body of [{ documentId: 'nope' }, { extensions: pq(NOT_LISTED) }]) {
      const res = await gql(t.url, body);
      expect({ status: res.status, code: codeOf(res) }).toEqual({
        status: 400,
        code: 'PERSISTED_QUERY_NOT_FOUND',
      });
    }
    const batch = await gql(t.url, [{ query: LISTED, variables: { id: '1' } }, { query: NOT_LISTED }]);
    expect({ status: batch.status, code: codeOf(batch) }).toEqual({
      status: 400,
      code: 'PERSISTED_QUERY_NOT_IN_LIST',
    });
  });

  it('applies the same list to GET', async () => {
    const get = (params: string) =>
      http(`${t.url}/graphql?${params}`, { headers: { 'apollo-require-preflight': '1' } });
    const vars = `variables=${encodeURIComponent(JSON.stringify({ id: '1' }))}`;
    const byId = await get(`documentId=${sha256(LISTED)}&${vars}`);
    expect(byId.json()).toEqual({ ...one, extensions: asOfOf(t) });
    const byText = await get(`query=${encodeURIComponent(LISTED)}&${vars}`);
    expect(byText.json()).toEqual({ ...one, extensions: asOfOf(t) });
    const other = await get(`query=${encodeURIComponent(NOT_LISTED)}`);
    expect({ status: other.status, code: codeOf(other) }).toEqual({
      status: 400,
      code: 'PERSISTED_QUERY_NOT_IN_LIST',
    });
  });

  it('applies the same list to WebSocket subscriptions', async () => {
    const ws = attachLiveWebSocket({ api: t.api, config: testConfig(env), logger: silentLogger });
    const raw = await RawSocket.open(t.url);
    try {
      await raw.init();
      const subscribe = (id: string, payload: object) => raw.send({ id, type: 'subscribe', payload });
      subscribe('text', { query: SUBSCRIPTION, variables: { id: '2' } });
      subscribe('hash', { query: '', variables: { id: '1' }, extensions: pq(SUBSCRIPTION) });
      subscribe('other', { query: 'subscription { userChanged(id: "1") { kind } }' });
      const done = (id: string) => raw.waitFor((m) => m['id'] === id && m['type'] !== 'next', id);
      const [text, hash, other] = await Promise.all([done('text'), done('hash'), done('other')]);
      const nextOf = (id: string) => raw.messages.find((m) => m['id'] === id && m['type'] === 'next');
      expect(text['type']).toBe('complete');
      expect(nextOf('text')?.['payload']).toMatchObject({
        data: { userChanged: { kind: 'SNAPSHOT', user: { userId: '2' } } },
      });
      // The Apollo manifest's ids are the SHA-256 of the text; codegen's here is "custom": the hash is unknown.
      if (file === apolloManifest) {
        expect(hash['type']).toBe('complete');
        expect(nextOf('hash')?.['payload']).toMatchObject({
          data: { userChanged: { user: { userId: '1' } } },
        });
      } else
        expect(hash).toMatchObject({
          type: 'error',
          payload: [{ extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }],
        });
      expect(other).toMatchObject({
        type: 'error',
        payload: [{ extensions: { code: 'PERSISTED_QUERY_NOT_IN_LIST' } }],
      });
    } finally {
      raw.close();
      await ws.close();
    }
  });
});

describe('PERSISTED_DOCUMENTS_FILE validation', () => {
  it('stops the server at start with one line for a document that does not parse', () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, JSON.stringify({ x: '{ user(' }));
    const persisted = testConfig({ PERSISTED_DOCUMENTS_FILE: file }).gateway.persistedDocuments;
    expect(() => createDocumentGate({ persisted, apq: undefined })).toThrow(
      new RegExp(
        `^Invalid configuration: PERSISTED_DOCUMENTS_FILE="${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" document "x" is not valid GraphQL: Syntax Error`,
      ),
    );
  });

  it.each([
    ['missing', join(dir, 'nope.json'), /cannot be read \(ENOENT\)/],
    ['not JSON', join(dir, 'bad.json'), /is not JSON/],
    [
      'an Apollo manifest of another version',
      join(dir, 'v2.json'),
      /is an Apollo manifest of version 2; only version 1 is known/,
    ],
  ])('stops the process with one line for a file %s', (_case, file, message) => {
    writeFileSync(join(dir, 'bad.json'), '{ nope');
    writeFileSync(
      join(dir, 'v2.json'),
      JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 2, operations: [] }),
    );
    expect(() => testConfig({ PERSISTED_DOCUMENTS_FILE: file })).toThrow(
      new RegExp(
        `^Invalid configuration: PERSISTED_DOCUMENTS_FILE="${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" ${message.source}`,
      ),
    );
  });
});
