/**
 * Issue 14.3, recovery: `matview serve` with the shipped defaults (one group id, `matview-<instanceId>`, the
 * same at every restart) is SIGKILLed three times in a row; each time records are produced while it is
 * down, and the restarted process applies them. Nothing here asserts how long that takes (a timing
 * assertion fails under CPU contention); the time from each restart to the records applied is printed,
 * for the README and the report. With the consumer group of old, each restart first waited for the dead
 * member's session to expire (30 s, up to 90 s after repeated kills).
 */
import { describe, expect, it } from 'vitest';
import { spawnChildServer, describeExit } from '../utils/child-server.js';
import { produce, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

const kafka = useKafka();
const json = (o: object) => JSON.stringify(o);

describe('restart after SIGKILL', () => {
  it('should apply the records produced while it was down, after each of three kills in a row, with the shipped defaults', async () => {
    const topics = freshTopics();
    const dataDir = tempDir();
    const tweets = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, k) => ({ key: `t${from + k}`, value: json({ userId: 'u1' }) }));
    await produce(kafka.brokers, topics.users, [{ key: 'u1', value: json({ username: 'zcox' }) }]);
    await produce(kafka.brokers, topics.tweets, tweets(0, 10));

    let child = spawnChildServer({ dataDir, brokers: kafka.brokers, topics });
    const tweetCount = async () =>
      (
        await graphql<{ user: { tweetCount: number } | null }>(
          child.url(),
          '{ user(id: "u1") { tweetCount } }',
        )
      ).data?.user?.tweetCount;
    await child.listening;
    await eventually(
      async () => ((await tweetCount()) === 10 ? true : undefined),
      60_000,
      'the first 10 tweets',
    );

    const measured: number[] = [];
    for (let round = 1; round <= 3; round++) {
      expect(describeExit(await child.kill())).toBe('signal SIGKILL');
      await produce(kafka.brokers, topics.tweets, tweets(10 * round, 10 * (round + 1)));
      const restartedAt = Date.now();
      child = spawnChildServer({ dataDir, brokers: kafka.brokers, topics });
      await child.listening;
      await eventually(
        async () => ((await tweetCount()) === 10 * (round + 1) ? true : undefined),
        120_000,
        `the tweets produced while down (restart ${round})`,
      );
      measured.push(Date.now() - restartedAt);
    }
    console.log(
      `restart-after-kill: ms from each restart to the records produced while down applied: ${measured.join(', ')}`,
    );
    expect(describeExit(await child.terminate())).toBe('code 0');
  }, 300_000);
});
