/** Docs that match the code: every setting is in the README, and the README's set-up commands are the two promised. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES } from '../src/ops/config.js';

const readme = readFileSync('README.md', 'utf8');

describe('README', () => {
  it('should document every configuration variable in its table', () => {
    const documented = new Set(
      [...readme.matchAll(/^\| `([A-Z_]+)`(?:, `([A-Z_]+)`)*/gm)].flatMap((m) =>
        [...m[0].matchAll(/`([A-Z_]+)`/g)].map((x) => x[1]!),
      ),
    );
    expect(CONFIG_VARIABLES.filter((v) => !documented.has(v))).toEqual([]);
  });

  it('should give a newcomer exactly the start and test commands', () => {
    const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
    expect(blocks.slice(0, 2)).toEqual(['npm ci && npm start', 'npm test']);
  });
});

describe('docker-compose.yml', () => {
  it('should be valid YAML describing Kafka in KRaft mode, matview pointed at it, and the demo producer', () => {
    const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as {
      services: Record<
        string,
        { image?: string; command?: string[]; environment?: Record<string, unknown>; depends_on?: unknown }
      >;
    };
    const { kafka, matview, demo } = compose.services;
    expect(kafka?.image).toMatch(/^apache\/kafka:/);
    expect(kafka?.environment?.['KAFKA_PROCESS_ROLES']).toBe('broker,controller');
    expect(matview?.command).toEqual(['serve']);
    expect(matview?.environment?.['KAFKA_BROKERS']).toBe('kafka:9092');
    expect(demo?.command).toEqual(['demo', '--kafka']);
    expect(demo?.environment?.['KAFKA_BROKERS']).toBe('kafka:9092');
  });
});
