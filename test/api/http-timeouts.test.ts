/** The slowloris guards (SECURITY.md) reach node:http: defaults, and each setting on its own. */
import { describe, expect, it } from 'vitest';
import { startTestApi } from '../utils/testkit.js';

describe('HTTP connection limits', () => {
  it.each([
    [{}, { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, maxConnections: 10_000 }],
    [
      {
        HTTP_HEADERS_TIMEOUT_MS: '2000',
        HTTP_REQUEST_TIMEOUT_MS: '4000',
        HTTP_KEEP_ALIVE_TIMEOUT_MS: '1000',
        HTTP_MAX_CONNECTIONS: '50',
      },
      { headersTimeout: 2_000, requestTimeout: 4_000, keepAliveTimeout: 1_000, maxConnections: 50 },
    ],
  ])('should apply %j to the server', async (env, expected) => {
    const t = await startTestApi({ env });
    try {
      const { headersTimeout, requestTimeout, keepAliveTimeout, maxConnections } = t.api.server;
      expect({ headersTimeout, requestTimeout, keepAliveTimeout, maxConnections }).toEqual(expected);
    } finally {
      await t.close();
    }
  });
});
