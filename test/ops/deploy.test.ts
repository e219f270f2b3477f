/**
 * Issue 6, acceptance 6: the Prometheus rules pass `promtool check rules` and their own unit tests
 * (`promtool test rules`), and the Grafana dashboard is valid JSON whose queries cover every documented
 * metric and name no other.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { documentedMetrics } from './helpers.js';

const promtool = (args: string[], cwd = '.') => {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  if (r.error !== undefined)
    throw new Error(
      `promtool is not installed: run \`npm pretest\` (Debian package "prometheus"): ${r.error.message}`,
    );
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
};

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

describe('deploy/', () => {
  it('should pass promtool check rules on deploy/prometheus/alerts.yml', () => {
    const r = promtool(['check', 'rules', 'deploy/prometheus/alerts.yml']);
    expect({ status: r.status, output: r.output }).toEqual({
      status: 0,
      output: expect.stringContaining('SUCCESS') as unknown as string,
    });
  });

  it('should pass the alert unit tests (seed 002 SLAs and feed stalls fire, healthy series stay quiet)', () => {
    const r = promtool(['test', 'rules', 'alerts.test.yml'], 'deploy/prometheus');
    expect({ status: r.status, output: r.output }).toEqual({
      status: 0,
      output: expect.stringContaining('SUCCESS') as unknown as string,
    });
  });

  it('should ship a Grafana dashboard whose panels query every documented metric and only those', () => {
    const dashboard = JSON.parse(readFileSync('deploy/grafana/matview.json', 'utf8')) as {
      uid: string;
      panels: Panel[];
    };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    const used = new Set(
      exprs.flatMap((e) =>
        [...e.matchAll(/\b(matview_[a-z_]+?)(?:_bucket|_count|_sum)?\b(?=[{[( ]|$)/g)].map((m) => m[1]!),
      ),
    );
    const documented = documentedMetrics().map((m) => m.name);
    expect({
      uid: dashboard.uid,
      missing: documented.filter((m) => !used.has(m)),
      unknown: [...used].filter((m) => !documented.includes(m)),
    }).toEqual({
      uid: 'matview',
      missing: [],
      unknown: [],
    });
  });
});
