/**
 * Reads a topic's `cleanup.policy` through the admin API (DescribeConfigs), so a view topic that is not
 * compacted can be reported at start (docs/view-topic.md): without compaction its log grows with every
 * change, and a replica started late reads all of it instead of one value per user.
 *
 * DescribeConfigs goes to the controller; clusters that do not let this client describe configs (ACLs), and
 * librdkafka's mock cluster (which names a controller it does not list), cannot answer: the caller then says
 * it could not check, rather than guessing.
 */
import { kafkajs } from './kafkajs-module.js';
import { createKafkaClient, type KafkaClientOptions } from './kafka-source.js';

const { ConfigResourceTypes } = kafkajs;

export type CleanupPolicy =
  { readonly known: true; readonly policy: string } | { readonly known: false; readonly reason: string };

/** How long the check may take: it only produces a warning, never delays serving for long. */
const CHECK_TIMEOUT_MS = 10_000;

export async function cleanupPolicy(options: KafkaClientOptions, topic: string): Promise<CleanupPolicy> {
  const admin = createKafkaClient({ ...options, retry: { retries: 1 } }).admin();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CleanupPolicy>((resolve) => {
    timer = setTimeout(
      () => resolve({ known: false, reason: `no answer within ${CHECK_TIMEOUT_MS} ms` }),
      CHECK_TIMEOUT_MS,
    );
  });
  const ask = (async (): Promise<CleanupPolicy> => {
    try {
      await admin.connect();
      const described = await admin.describeConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy'] }],
        includeSynonyms: false,
      });
      const entry = described.resources[0]?.configEntries.find((e) => e.configName === 'cleanup.policy');
      if (entry === undefined) return { known: false, reason: 'the broker did not return cleanup.policy' };
      return { known: true, policy: entry.configValue };
    } catch (err) {
      return { known: false, reason: err instanceof Error ? err.message : String(err) };
    }
  })();
  try {
    return await Promise.race([ask, timeout]);
  } finally {
    clearTimeout(timer);
    await admin.disconnect().catch(() => undefined);
  }
}

/** `cleanup.policy` values that compact (`compact`, or `compact,delete`). */
export const isCompacted = (policy: string): boolean =>
  policy
    .split(',')
    .map((p) => p.trim())
    .includes('compact');
