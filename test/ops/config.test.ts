import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/ops/config.js';
import { silentLogger } from '../../src/ops/logger.js';
import { claimDataDir, storePathOf } from '../../src/store/data-dir.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { startServer } from '../../src/wiring/runtime.js';
import { startChildServer } from '../utils/child-server.js';
import { tempDir } from '../utils/tmp.js';

describe('loadConfig', () => {
  it('should apply the documented defaults and freeze the result', () => {
    const c = loadConfig({});
    expect({ port: c.port, kafka: c.kafka, dataDir: c.dataDir, topics: c.topics, dlq: c.dlqSuffix }).toEqual({
      port: 4000,
      kafka: undefined,
      dataDir: './data',
      topics: { users: 'users', tweets: 'tweets', follows: 'follows', likes: 'likes' },
      dlq: '.dlq',
    });
    expect(Object.isFrozen(c) && Object.isFrozen(c.topics) && Object.isFrozen(c.limits)).toBe(true);
  });

  it('should parse a broker list and topic names', () => {
    const c = loadConfig({ KAFKA_BROKERS: 'a:9092, b:9093', TOPIC_USERS: 'db.users', PORT: '4100' });
    expect({ brokers: c.kafka?.brokers, users: c.topics.users, port: c.port }).toEqual({
      brokers: ['a:9092', 'b:9093'],
      users: 'db.users',
      port: 4100,
    });
  });

  it.each([
    [{ PORT: 'abc' }, 'Invalid configuration: PORT="abc" must be a number'],
    [{ PORT: '70000' }, 'Invalid configuration: PORT="70000" must be between 0 and 65535'],
    [
      { KAFKA_BROKERS: '' },
      'Invalid configuration: KAFKA_BROKERS="" must be a non-empty comma-separated list',
    ],
    [
      { KAFKA_BROKERS: 'localhost' },
      'Invalid configuration: KAFKA_BROKERS="localhost" every entry must be host:port, e.g. "localhost:9092"',
    ],
    [
      { TOPIC_USERS: 'a b' },
      'Invalid configuration: TOPIC_USERS="a b" must be a Kafka topic name (letters, digits, ".", "_", "-"; 1-200 chars)',
    ],
    [
      { TOPIC_LIKES: 'users' },
      'Invalid configuration: TOPIC_USERS/TWEETS/FOLLOWS/LIKES must be four different topics, got users, tweets, follows, users',
    ],
    [
      { PORT: 'x', DATA_DIR: '' },
      'Invalid configuration: PORT="x" must be a number; DATA_DIR="" must not be empty',
    ],
  ])('should reject %j with a message naming the variable and what is allowed', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });
});

