/**
 * Scenario 3, freshness: producer → subscriber latency with 1,000 live subscriptions (10 sockets × 100, one
 * watched user each) while records for those users are produced at a fixed rate. Every record is a new
 * tweet of a watched user, so every record changes a watched view. Latency of an event = its arrival at the
 * client − `version.eventTime` (the Kafka timestamp of the newest record it reflects, set by the producer at
 * send). Events conflated by the server count once, with the newest record's time.
 */
import { startKafka } from '../../test/utils/kafka-mock.js';
import { distribution, round, sleep, waitFor, type Scenario } from '../lib/common.js';
import { freshTopics, produceWorkload, quietKafka, startMatviewProcess } from '../lib/records.js';
import { LiveSocket, type Arrival } from '../../test/utils/live-socket.js';
import { waitReady } from './fanout.js';

const QUERY =
  'subscription Fresh($id: ID!) { userChanged(id: $id) { userId kind user { userId tweetCount version { sequence eventTime } } } }';

export const freshness: Scenario = {
  name: 'freshness',
  description: 'producer → subscriber latency at 1k and 5k records/s with 1,000 live subscriptions',
  async run(ctx) {
    const sockets = 10;
    const perSocket = 100;
    const watched = sockets * perSocket;
    const seconds = ctx.quick ? 4 : 10;
    const kafka = await startKafka();
    ctx.defer(() => kafka.stop());
    const topics = freshTopics('fresh');
    await produceWorkload(kafka.brokers, topics, 0, watched, watched, 1);
    const server = await startMatviewProcess({
      DATA_DIR: `${ctx.tmp}/data`,
      KAFKA_BROKERS: kafka.brokers.join(','),
      TOPIC_USERS: topics.users,
      TOPIC_TWEETS: topics.tweets,
      TOPIC_FOLLOWS: topics.follows,
      TOPIC_LIKES: topics.likes,
      KAFKA_FETCH_MAX_WAIT_MS: '20',
      LOG_LEVEL: 'warn',
    });
    ctx.defer(() => server.stop());
    if (!(await waitReady(server.url, 60_000))) throw new Error('server not ready');

    let snapshots = 0;
    let recording = false;
    const arrivals: Arrival[] = [];
    const open: LiveSocket[] = [];
    ctx.defer(() => open.forEach((s) => s.close()));
    for (let i = 0; i < sockets; i++) {
      const s = await LiveSocket.open(server.url, (a) => {
        if (a.data.includes('"SNAPSHOT"')) snapshots++;
        else if (recording) arrivals.push(a);
      });
      open.push(s);
      for (let j = 0; j < perSocket; j++) s.subscribe(QUERY, { id: String(i * perSocket + j) });
    }
    if (!(await waitFor(() => snapshots >= watched, 60_000))) throw new Error(`only ${snapshots} snapshots`);

    const producer = quietKafka(kafka.brokers).producer({ allowAutoTopicCreation: true });
    await producer.connect();
    ctx.defer(() => producer.disconnect());
    let serial = 0;
    for (const rate of [1000, 5000]) {
      arrivals.length = 0;
      recording = true;
      const tickMs = 10;
      const perTick = (rate * tickMs) / 1000;
      const start = performance.now();
      let sent = 0;
      const sends: Promise<unknown>[] = [];
      while (performance.now() - start < seconds * 1000) {
        const due = Math.floor(((performance.now() - start) / 1000) * rate);
        if (due > sent) {
          const n = Math.min(due - sent, perTick * 5);
          const now = String(Date.now());
          const messages = Array.from({ length: n }, () => {
            const id = serial++;
            const user = String(id % watched);
            return {
              key: `fresh-${id}`,
              value: JSON.stringify({ tweetId: `fresh-${id}`, userId: user }),
              timestamp: now,
            };
          });
          sends.push(producer.send({ topic: topics.tweets, acks: 1, messages }));
          sent += n;
        }
        await sleep(tickMs / 2);
      }
      await Promise.all(sends);
      await sleep(1500);
      recording = false;
      const latencies: number[] = [];
      for (const a of arrivals) {
        const m = /"eventTime":"([^"]+)"/.exec(a.data);
        if (m?.[1] !== undefined) latencies.push(a.at - Date.parse(m[1]));
      }
      const d = distribution(latencies);
      const achieved = sent / seconds;
      ctx.row(`${rate} records/s, ${watched} subscriptions`, {
        'records/s sent': round(achieved, 0),
        events: d.count,
        'p50 ms': round(d.p50, 1),
        'p95 ms': round(d.p95, 1),
        'p99 ms': round(d.p99, 1),
        'max ms': round(d.max, 1),
      });
      if (rate === 5000)
        ctx.check('freshness p99 <= 50 ms at 5k records/s', `${d.p99.toFixed(1)} ms`, d.p99 <= 50);
      await sleep(1000);
    }
    ctx.note(
      'freshness: the kcat mock broker does not wake a waiting fetch when records arrive, so KAFKA_FETCH_MAX_WAIT_MS=20 bounds the extra wait (a real broker answers at once); Kafka timestamps have 1 ms resolution',
    );
  },
};
