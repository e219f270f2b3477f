/**
 * `matview serve` against a secured broker (the stand-in of test/utils/kafka-stand-in.ts: SCRAM over TLS)
 * as an operator runs it, in a child process. With a wrong password the server still starts and serves
 * reads, says why the feed is not running in one log line, `feedStatus` and a metric, and keeps retrying;
 * and nothing it prints or serves holds the password, even at LOG_LEVEL=debug. A bad secret setting stops
 * it at start with one line that does not quote the secret either.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCerts, type TestCerts } from '../utils/certs.js';
import { spawnChildServer, describeExit, type ChildServer } from '../utils/child-server.js';
import { startStandIn, type StandIn } from '../utils/kafka-stand-in.js';
import { eventually, graphql } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

const RIGHT = 'Right-Pa55word-for-matview';
const WRONG = 'Wr0ng-Pa55word-7f3c91d2';

let certs: TestCerts;
let broker: StandIn;
const users: Record<string, string> = { matview: RIGHT };

beforeAll(async () => {
  certs = makeTestCerts();
  broker = await startStandIn({
    tls: { key: certs.serverKey, cert: certs.serverCert },
    sasl: { mechanisms: ['SCRAM-SHA-256'], users },
    topics: { users: 2, tweets: 2, follows: 2, likes: 2 },
  });
});
afterAll(async () => {
  await broker?.close();
});

const securedEnv = (password: string) => ({
  KAFKA_SSL: 'true',
  KAFKA_SSL_CA_FILE: certs.caFile,
  KAFKA_SASL_MECHANISM: 'scram-sha-256',
  KAFKA_SASL_USERNAME: 'matview',
  KAFKA_SASL_PASSWORD: password,
  LOG_LEVEL: 'debug',
});

interface FeedStatusBody {
  feedStatus: { state: string; reason: string | null; ready: boolean };
}

describe('a secured cluster', () => {
  it('should serve reads and report a refused password without ever printing or serving it, then run once it is accepted', async () => {
    const child: ChildServer = spawnChildServer({
      dataDir: tempDir(),
      brokers: broker.brokers,
      env: securedEnv(WRONG),
    });
    await child.listening;
    const url = child.url();
    const status = await eventually(
      async () => {
        const r = await graphql<FeedStatusBody>(url, '{ feedStatus { state reason ready } }');
        return r.data?.feedStatus.state === 'RETRYING' &&
          /authentication failed/i.test(r.data.feedStatus.reason ?? '')
          ? r.data.feedStatus
          : undefined;
      },
      30_000,
      'feedStatus to report the authentication failure',
    );
    expect(status.ready).toBe(false);
    // Reads go on from the store.
    expect((await graphql(url, '{ user(id: "u1") { userId } }')).data).toEqual({ user: null });
    expect((await fetch(`${url}/users/u1`)).status).toBe(404);
    expect((await fetch(`${url}/health/live`)).status).toBe(200);
    expect((await fetch(`${url}/health/ready`)).status).toBe(503);
    // Retried with backoff: several attempts counted, one log line naming the cause.
    const attempts = async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return Number(/^matview_kafka_failures_total\{cause="authentication"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    await eventually(async () => ((await attempts()) >= 3 ? true : undefined), 30_000, 'three attempts');
    const authLines = child.logs().filter((l) => l['code'] === 'MV_ERR_KAFKA_AUTH');
    expect(authLines).toHaveLength(1);
    expect(authLines[0]).toMatchObject({ level: 50, cause: 'authentication' });
    expect(String(authLines[0]!['msg'])).toMatch(
      /^Kafka authentication failed: .*SCRAM.*KAFKA_SASL_MECHANISM/,
    );

    // Nothing served or printed holds the password.
    const served = [
      await (await fetch(`${url}/metrics`)).text(),
      JSON.stringify(await graphql(url, '{ feedStatus { state reason ready source partitions { topic } } }')),
      await (await fetch(`${url}/health/ready`)).text(),
      await (await fetch(`${url}/health/live`)).text(),
    ].join('\n');
    const printed = child
      .logs()
      .map((l) => JSON.stringify(l))
      .join('\n');
    expect(printed.length).toBeGreaterThan(0);
    expect(served).not.toContain(WRONG);
    expect(printed).not.toContain(WRONG);
    expect(printed).not.toContain(RIGHT);

    // The credential store now accepts it (as after fixing a rotated password on the broker side): the
    // feed recovers by itself, no restart needed.
    users['matview'] = WRONG;
    await eventually(
      async () =>
        (await graphql<FeedStatusBody>(url, '{ feedStatus { state } }')).data?.feedStatus.state === 'RUNNING'
          ? true
          : undefined,
      60_000,
      'running once the password is accepted',
    );
    expect(describeExit(await child.terminate())).toBe('code 0');
    expect(
      child
        .logs()
        .map((l) => JSON.stringify(l))
        .join('\n'),
    ).not.toContain(WRONG);
    users['matview'] = RIGHT;
  });

  it('should stop at start with one line naming a bad secret setting without quoting the secret', async () => {
    const child = spawnChildServer({
      dataDir: tempDir(),
      brokers: broker.brokers,
      env: { ...securedEnv(WRONG), KAFKA_SASL_PASSWORD_FILE: '/nonexistent/password' },
    });
    const exit = await child.exited;
    expect(describeExit(exit)).toBe('code 1');
    const lines = child.logs().map((l) => String(l.msg ?? JSON.stringify(l)));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set/);
    expect(lines.join('\n')).not.toContain(WRONG);
  });
});
