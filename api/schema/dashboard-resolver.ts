/**
 * The dashboard fields (issue 16): `topUsers` / `totals` and their live forms `topUsersChanged` /
 * `totalsChanged`. Queries read the store through the context's reader; subscriptions come from the
 * injected LiveSource, which sends the current value first and then the value again whenever what this
 * subscriber selected of it changed (the print of its selection set: selection-print.ts). The `limit` rule
 * and the totals before the first row live in dashboard-reads.ts, shared with the fast path.
 */
import 'reflect-metadata';
import { Args, Ctx, Query, Resolver, Root, Subscription, type SubscribeResolverData } from 'type-graphql';
import type { TotalsValue } from '../../src/views/totals.js';
import type { UserInformation } from '../../src/views/user-information.js';
import type { ApiContext } from './context.js';
import { checkedLimit, readTopUsers, totalsOrEmpty } from './dashboard-reads.js';
import { Totals, TopUsersArgs } from './dashboard-types.js';
import { pickedFields, selectionPrinter } from './selection-print.js';
import { liveOf } from './subscription-resolver.js';
import { User } from './user-type.js';

type Data<Args> = SubscribeResolverData<unknown, Args, ApiContext>;

@Resolver()
export class DashboardResolver {
  @Query(() => [User], {
    description: 'The first `limit` users with a users row by a count, descending, then by userId.',
  })
  topUsers(@Args(() => TopUsersArgs) { by, limit }: TopUsersArgs, @Ctx() ctx: ApiContext): UserInformation[] {
    return readTopUsers(ctx.reader, by, checkedLimit(limit));
  }

  @Query(() => Totals, { description: 'Current rows per table, and users with a users row.' })
  totals(@Ctx() ctx: ApiContext): TotalsValue {
    return totalsOrEmpty(ctx.reader.totals());
  }

  @Subscription(() => [User], {
    description:
      'First event: the current list; then the list again whenever its members, their order or their selected fields change.',
    subscribe: ({ args, context, info }: Data<TopUsersArgs>) => {
      const limit = checkedLimit(args.limit);
      // Members are compared by userId whatever the selection: a new member is a change.
      const print = selectionPrinter(pickedFields(info, ['userId']));
      return liveOf(context).subscribeTopUsers(args.by, limit, print);
    },
  })
  topUsersChanged(
    @Root() users: UserInformation[],
    @Args(() => TopUsersArgs) _args: TopUsersArgs,
  ): UserInformation[] {
    return users;
  }

  @Subscription(() => Totals, {
    description: 'First event: the current totals; then the totals again whenever a selected field changes.',
    subscribe: ({ context, info }: Data<Record<string, never>>) => {
      const print = selectionPrinter(pickedFields(info));
      return liveOf(context).subscribeTotals((totals) => print(totalsOrEmpty(totals)));
    },
  })
  totalsChanged(@Root() totals: TotalsValue | null): TotalsValue {
    return totalsOrEmpty(totals);
  }
}
