/**
 * `heldViews`: a commit into a generation applies the registered views that generation holds at their
 * registered version, and of those only the ones whose dependencies it keeps (a new view whose field the
 * stored rows lack is rebuilt from the feed in a shadow, while the active generation takes the live commits:
 * test/ops/source-fields-rebuild.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { commitPlan, heldViews } from '../../src/materializer/commit.js';
import { createRegistry, VIEWS } from '../../src/views/registry.js';
import { likesPerTweet } from '../utils/likes-per-tweet.js';

const registry = createRegistry([...VIEWS, likesPerTweet]);
const plan = commitPlan(registry);
const versions = Object.fromEntries(registry.views.map((v) => [v.name, { version: v.version }]));
const names = (views: readonly { name: string }[]) => views.map((v) => v.name);

describe('heldViews', () => {
  it('should keep the plan itself for a generation that holds every view at its version', () => {
    expect(heldViews(plan, versions)).toBe(plan);
  });

  it('should leave out a view the generation lacks, and keep the dependency order of the rest', () => {
    const { ['likes-per-tweet']: _, ...held } = versions;
    expect(names(heldViews(plan, held).views)).toEqual(names(VIEWS));
  });

  it('should leave out a view held at another version, and the views that depend on it', () => {
    const held = { ...versions, 'user-information': { version: versions['user-information']!.version + 1 } };
    expect(names(heldViews(plan, held).views)).toEqual(['totals', 'likes-per-tweet']);
  });
});
