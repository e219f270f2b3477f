/** SOURCES_FILE: validated at start; a bad file is one line naming the file, the JSON path and what is allowed. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { loadConfig } from '../../src/ops/config.js';
import { loadSources, parseSources } from '../../src/formats/sources.js';
import { tempDir } from '../utils/tmp.js';

const F = 'sources.json';
const message = (content: unknown): string => {
  try {
    parseSources(F, content);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('accepted');
};
const file = (content: unknown): string => {
  const path = join(tempDir(), 'sources.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
};

describe('sources file', () => {
  it("should read the issue's example: topics, formats (top level, overridden per topic) and mappings", () => {
    const s = parseSources(F, {
      format: 'debezium-json',
      schemaRegistryUrl: 'http://registry:8081',
      topics: {
        users: {
          topic: 'pg.public.users',
          fields: { userId: 'id', joinedDate: 'created_at', webPageUrl: 'url' },
        },
        tweets: {
          topic: 'pg.public.tweets',
          format: 'debezium-avro',
          fields: { tweetId: 'id', userId: 'user_id', createdAt: { column: 'created_at', unit: 'micros' } },
        },
      },
    });
    expect({
      users: [s.topics.users.topic, s.topics.users.format, s.topics.users.mapping.keyColumn],
      tweets: [s.topics.tweets.format, s.topics.tweets.mapping.fields.find((f) => f.name === 'createdAt')],
      follows: [s.topics.follows.topic, s.topics.follows.format, s.topics.follows.mapping.keyColumn],
      webPageUrl: s.topics.users.mapping.fields.find((f) => f.name === 'webPageUrl')?.column,
      username: s.topics.users.mapping.fields.find((f) => f.name === 'username')?.column,
      urls: s.schemaRegistryUrls,
    }).toEqual({
      users: ['pg.public.users', 'debezium-json', 'id'],
      tweets: [
        'debezium-avro',
        { name: 'createdAt', kind: 'date', required: false, column: 'created_at', unit: 'micros' },
      ],
      follows: ['follows', 'debezium-json', 'followId'],
      webPageUrl: 'url',
      username: 'username',
      urls: ['http://registry:8081'],
    });
  });

  it.each([
    [{ topics: {}, extra: 1 }, '$ has unknown key "extra"; allowed: "format", "schemaRegistryUrl", "topics"'],
    [
      { format: 'csv', topics: {} },
      '$.format must be one of "json", "debezium-json", "avro", "debezium-avro"',
    ],
    [
      { topics: { posts: { topic: 'p' } } },
      '$.topics has unknown key "posts"; allowed: "users", "tweets", "follows", "likes"',
    ],
    [
      { format: 'debezium-json', topics: { users: { topic: 'u', fields: { userID: 'id' } } } },
      '$.topics.users.fields has unknown key "userID"; allowed: "userId", "username", "name", "description", "location", "webPageUrl", "joinedDate", "profileImageUrl", "backgroundImageUrl"',
    ],
    [
      {
        format: 'debezium-json',
        topics: { tweets: { topic: 't', fields: { createdAt: { column: 'c', unit: 'seconds' } } } },
      },
      '$.topics.tweets.fields.createdAt must be a column name or { "column": …, "unit": … }',
    ],
    [
      { topics: { users: { topic: 'a b' } } },
      '$.topics.users.topic must be a Kafka topic name (letters, digits, ".", "_", "-"; 1-200 chars)',
    ],
    [
      { topics: { users: { topic: 'x' }, likes: { topic: 'x' } } },
      '$.topics.likes.topic is "x", the topic of users too: each table needs its own topic',
    ],
    [{ format: 'avro', topics: {} }, '$.schemaRegistryUrl is required: topic "users" is read as "avro"'],
    [
      { topics: { users: { topic: 'u', fields: { userId: 'id' } } } },
      '$.topics.users.fields is not allowed with format "json"',
    ],
    [
      { schemaRegistryUrl: 'registry:8081', topics: {} },
      '$.schemaRegistryUrl must be one or more comma-separated http:// or https:// URLs',
    ],
  ])('should refuse %j in one line', (content, expected) => {
    const m = message(content);
    expect(m.startsWith(`Invalid configuration: SOURCES_FILE="${F}": ${expected}`)).toBe(true);
    expect(m).not.toContain('\n');
  });

  it('should say when the file cannot be read or is not JSON', () => {
    expect(() => loadSources('/nonexistent/sources.json')).toThrow(
      /SOURCES_FILE="\/nonexistent\/sources.json" cannot be read: ENOENT/,
    );
    expect(() => loadSources(file('{"topics":'))).toThrow(/is not JSON/);
  });
});

describe('SOURCES_FILE in the configuration', () => {
  it('should take the topics from the file', () => {
    const path = file({ format: 'debezium-json', topics: { users: { topic: 'pg.public.users' } } });
    const c = loadConfig({ SOURCES_FILE: path, KAFKA_BROKERS: 'k:9092' });
    expect(c.topics).toEqual({
      users: 'pg.public.users',
      tweets: 'tweets',
      follows: 'follows',
      likes: 'likes',
    });
    expect(c.sources?.topics.users.format).toBe('debezium-json');
  });

  it('should refuse TOPIC_* next to it, a Debezium file on the embedded demo, and half a client certificate', () => {
    const path = file({ format: 'debezium-json', topics: {} });
    expect(() => loadConfig({ SOURCES_FILE: path, KAFKA_BROKERS: 'k:9092', TOPIC_USERS: 'u' })).toThrow(
      'Invalid configuration: SOURCES_FILE and TOPIC_USERS are both set: the sources file names every topic; unset TOPIC_USERS (or SOURCES_FILE)',
    );
    expect(() => loadConfig({ SOURCES_FILE: path })).toThrow(
      /without KAFKA_BROKERS the embedded changelog's demo writes matview's json: set KAFKA_BROKERS, or DEMO=false/,
    );
    expect(loadConfig({ SOURCES_FILE: path, DEMO: 'false' }).sources).toBeDefined();
    expect(() => loadConfig({ SCHEMA_REGISTRY_CERT_FILE: '/c.pem' })).toThrow(/go together/);
  });

  it('should read registry credentials from a file and never echo them', () => {
    const secret = file('key:s3cr3t\n');
    expect(loadConfig({ SCHEMA_REGISTRY_USER_INFO_FILE: secret }).schemaRegistry.userInfo).toBe('key:s3cr3t');
    expect(() => loadConfig({ SCHEMA_REGISTRY_USER_INFO: 'nocolon' })).toThrow(
      'Invalid configuration: SCHEMA_REGISTRY_USER_INFO=<redacted> must be "user:password" (Confluent basic.auth.user.info)',
    );
  });
});
