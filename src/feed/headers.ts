/**
 * Header maps built from names a producer chose. `headers[name] = value` is wrong for one name:
 * `__proto__` would set the object's prototype instead of adding a header (and every later lookup would
 * fall through to the value's own properties). Every header map the feed builds goes through here.
 */

/** Sets `name` as an own enumerable property of `target`, whatever the name. */
export function setHeader<T>(target: Record<string, T>, name: string, value: T): void {
  if (name === '__proto__')
    Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
  else target[name] = value;
}

/**
 * The headers of every record that has none, in any of the feed's header shapes: one frozen object, not one
 * per record (a prefetch holds hundreds of thousands of records while a catch-up runs, and the collector
 * walks each object they keep). Nothing writes to a record's headers.
 */
export const NO_HEADERS: Readonly<Record<string, never>> = Object.freeze({});