describe('loadConfig: view topics (docs/view-topic.md)', () => {
  const brokers = { KAFKA_BROKERS: 'localhost:9092' };

  it('should default to neither publishing nor replicating', () => {
    expect(loadConfig({}).viewTopic).toEqual({
      out: undefined,
      in: undefined,
      heartbeatMs: 2000,
      maxSilenceMs: 15000,
    });
  });

  it('should take a view topic to publish, or one to serve as a replica', () => {
    expect(loadConfig({ ...brokers, VIEW_TOPIC_OUT: 'user-information' }).viewTopic.out).toBe(
      'user-information',
    );
    const replica = loadConfig({
      ...brokers,
      VIEW_TOPIC_IN: 'user-information',
      VIEW_TOPIC_MAX_SILENCE_MS: '0',
    });
    expect({ in: replica.viewTopic.in, silence: replica.viewTopic.maxSilenceMs }).toEqual({
      in: 'user-information',
      silence: 0,
    });
  });

  it.each([
    [
      { ...brokers, VIEW_TOPIC_OUT: 'v', VIEW_TOPIC_IN: 'v' },
      'Invalid configuration: VIEW_TOPIC_IN and VIEW_TOPIC_OUT are both set: an instance either materializes the changelogs and publishes the view (VIEW_TOPIC_OUT) or serves a published view as a replica (VIEW_TOPIC_IN); unset one',
    ],
    [
      { VIEW_TOPIC_IN: 'v' },
      'Invalid configuration: VIEW_TOPIC_IN is set without KAFKA_BROKERS: a replica reads the view topic from Kafka; set KAFKA_BROKERS',
    ],
    [
      { VIEW_TOPIC_OUT: 'v' },
      'Invalid configuration: VIEW_TOPIC_OUT is set without KAFKA_BROKERS: the view topic is published to a Kafka cluster; set KAFKA_BROKERS',
    ],
    [
      { ...brokers, VIEW_TOPIC_IN: 'v', TOPIC_USERS: 'people', TOPIC_LIKES: 'hearts' },
      'Invalid configuration: VIEW_TOPIC_IN and TOPIC_USERS, TOPIC_LIKES are both set: a replica reads only the view topic, never the source topics; unset TOPIC_USERS, TOPIC_LIKES',
    ],
    [
      { ...brokers, VIEW_TOPIC_OUT: 'tweets' },
      'Invalid configuration: VIEW_TOPIC_OUT="tweets" is also a source topic: the view topic must be a topic of its own',
    ],
    [
      { ...brokers, VIEW_TOPIC_IN: 'a topic' },
      'Invalid configuration: VIEW_TOPIC_IN="a topic" must be a Kafka topic name (letters, digits, ".", "_", "-"; 1-200 chars)',
    ],
    [
      { ...brokers, VIEW_TOPIC_HEARTBEAT_MS: '10' },
      'Invalid configuration: VIEW_TOPIC_HEARTBEAT_MS="10" must be >= 100',
    ],
    [
      { ...brokers, VIEW_TOPIC_MAX_SILENCE_MS: '-1' },
      'Invalid configuration: VIEW_TOPIC_MAX_SILENCE_MS="-1" must be >= 0',
    ],
  ])('should reject %j with one clear message', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('should refuse a replica with a sources file, naming both', () => {
    const dir = tempDir();
    const file = join(dir, 'sources.json');
    writeFileSync(file, JSON.stringify({ format: 'json', topics: {} }));
    expect(() => loadConfig({ ...brokers, VIEW_TOPIC_IN: 'v', SOURCES_FILE: file })).toThrow(
      'Invalid configuration: VIEW_TOPIC_IN and SOURCES_FILE are both set: a replica reads only the view topic, never the source topics; unset SOURCES_FILE',
    );
  });
});

describe('matview serve with bad configuration', () => {
  const run = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ['bin/matview.js', 'serve'], {
      env: { PATH: process.env['PATH'] ?? '', DEMO: 'false', PORT: '0', ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { status: r.status, stderr: r.stderr.trim() };
  };
  const file = join(tempDir(), 'not-a-dir');
  writeFileSync(file, '');

  it.each([
    [{ PORT: 'http' }, 'matview: Invalid configuration: PORT="http" must be a number'],
    [
      { KAFKA_BROKERS: '' },
      'matview: Invalid configuration: KAFKA_BROKERS="" must be a non-empty comma-separated list',
    ],
    [{ DATA_DIR: join(file, 'data') }, `matview: DATA_DIR "${join(file, 'data')}" is not usable:`],
  ])('should exit 1 with one line for %j', (env, start) => {
    const r = run(env);
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr.startsWith(start)).toBe(true);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('matview serve that cannot start', () => {
  it('should close what it opened before it fails: the writer thread, and the data directory released', async () => {
    // A process that exits while its writer thread still loads LMDB aborts in the native module (exit 134,
    // a native stack trace) instead of printing its one line: startServer closes the store first.
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const { port } = blocker.address() as { port: number };
    const dataDir = tempDir();
    try {
      const config = loadConfig({ DEMO: 'false', HOST: '127.0.0.1', PORT: String(port), DATA_DIR: dataDir });
      const error = await startServer(config, silentLogger).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((error as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
      const store = openStore({ path: storePathOf(dataDir), create: false });
      expect(store.liveOwner()).toBeUndefined();
      await store.close();
      await (await claimDataDir(dataDir, 'serve')).release();
    } finally {
      blocker.close();
    }
  });

  it('should close what it opened when a later step of the start fails: the data directory released', async () => {
    // The embedded changelog cannot open (its path is a file): a step after the data directory was claimed.
    const dataDir = tempDir();
    const config = loadConfig({ DEMO: 'false', HOST: '127.0.0.1', PORT: '0', DATA_DIR: dataDir });
    writeFileSync(join(dataDir, 'changelog'), 'not a directory');
    const error = await startServer(config, silentLogger).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    const store = openStore({ path: storePathOf(dataDir), create: false });
    expect(store.liveOwner()).toBeUndefined();
    await store.close();
    await (await claimDataDir(dataDir, 'serve')).release();
  });

  it('should refuse a DATA_DIR another live matview serve writes, and start on it once that one is gone', async () => {
    const dataDir = tempDir();
    const first = await startChildServer({ dataDir });
    const config = loadConfig({ DEMO: 'false', HOST: '127.0.0.1', PORT: '0', DATA_DIR: dataDir });
    const error = await startServer(config, silentLogger).then(
      (running) => running.close().then(() => undefined),
      (e: unknown) => e,
    );
    expect((error as { code?: unknown }).code).toBe('MV_ERR_DATA_DIR');
    expect((error as Error).message).toContain(`process ${first.pid} of this host writes its view store`);
    // Refused before it opened anything: the first one goes on serving.
    const live = await fetch(`${first.url()}/health/live`);
    expect(live.status).toBe(200);
    // Killed, it leaves its gate file behind; nobody answers there, so the next server starts.
    await first.kill();
    const second = await startServer(config, silentLogger);
    await second.close();
  });

  it('should exit 1 with one line naming the address', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const { port } = blocker.address() as { port: number };
    try {
      const child = spawn(process.execPath, ['bin/matview.js', 'serve'], {
        env: {
          PATH: process.env['PATH'] ?? '',
          DEMO: 'false',
          HOST: '127.0.0.1',
          PORT: String(port),
          DATA_DIR: tempDir(),
          LOG_LEVEL: 'silent',
        },
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const status = await new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      expect({ status, stderr: stderr.trim() }).toEqual({
        status: 1,
        stderr: `matview: cannot listen on 127.0.0.1:${port}: address already in use (set PORT to a free port)`,
      });
    } finally {
      blocker.close();
    }
  });
});
