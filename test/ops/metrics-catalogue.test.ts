/** docs/metrics.md is the catalogue (like docs/errors.md): every metric the code registers, with its type and labels. */
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/ops/metrics.js';
import { documentedMetrics } from './helpers.js';

describe('metrics catalogue', () => {
  it('should document exactly the metrics the code registers, with their types and labels', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const inCode = (await metrics.registry.getMetricsAsJSON()).map((m) => ({
      name: m.name,
      type: String(m.type),
      labels: [
        ...((metrics.registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] }).labelNames ??
          []),
      ],
    }));
    const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : 1);
    expect(documentedMetrics().sort(byName)).toEqual(inCode.sort(byName));
  });
});
