/**
 * `Subscription.userChanged` / `usersChanged`. The event source is the injected `LiveSource`
 * (src/live/types.ts); without one, subscribing fails with SUBSCRIPTIONS_UNAVAILABLE instead of
 * hanging. Limits (`ids` length, depth…) are checked before subscribing by `validateOperation`.
 */
import 'reflect-metadata';
import { Arg, ID, Resolver, Root, Subscription, type SubscribeResolverData } from 'type-graphql';
import { ApiErrorCode } from '../codes.js';
import { apiError } from '../errors.js';
import type { LiveSource, LiveUserChange } from '../../src/live/types.js';
import type { ApiContext } from './context.js';
import { UserChange } from './user-change-type.js';

/** The context's LiveSource, or SUBSCRIPTIONS_UNAVAILABLE (never a subscription that hangs). */
export function liveOf(context: ApiContext): LiveSource {
  if (context.live === undefined) {
    throw apiError(ApiErrorCode.SubscriptionsUnavailable, 'Subscriptions are not available on this server.');
  }
  return context.live;
}

function subscribeUsers(context: ApiContext, ids: readonly string[]): AsyncIterable<LiveUserChange> {
  return liveOf(context).subscribeUsers(ids);
}

type Data<Args> = SubscribeResolverData<unknown, Args, ApiContext>;

@Resolver(() => UserChange)
export class UserChangeResolver {
  @Subscription(() => UserChange, {
    description: 'First event: the current snapshot; then every change of that user, in commit order.',
    subscribe: ({ args, context }: Data<{ id: string }>) => subscribeUsers(context, [args.id]),
  })
  userChanged(@Root() change: LiveUserChange, @Arg('id', () => ID) _id: string): LiveUserChange {
    return change;
  }

  @Subscription(() => UserChange, {
    description: 'userChanged for several users at once; events of different users may interleave.',
    subscribe: ({ args, context }: Data<{ ids: string[] }>) => subscribeUsers(context, args.ids),
  })
  usersChanged(@Root() change: LiveUserChange, @Arg('ids', () => [ID]) _ids: string[]): LiveUserChange {
    return change;
  }
}
