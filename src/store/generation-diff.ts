/**
 * The commit event of a generation swap: per view, every key whose value differs between the old and the
 * new generation. For a versioned value (`ViewModule.versioned`) "differs" is what a reader is served apart
 * from the version, which a rebuild always recomputes: a swap that recomputes the same value pushes nothing
 * for it, and it keeps its version (versions.ts).
 *
 * UserInformation's is built lazily over the two generations' `views` databases instead of as a Map
 * (lazy-user-views.ts), because a swap can change every user of the store: the cost is per watched user,
 * not per user. The other views say what changed themselves (`ViewModule.swapEvent`).
 *
 * Valid only while both generations (or builds) exist: the store publishes it synchronously right after the
 * swap commits and drops the old generation once the swap is reconciled, and after a view rebuild from the
 * rows drops the old builds as soon as the listeners returned, so listeners must not keep it.
 */
import { emptySpaces } from '../materializer/memory-state.js';
import type { Registry } from '../views/registry.js';
import type { KvSpace, Spaces, ViewModule } from '../views/types.js';
import { USER_INFORMATION, userInformation, type UserInformation } from '../views/user-information.js';
import type { Generation } from './generation.js';
import { LazyUserViews } from './lazy-user-views.js';
import { readFast } from './fast-read.js';

const sameView = userInformation.versioned!['views']!;

export class GenerationDiff extends LazyUserViews {
  /** `decode` reads a view of `after` as readers see it (the reads apply the swap's version floor). */
  constructor(
    private readonly before: Generation,
    private readonly after: Generation,
    private readonly decode: (bytes: Buffer, userId: string) => UserInformation,
  ) {
    super();
  }

  private get a() {
    return this.before.db(USER_INFORMATION, 'views');
  }

  private get b() {
    return this.after.db(USER_INFORMATION, 'views');
  }

  /**
   * An upper bound of the changed users (users with a view in either generation), not the exact count:
   * counting exactly would read every view. Consumers use it only to pick which side to walk.
   */
  get size(): number {
    return this.a.getCount() + this.b.getCount();
  }

  has(userId: string): boolean {
    const b = this.b.getBinary(userId);
    // In lmdb-js' reused buffer (no copy), valid until the next read: compared at once.
    const a = readFast(this.a, userId);
    if (a === undefined || b === undefined) return a !== b;
    return !sameView(a, b);
  }

  /** The new view, null when the user has no view any more, undefined when nothing changed. */
  get(userId: string): UserInformation | null | undefined {
    if (!this.has(userId)) return undefined;
    const bytes = this.b.getBinary(userId);
    return bytes === undefined ? null : this.decode(bytes, userId);
  }

  *entries(): MapIterator<[string, UserInformation | null]> {
    for (const userId of this.keys()) {
      const bytes = this.b.getBinary(userId);
      yield [userId, bytes === undefined ? null : this.decode(bytes, userId)];
    }
  }

  *keys(): MapIterator<string> {
    // The users with a view now (read with their view: one lookup each, in the old generation, its value
    // in lmdb-js' reused buffer, compared before the next read), then the users without one now that had
    // one. No set of every user seen: a swap can name millions.
    for (const { key: userId, value } of this.b.getRange()) {
      const before = readFast(this.a, userId);
      if (before === undefined || !sameView(before, value)) yield userId;
    }
    for (const userId of this.a.getKeys()) if (!this.b.doesExist(userId)) yield userId;
  }
}

/**
 * Every view's part of a swap's commit event: UserInformation's lazily (above), the others through their
 * module's `swapEvent`, or by comparing every entry of their KV spaces. A view the replaced generation did not
 * hold (a new view whose field its rows lacked, rebuilt from the feed) is compared with empty spaces: all of
 * it is new.
 */
export function swapEvents(
  registry: Registry,
  before: Generation,
  after: Generation,
  decode: (bytes: Buffer, userId: string) => UserInformation,
): Map<string, ReadonlyMap<string, unknown>> {
  const events = new Map<string, ReadonlyMap<string, unknown>>();
  for (const view of registry.views) {
    const old = before.info.views[view.name] === undefined ? emptySpaces(view) : undefined;
    const event =
      view.name === USER_INFORMATION
        ? new GenerationDiff(before, after, decode)
        : view.swapEvent !== undefined
          ? view.swapEvent(old ?? before.spaces(view.name), after.spaces(view.name))
          : compareKvSpaces(view, old ?? before.spaces(view.name), after.spaces(view.name));
    if (event !== undefined) events.set(view.name, event);
  }
  return events;
}

function compareKvSpaces(view: ViewModule, before: Spaces, after: Spaces): Map<string, unknown> | undefined {
  const event = new Map<string, unknown>();
  for (const [name, spec] of Object.entries(view.spaces)) {
    if (spec.kind !== 'kv') continue;
    const a = before[name] as KvSpace<unknown>;
    const b = after[name] as KvSpace<unknown>;
    // A versioned value compares without its version (its bytes as the view compares them would need the
    // codec's encoding of both; the decoded values are at hand).
    const print = (v: unknown): string =>
      JSON.stringify(view.versioned?.[name] === undefined ? v : { ...(v as object), version: undefined });
    for (const [key, value] of b.entries()) if (print(a.get(key)) !== print(value)) event.set(key, value);
    for (const [key] of a.entries()) if (b.get(key) === undefined) event.set(key, null);
  }
  return event.size === 0 ? undefined : event;
}
