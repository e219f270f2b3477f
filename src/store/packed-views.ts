/**
 * A commit's changed user views as they cross from the writer thread to the event loop: every value in its
 * stored form (src/views/codec.ts, the bytes readers get), packed into one buffer that is transferred, not
 * copied. The event loop decodes a value only when something asks for it: the live hub, for the users
 * somebody watches. As objects, the views of 22k users took 45 ms to serialize on the writer thread and
 * 85-120 ms to deserialize on the event loop, in one piece (v8.serialize/deserialize, the structured clone's
 * format, on the 2-core bench box); 200k users, one catch-up commit's worth, 400 ms and ~1 s, during which
 * no read was answered. Packed, the event loop receives the keys and two buffers: 1 ms for 22k users, 5-130
 * ms for 200k, plus ~120 ms to index them on the first lookup. The bytes are those the commit stored
 * (codec.ts `encodeViewOnce`), so packing copies them instead of encoding each view again.
 */
import { decodeView, encodeViewOnce } from '../views/codec.js';
import type { UserInformation } from '../views/user-information.js';
import { LazyUserViews } from './lazy-user-views.js';

/** The wire form. A value's bytes end at `ends[i]` and start where the previous ended; none: gone (null). */
export interface PackedViews {
  readonly keys: readonly string[];
  readonly bytes: Uint8Array;
  readonly ends: Uint32Array;
}

/** Packs the changed views of one commit (userId → view, null: gone), in the map's order. */
export function packViews(views: ReadonlyMap<string, UserInformation | null>): PackedViews {
  const keys: string[] = [];
  const encoded: (Buffer | undefined)[] = [];
  let total = 0;
  for (const [key, view] of views) {
    keys.push(key);
    // The bytes the commit stored (codec.ts): encoded once.
    const bytes = view === null ? undefined : encodeViewOnce(view);
    encoded.push(bytes);
    total += bytes?.length ?? 0;
  }
  // Own ArrayBuffers (never Buffer's shared pool): both are transferred, which detaches them here.
  const bytes = new Uint8Array(total);
  const ends = new Uint32Array(keys.length);
  let at = 0;
  for (let i = 0; i < encoded.length; i++) {
    const b = encoded[i];
    if (b !== undefined) {
      bytes.set(b, at);
      at += b.length;
    }
    ends[i] = at;
  }
  return { keys, bytes, ends };
}

/** What `postMessage` must transfer rather than copy. */
export const transferablesOf = (packed: PackedViews): ArrayBuffer[] => [
  packed.bytes.buffer as ArrayBuffer,
  packed.ends.buffer as ArrayBuffer,
];

/** The packed views as the commit event's map: each value decoded on first use, then kept. */
export class PackedViewMap extends LazyUserViews {
  private index: Map<string, number> | undefined;
  private readonly decoded: (UserInformation | null | undefined)[];

  constructor(private readonly packed: PackedViews) {
    super();
    this.decoded = new Array<UserInformation | null | undefined>(packed.keys.length);
  }

  get size(): number {
    return this.packed.keys.length;
  }

  get(key: string): UserInformation | null | undefined {
    const i = this.indexOf(key);
    return i === undefined ? undefined : this.at(i);
  }

  has(key: string): boolean {
    return this.indexOf(key) !== undefined;
  }

  *entries(): MapIterator<[string, UserInformation | null]> {
    for (let i = 0; i < this.packed.keys.length; i++) yield [this.packed.keys[i]!, this.at(i)];
    return undefined;
  }

  *keys(): MapIterator<string> {
    yield* this.packed.keys;
    return undefined;
  }

  private indexOf(key: string): number | undefined {
    // Built on first lookup: a commit nobody watches is never indexed.
    this.index ??= new Map(this.packed.keys.map((k, i) => [k, i]));
    return this.index.get(key);
  }

  private at(i: number): UserInformation | null {
    let view = this.decoded[i];
    if (view === undefined) {
      const { bytes, ends } = this.packed;
      const start = i === 0 ? 0 : ends[i - 1]!;
      const end = ends[i]!;
      view =
        start === end ? null : decodeView(Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start));
      this.decoded[i] = view;
    }
    return view;
  }
}
