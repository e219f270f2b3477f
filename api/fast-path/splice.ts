/**
 * `user(id)` asking for exactly seed 002's fields in seed 002's order (what the REST route sends, and what
 * most clients of this API ask for) is answered with the stored REST bytes themselves:
 * `{"data":{"user":` + bytes + `}}`. No decoding and no per-field serialization.
 *
 * The stored JSON (src/views/codec.ts) has the same keys in the same order, and its values are what the
 * GraphQL serialization gives (strings, ints, null, dates as `toISOString()`), except in cases graphql-js
 * turns into errors or re-formats. Those are checked on the bytes, and any of them sends the request down
 * the general plan (which leaves errors to Apollo):
 * - `username` (String!) null: a non-null error;
 * - `joinedDate` not in the canonical `toISOString()` form: the DateTime scalar re-formats it;
 * - a count beyond a 32-bit Int: an Int serialization error.
 */
import { COUNT_FIELDS, REST_FIELDS } from '../../src/views/user-information.js';
import { isCanonicalIso } from './serialize.js';

/** Response keys of a selection, in order; true when they are exactly the REST fields, unaliased. */
export function selectsRestFields(
  selection: readonly { key: string; name: string; leaf: boolean }[],
): boolean {
  return (
    selection.length === REST_FIELDS.length &&
    selection.every((f, i) => f.leaf && f.key === REST_FIELDS[i] && f.name === f.key)
  );
}

const MAX_INT = 2 ** 31 - 1;
const USERNAME_NULL = '"username":null';
const JOINED = '"joinedDate":';
const COUNT_KEYS = COUNT_FIELDS.map((f) => `"${f}":`);

/** True when `json` (a stored REST object) serializes as GraphQL would serialize the same fields. */
export function isSpliceable(json: string): boolean {
  if (json.includes(USERNAME_NULL)) return false;
  const joined = json.indexOf(JOINED);
  if (joined === -1) return false;
  const at = joined + JOINED.length;
  if (
    !json.startsWith('null', at) &&
    !(json[at] === '"' && json[at + 25] === '"' && isCanonicalIso(json.slice(at + 1, at + 25)))
  )
    return false;
  let from = at;
  for (const key of COUNT_KEYS) {
    const k = json.indexOf(key, from);
    if (k === -1) return false;
    let i = k + key.length;
    let n = 0;
    let digits = 0;
    for (; i < json.length; i++, digits++) {
      const d = json.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      n = n * 10 + d;
    }
    if (digits === 0 || digits > 10 || n > MAX_INT) return false;
    from = i;
  }
  return true;
}
