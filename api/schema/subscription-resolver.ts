/**
 * `Subscription.userChanged` / `usersChanged`. The event source is the injected `LiveSource`
 * (src/live/types.ts); without one, subscribing fails with SUBSCRIPTIONS_UNAVAILABLE instead of
 * hanging. Limits (`ids` length, depth…) are checked before subscribing by `validateOperation`.
 *
 * `after` resumes (issue 18, point 2): the `version.sequence` (or `extensions.asOf.sequence`) of the last event
 * the client received. Users changed since get their current state first (UPDATED / DELETED, never a SNAPSHOT);
 * the others nothing until they change. The guarantee and why it holds: src/live/hub.ts.
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

/** A commit sequence: an unsigned 64-bit integer in decimal. */
const SEQUENCE = /^\d{1,20}$/;

function subscribeUsers(
  context: ApiContext,
  ids: readonly string[],
  after: string | null | undefined,
): AsyncIterable<LiveUserChange> {
  const live = liveOf(context);
  if (after === undefined || after === null) return live.subscribeUsers(ids);
  if (!SEQUENCE.test(after) || BigInt(after) >= 2n ** 64n)
    throw apiError(
      ApiErrorCode.BadUserInput,
      `after must be a version.sequence (an unsigned 64-bit integer as a decimal string), got ${JSON.stringify(after.slice(0, 40))}.`,
    );
  return live.subscribeUsers(ids, { after: BigInt(after) });
}

type Data<Args> = SubscribeResolverData<unknown, Args, ApiContext>;

const AFTER_DESCRIPTION =
  'Resume: the version.sequence (or extensions.asOf.sequence) of the last event received. First come the current states of the users changed since (UPDATED or DELETED; with several ids, also those of that very commit); the others get nothing until they change. Intermediate states may be conflated; the latest is never missed.';

@Resolver(() => UserChange)
export class UserChangeResolver {
  @Subscription(() => UserChange, {
    description:
      'First event: the current snapshot (with `after`: only if changed since); then every change of that user, in commit order.',
    subscribe: ({ args, context }: Data<{ id: string; after?: string | null }>) =>
      subscribeUsers(context, [args.id], args.after),
  })
  userChanged(
    @Root() change: LiveUserChange,
    // Parameter decorators run last to first and type-graphql keeps that order: `after` is listed before
    // `id` here so that the schema reads `userChanged(id: ID!, after: String)`.
    @Arg('after', () => String, { nullable: true, description: AFTER_DESCRIPTION }) _after: string | null,
    @Arg('id', () => ID) _id: string,
  ): LiveUserChange {
    return change;
  }

  @Subscription(() => UserChange, {
    description:
      'userChanged for several users at once; events of different users may interleave, in commit order.',
    subscribe: ({ args, context }: Data<{ ids: string[]; after?: string | null }>) =>
      subscribeUsers(context, args.ids, args.after),
  })
  usersChanged(
    @Root() change: LiveUserChange,
    @Arg('after', () => String, { nullable: true, description: AFTER_DESCRIPTION }) _after: string | null,
    @Arg('ids', () => [ID]) _ids: string[],
  ): LiveUserChange {
    return change;
  }
}
