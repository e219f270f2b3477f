/**
 * The automatic persisted queries cache (Apollo's APQ protocol: a client sends the SHA-256 of its query; the
 * server answers from the text it registered before, or says PERSISTED_QUERY_NOT_FOUND and the client sends
 * both once). Bounded by the bytes of text it holds (`APQ_CACHE_BYTES`): clients choose what goes in, so an
 * unbounded cache would be theirs to fill. Least recently used out first.
 *
 * It is Apollo's `persistedQueries.cache` (the `KeyValueCache` interface of @apollo/utils.keyvaluecache, keys
 * `apq:<hash>`) and, through `peek`, the fast path's: a hash-only request whose text is here is served by a
 * compiled plan like any other (api/http/graphql-route.ts).
 */

/** Apollo's `KeyValueCache<string>`, structurally. */
export interface TextCache {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, options?: { ttl?: number | null }): Promise<void>;
  delete(key: string): Promise<boolean>;
}

/** Apollo's key for the text of a hash (`APQ_CACHE_PREFIX` in @apollo/server's request pipeline). */
export const apqKey = (sha256Hash: string): string => `apq:${sha256Hash}`;

export class BoundedTextCache implements TextCache {
  /** Map order is recency: a hit moves its entry to the back, eviction takes from the front. */
  readonly #entries = new Map<string, string>();
  #bytes = 0;

  constructor(readonly maxBytes: number) {}

  /** Bytes of key and text held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Synchronous lookup (the fast path's), counting as a use. */
  peek(key: string): string | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  get(key: string): Promise<string | undefined> {
    return Promise.resolve(this.peek(key));
  }

  /** Stores `value` (a TTL is ignored: only size bounds it); a text larger than the whole cache is not kept. */
  set(key: string, value: string): Promise<void> {
    this.#remove(key);
    const size = sizeOf(key, value);
    if (size <= this.maxBytes) {
      this.#entries.set(key, value);
      this.#bytes += size;
      for (const [oldest, text] of this.#entries) {
        if (this.#bytes <= this.maxBytes) break;
        this.#entries.delete(oldest);
        this.#bytes -= sizeOf(oldest, text);
      }
    }
    return Promise.resolve();
  }

  delete(key: string): Promise<boolean> {
    return Promise.resolve(this.#remove(key));
  }

  #remove(key: string): boolean {
    const old = this.#entries.get(key);
    if (old === undefined) return false;
    this.#entries.delete(key);
    this.#bytes -= sizeOf(key, old);
    return true;
  }
}

const sizeOf = (key: string, value: string): number => Buffer.byteLength(key) + Buffer.byteLength(value);
