/** The client-visible code catalogue is documented: api/README.md lists exactly the codes of api/codes.ts. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ApiErrorCode, isApiErrorCode } from '../../api/codes.js';

const readme = readFileSync(fileURLToPath(new URL('../../api/README.md', import.meta.url)), 'utf8');
const section = readme.slice(readme.indexOf('## Error codes'), readme.indexOf('## GraphQL over HTTP'));
const documented = [...section.matchAll(/^\|\s*`([A-Z_]+)`\s*\|/gm)].map((m) => m[1]);

describe('error codes', () => {
  it('api/README.md "Error codes" lists every code, in catalogue order, and nothing else', () => {
    expect(documented).toEqual(Object.values(ApiErrorCode));
  });

  it('codes are unique and recognised', () => {
    const values = Object.values(ApiErrorCode);
    expect(new Set(values).size).toBe(values.length);
    for (const code of values) expect(isApiErrorCode(code)).toBe(true);
    expect(isApiErrorCode('SOMETHING_ELSE')).toBe(false);
  });
});
