/** Embedded changelogs a test file opens, closed after each test (src/feed/embedded-changelog.ts). */
import { afterEach } from 'vitest';
import {
  openEmbeddedChangelog,
  type EmbeddedChangelog,
  type EmbeddedChangelogOptions,
} from '../../src/feed/embedded-changelog.js';
import { silentLogger } from '../../src/ops/logger.js';

/** Options besides the directory; the logger is silent unless given. */
type Extra = Partial<Omit<EmbeddedChangelogOptions, 'dir'>>;

export function useEmbeddedLogs(): {
  openLog: (dir: string, extra?: Extra) => Promise<EmbeddedChangelog>;
  closeLog: (log: EmbeddedChangelog) => Promise<void>;
} {
  const logs: EmbeddedChangelog[] = [];
  afterEach(async () => {
    for (const log of logs.splice(0)) await log.close();
  });
  return {
    async openLog(dir, extra = {}) {
      const log = await openEmbeddedChangelog({ dir, logger: silentLogger, ...extra });
      logs.push(log);
      return log;
    },
    /** Close explicitly (for reopen tests) and forget it so the test's end does not close it twice. */
    async closeLog(log) {
      logs.splice(logs.indexOf(log), 1);
      await log.close();
    },
  };
}
