/**
 * Issue 6, acceptance 5: `matview verify` passes on a healthy store and fails, naming the user, after a
 * view entry was corrupted on purpose (and after a user state was).
 */
import { join } from 'node:path';
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { dbName } from '../../src/store/generation.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { decodeView, encodeView } from '../../src/views/codec.js';
import type { Row, UserState } from '../../src/views/user-information.js';
import { successiveChanges, usersRow } from '../utils/rows.js';
import { tempDir } from '../utils/tmp.js';
import { runCli } from './run-cli.js';

const user = (username: string): Row => usersRow(username, { name: 'Name' });
const change = successiveChanges();

/** A store with three users and a mix of tweets, follows, likes, an update that moves a tweet and a delete. */
async function healthyStore(): Promise<string> {
  const dataDir = tempDir();
  const store = openStore({ path: join(dataDir, 'view'), viewVersion: 1 });
  await store.applyBatch({
    changes: [
      change('users', 'alice', user('alice')),
      change('users', 'bob', user('bob')),
      change('users', 'carol', user('carol')),
      change('tweets', 't1', { table: 'tweets', userId: 'alice' }),
      change('tweets', 't2', { table: 'tweets', userId: 'alice' }),
      change('tweets', 't3', { table: 'tweets', userId: 'bob' }),
      change('follows', 'f1', { table: 'follows', followerId: 'bob', followeeId: 'alice' }),
      change('follows', 'f2', { table: 'follows', followerId: 'carol', followeeId: 'alice' }),
      change('likes', 'l1', { table: 'likes', userId: 'carol' }),
    ],
    positions: [],
  });
  await store.applyBatch({
    changes: [
      change('tweets', 't2', { table: 'tweets', userId: 'bob' }),
      change('follows', 'f2', null),
      change('users', 'ghost', user('ghost')),
    ],
    positions: [],
  });
  await store.close();
  return dataDir;
}

describe('matview verify', () => {
  it('should pass on a healthy store and fail naming the user after a view entry is corrupted', async () => {
    const dataDir = await healthyStore();
    const ok = await runCli(['verify'], { DATA_DIR: dataDir });
    expect({ code: ok.code, stdout: ok.stdout, stderr: ok.stderr }).toEqual({
      code: 0,
      stdout:
        'verify: OK: every view matches its rows; generation 0 (view version 1), 4 users, rows: 4 users, 3 tweets, 1 follows, 1 likes\n',
      stderr: '',
    });

    // Corrupt bob's stored view: one tweet too many.
    const env = open({ path: join(dataDir, 'view'), maxDbs: 64 });
    const views = env.openDB<Buffer, string>({ name: dbName('views', 0), encoding: 'binary' });
    const bob = decodeView(views.getBinary('bob')!);
    await views.put('bob', encodeView({ ...bob, tweetCount: bob.tweetCount + 1 }));
    await env.close();

    const bad = await runCli(['verify'], { DATA_DIR: dataDir });
    expect({ code: bad.code, lines: bad.stdout.trim().split('\n') }).toEqual({
      code: 1,
      lines: [
        'user bob: view tweetCount is 3, rows say 2',
        'verify: FAILED: 1 of 4 users differ from their rows; generation 0 (view version 1), 4 users, rows: 4 users, 3 tweets, 1 follows, 1 likes',
      ],
    });
  });

  it('should name users whose stored state drifted or whose view is missing', async () => {
    const dataDir = await healthyStore();
    const env = open({ path: join(dataDir, 'view'), maxDbs: 64 });
    const users = env.openDB<UserState, string>({ name: dbName('users', 0) });
    const alice = users.get('alice')!;
    await users.put('alice', { ...alice, counts: { ...alice.counts, followerCount: 7 } });
    await env.openDB<Buffer, string>({ name: dbName('views', 0), encoding: 'binary' }).remove('carol');
    await env.close();

    const bad = await runCli(['verify'], { DATA_DIR: dataDir });
    expect({ code: bad.code, lines: bad.stdout.trim().split('\n').slice(0, 2) }).toEqual({
      code: 1,
      lines: ['user alice: state followerCount is 7, rows say 1', 'user carol: has a users row but no view'],
    });
  });

  it('should exit 1 with one line when DATA_DIR holds no store, and 2 on bad usage', async () => {
    const missing = await runCli(['verify'], { DATA_DIR: tempDir() });
    expect({ code: missing.code, stderr: missing.stderr.trim() }).toEqual({
      code: 1,
      stderr: expect.stringMatching(
        /^matview: No matview store in ".*\/view": check DATA_DIR/,
      ) as unknown as string,
    });
    const usage = await runCli(['verify', '--nope'], { DATA_DIR: tempDir() });
    expect({ code: usage.code, first: usage.stderr.split('\n')[0] }).toEqual({
      code: 2,
      first: "matview verify: Unknown option '--nope'",
    });
  });
});
