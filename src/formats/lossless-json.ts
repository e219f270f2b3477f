/**
 * JSON parsing that keeps 64-bit integers exact. `JSON.parse` turns every number into a double, so
 * `1234567890123456789` (a Postgres `bigint` id, a Debezium `NanoTimestamp`) comes back as
 * `1234567890123456800`. Node 20's `JSON.parse` reviver gets no source text (TC39 "JSON.parse source
 * text access" shipped in V8 only later), so the rounding cannot be undone after the fact.
 *
 * Result: the same values as `JSON.parse`, except that an integer literal outside
 * ±Number.MAX_SAFE_INTEGER becomes a `bigint`. Fast path: a text with no run of 16 or more digits
 * holds no such literal (a safe integer has at most 16 digits, and every 16-digit one is checked
 * on the slow path), so `JSON.parse` reads it unchanged; only texts with long digit runs take the
 * parser below. Both paths accept exactly RFC 8259 JSON.
 */

export type JsonValue =
  null | boolean | number | bigint | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

const LONG_DIGITS = /\d{16}/;

/** Parses `text` as JSON, keeping unsafe integers exact as bigint. Throws SyntaxError like JSON.parse. */
export function parseLosslessJson(text: string): JsonValue {
  if (!LONG_DIGITS.test(text)) return JSON.parse(text) as JsonValue;
  return new Parser(text).document();
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};
/** Nesting deeper than this is refused (JSON.parse would overflow the stack somewhere past ~5,000). */
const MAX_DEPTH = 1_000;

class Parser {
  private i = 0;
  private depth = 0;
  constructor(private readonly s: string) {}

  document(): JsonValue {
    const v = this.value();
    this.ws();
    if (this.i < this.s.length) this.fail('Unexpected non-whitespace character after JSON');
    return v;
  }

  private fail(what: string): never {
    throw new SyntaxError(`${what} at position ${this.i}`);
  }

  private ws(): void {
    while (this.i < this.s.length && WS.has(this.s.charCodeAt(this.i))) this.i++;
  }

  private value(): JsonValue {
    this.ws();
    const c = this.s[this.i];
    switch (c) {
      case '{':
        return this.object();
      case '[':
        return this.array();
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail(c === undefined ? 'Unexpected end of JSON input' : `Unexpected token ${c}`);
    }
  }

  private literal<T>(word: string, v: T): T {
    if (!this.s.startsWith(word, this.i)) this.fail(`Unexpected token ${this.s[this.i] ?? ''}`);
    this.i += word.length;
    return v;
  }

  private number(): number | bigint {
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.s);
    if (m === null) return this.fail('Invalid number');
    this.i += m[0].length;
    const text = m[0];
    if (m[1] === undefined && m[2] === undefined) {
      const n = Number(text);
      return Number.isSafeInteger(n) ? n : BigInt(text);
    }
    return Number(text);
  }

  private string(): string {
    const s = this.s;
    let i = this.i + 1;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= s.length) {
        this.i = i;
        this.fail('Unterminated string in JSON');
      }
      const c = s.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) {
        this.i = i;
        this.fail('Bad control character in string literal');
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += s.slice(start, i);
      const e = s[i + 1];
      if (e === 'u') {
        const hex = s.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
          this.i = i;
          this.fail('Bad Unicode escape in JSON');
        }
        out += String.fromCharCode(parseInt(hex, 16));
        i += 6;
      } else {
        const r = e === undefined ? undefined : ESCAPES[e];
        if (r === undefined) {
          this.i = i;
          this.fail('Bad escaped character in JSON');
        }
        out += r;
        i += 2;
      }
      start = i;
    }
    out += s.slice(start, i);
    this.i = i + 1;
    return out;
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) this.fail(`JSON nested deeper than ${MAX_DEPTH} levels`);
    this.i++;
  }

  private array(): JsonValue[] {
    this.enter();
    const out: JsonValue[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      this.depth--;
      return out;
    }
    for (;;) {
      out.push(this.value());
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') break;
      if (c !== ',') {
        this.i--;
        this.fail("Expected ',' or ']' after array element");
      }
    }
    this.depth--;
    return out;
  }

  private object(): Record<string, JsonValue> {
    this.enter();
    const out: Record<string, JsonValue> = {};
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      this.depth--;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail('Expected double-quoted property name in JSON');
      const key = this.string();
      this.ws();
      if (this.s[this.i] !== ':') this.fail("Expected ':' after property name in JSON");
      this.i++;
      // defineProperty: a "__proto__" key is data, as with JSON.parse, not the object's prototype.
      Object.defineProperty(out, key, {
        value: this.value(),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      this.ws();
      const c = this.s[this.i++];
      if (c === '}') break;
      if (c !== ',') {
        this.i--;
        this.fail("Expected ',' or '}' after property value in JSON");
      }
    }
    this.depth--;
    return out;
  }
}
