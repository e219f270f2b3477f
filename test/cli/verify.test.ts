/**
 * Issue 6, acceptance 5: `matview verify` passes on a healthy store and fails, naming the user, after a
 * view entry was corrupted on purpose (and after a user state was).
 */
import { join } from 'node:path';
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { ReplicaBatch } from '../../src/materializer/change-batch.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { decodeView, encodeView } from '../../src/views/codec.js';
import type { Row, Table } from '../../src/views/source.js';
import { countsCodec } from '../../src/views/user-information.js';
import { commitInput, profile, type TestRecord } from '../utils/changes.js';
import { makeUser } from '../utils/testkit.js';
import { tempDir } from '../utils/tmp.js';
import { runCli } from './run-cli.js';

const user = (username: string): Row => profile(username, { name: 'Name' });
let offset = 0;
const change = (table: Table, key: string, row: Row | null): TestRecord => ({
  table,
  key,
  row,
  offset: offset++,
});
const VIEWS_DB = 'g1/user-information#1/views';
const COUNTS_DB = 'g1/user-information#1/counts';

/** A store with three users and a mix of tweets, follows, likes, an update that moves a tweet and a delete. */
async function healthyStore(): Promise<string> {
  const dataDir = tempDir();
  const store = openStore({ path: join(dataDir, 'view') });
  await store.applyBatch(
    commitInput([
      change('users', 'alice', user('alice')),
      change('users', 'bob', user('bob')),
      change('users', 'carol', user('carol')),
      change('tweets', 't1', { table: 'tweets', userId: 'alice' }),
      change('tweets', 't2', { table: 'tweets', userId: 'alice' }),
      change('tweets', 't3', { table: 'tweets', userId: 'bob' }),
      change('follows', 'f1', { table: 'follows', followerId: 'bob', followeeId: 'alice' }),
      change('follows', 'f2', { table: 'follows', followerId: 'carol', followeeId: 'alice' }),
      change('likes', 'l1', { table: 'likes', userId: 'carol', tweetId: 't1' }),
    ]),
  );
  await store.applyBatch(
    commitInput([
      change('tweets', 't2', { table: 'tweets', userId: 'bob' }),
      change('follows', 'f2', null),
      change('users', 'ghost', user('ghost')),
      // A user with no users row: UserInformation keeps its counts in the counts space.
      change('tweets', 't4', { table: 'tweets', userId: 'dave' }),
    ]),
  );
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
        'verify: OK: every view matches its rows; generation 1; views: user-information 5 keys, top-users 21 keys, totals 1 keys; rows: 4 users, 4 tweets, 1 follows, 1 likes\n',
      stderr: '',
    });

    // Corrupt bob's stored view: one tweet too many.
    const env = open({ path: join(dataDir, 'view'), maxDbs: 128 });
    const views = env.openDB<Buffer, string>({ name: VIEWS_DB, encoding: 'binary' });
    const bob = decodeView(views.getBinary('bob')!);
    await views.put('bob', encodeView({ ...bob, tweetCount: bob.tweetCount + 1 }));
    await env.close();

    const bad = await runCli(['verify'], { DATA_DIR: dataDir });
    expect({ code: bad.code, lines: bad.stdout.trim().split('\n') }).toEqual({
      code: 1,
      lines: [
        'user-information bob: view tweetCount is 3, rows say 2',
        'verify: FAILED: 1 keys differ from the rows; generation 1; views: user-information 5 keys, top-users 21 keys, totals 1 keys; rows: 4 users, 4 tweets, 1 follows, 1 likes',
      ],
    });
  });

  it('should name users whose stored state drifted or whose view is missing', async () => {
    const dataDir = await healthyStore();
    const env = open({ path: join(dataDir, 'view'), maxDbs: 128 });
    const counts = env.openDB<Buffer, string>({ name: COUNTS_DB, encoding: 'binary' });
    const dave = countsCodec.decode(counts.getBinary('dave')!);
    await counts.put('dave', countsCodec.encode({ ...dave, followerCount: 7 }));
    // alice has a users row: her counts are in her view, and an entry in the counts space is wrong.
    await counts.put('alice', countsCodec.encode({ ...dave, tweetCount: 2 }));
    await env.openDB<Buffer, string>({ name: VIEWS_DB, encoding: 'binary' }).remove('carol');
    await env.close();

    const bad = await runCli(['verify'], { DATA_DIR: dataDir });
    expect({ code: bad.code, lines: bad.stdout.trim().split('\n').slice(0, 3) }).toEqual({
      code: 1,
      lines: [
        'user-information alice: has a counts entry the rows do not give (a user keeps its counts in its view while it has a users row, and none while all are zero)',
        'user-information carol: has a users row but no view',
        'user-information dave: stored followerCount is 7, rows say 0',
      ],
    });
  });

  it("should check a replica's counts and rankings against its replicated views", async () => {
    const dataDir = tempDir();
    const store = openStore({ path: join(dataDir, 'view') });
    await store.recordRole({ kind: 'replica', topic: 'views' });
    const batch = new ReplicaBatch();
    for (let n = 0; n < 3; n++) batch.push('user-information', String(n), makeUser(n), 'views', 0, String(n));
    await store.applyBatch({ replica: batch.columns(), positions: [] });
    await store.close();
    const ok = await runCli(['verify'], { DATA_DIR: dataDir });
    expect({ code: ok.code, stdout: ok.stdout }).toEqual({
      code: 0,
      stdout:
        'verify: OK: every view matches the views of view topic "views"; generation 1; views: user-information 3 keys, top-users 17 keys, totals 0 keys\n',
    });

    // A replica keeps no counts space entries (its users' counts are in their views).
    const env = open({ path: join(dataDir, 'view'), maxDbs: 128 });
    const counts = env.openDB<Buffer, string>({ name: COUNTS_DB, encoding: 'binary' });
    await counts.put('1', countsCodec.encode(makeUser(1)));
    await env.close();
    const bad = await runCli(['verify'], { DATA_DIR: dataDir });
    expect({ code: bad.code, first: bad.stdout.split('\n')[0] }).toEqual({
      code: 1,
      first:
        'user-information 1: has a counts entry the rows do not give (a user keeps its counts in its view while it has a users row, and none while all are zero)',
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
