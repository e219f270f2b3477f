/** `Query.feedStatus`: the feed monitor's snapshot, as is (see feed-status-type.ts for the mapping). */
import 'reflect-metadata';
import { Ctx, Query, Resolver } from 'type-graphql';
import type { FeedStatusSnapshot } from '../feed-monitor.js';
import type { ApiContext } from './context.js';
import { FeedStatus } from './feed-status-type.js';

@Resolver(() => FeedStatus)
export class FeedStatusResolver {
  @Query(() => FeedStatus, { description: 'Readiness, per-partition position and lag, and freshness.' })
  feedStatus(@Ctx() ctx: ApiContext): FeedStatusSnapshot {
    return ctx.feed.snapshot();
  }
}
