/**
 * The bare kafkajs consumers of bench/lib/bare-consumer.ts, driven from the runner: the client's own rate
 * over topics already produced (the ceiling of a catch-up), and its produce → receive latency while records
 * are produced (the floor of freshness). Each runs in its own process, so neither shares an event loop with
 * the bench's clients nor with the server under test.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { killOnExit, ROOT } from './common.js';
import type { BareConsumerMessage, BareConsumerOptions } from './bare-consumer.js';

function startChild(options: BareConsumerOptions): ChildProcess {
  const child = fork(`${ROOT}/bench/lib/bare-consumer.ts`, [JSON.stringify(options)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  killOnExit(child);
  return child;
}

function next<T extends BareConsumerMessage>(
  child: ChildProcess,
  is: (m: BareConsumerMessage) => m is T,
  timeoutMs: number,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`bare consumer: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (m: BareConsumerMessage) => {
      if (!is(m)) return;
      cleanup();
      resolve(m);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`bare consumer exited with ${String(code)}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

export interface Drained {
  readonly records: number;
  /** From the first fetched batch to the last record: the client's own rate. */
  readonly recordsPerSecond: number;
  /** Including connecting (and, for a group, joining it) before the first batch. */
  readonly recordsPerSecondFromStart: number;
  readonly firstBatchMs: number;
}

/** Reads the topics from the earliest to the end offsets with a bare consumer; its rate. */
export async function drainRate(
  brokers: readonly string[],
  topics: readonly string[],
  reader: BareConsumerOptions['reader'],
  maxWaitMs: number,
  timeoutMs: number,
): Promise<Drained> {
  const child = startChild({ brokers, topics, reader, mode: 'drain', maxWaitMs });
  try {
    const { drained: d } = await next(child, (m) => 'drained' in m, timeoutMs);
    return {
      records: d.records,
      recordsPerSecond: d.records / ((d.doneAt - d.firstAt) / 1000),
      recordsPerSecondFromStart: d.records / ((d.doneAt - d.startedAt) / 1000),
      firstBatchMs: d.firstAt - d.startedAt,
    };
  } finally {
    child.kill('SIGKILL');
  }
}

export interface LatencyProbe {
  /** Kafka timestamps and produce → receive latencies (ms) of the records received since the previous call. */
  take(): Promise<{ timestamps: number[]; latencies: number[] }>;
  stop(): void;
}

/** A bare consumer reading the topics from their end offsets, ready once it is fetching. */
export async function startLatencyProbe(
  brokers: readonly string[],
  topics: readonly string[],
  reader: BareConsumerOptions['reader'],
  maxWaitMs: number,
): Promise<LatencyProbe> {
  const child = startChild({ brokers, topics, reader, mode: 'latency', maxWaitMs });
  await next(child, (m) => 'started' in m, 60_000);
  return {
    take: async () => {
      const answer = next(child, (m) => 'samples' in m, 30_000);
      child.send('take');
      return (await answer).samples;
    },
    stop: () => child.kill('SIGKILL'),
  };
}
