/**
 * One request header, read from `req.rawHeaders`. Node builds the `req.headers` object on its first access
 * (every header name lower-cased into a fresh object): about a microsecond, which the REST route, at ~15 µs of
 * CPU per request, does not otherwise spend. Routes that need one or two headers scan the raw pairs instead.
 */
import type { IncomingMessage } from 'node:http';

/** The first value of header `lowerName` (lower-case letters, digits and `-`), or undefined. */
export function rawHeader(req: IncomingMessage, lowerName: string): string | undefined {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (sameToken(raw[i] as string, lowerName)) return raw[i + 1];
  }
  return undefined;
}

/** ASCII case-insensitive equality of a header name with a lower-case one, without allocating. */
function sameToken(name: string, lowerName: string): boolean {
  if (name.length !== lowerName.length) return false;
  for (let i = 0; i < name.length; i++) {
    // Setting bit 0x20 lower-cases A-Z and leaves digits and '-' as they are.
    if ((name.charCodeAt(i) | 0x20) !== lowerName.charCodeAt(i)) return false;
  }
  return true;
}
