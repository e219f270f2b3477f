/**
 * `Query.user` and `Query.users`. Both go through the per-request DataLoader, so every user read in one
 * execution tick (aliases, `users(ids)`, `_entities`) becomes a single `reader.getUsers` call.
 * The `ids` length limit is enforced before execution (api/limits), never here.
 */
import 'reflect-metadata';
import { Arg, Ctx, ID, Query, Resolver } from 'type-graphql';
import type { UserInformation } from '../../src/views/user-information.js';
import type { ApiContext } from './context.js';
import { User } from './user-type.js';

@Resolver(() => User)
export class UserResolver {
  @Query(() => User, {
    nullable: true,
    description: 'The view of one user; null when there is no users row.',
  })
  user(@Arg('id', () => ID) id: string, @Ctx() ctx: ApiContext): Promise<UserInformation | null> {
    return ctx.users.load(id);
  }

  @Query(() => [User], {
    nullable: 'items',
    description: 'Same order as ids, null for unknown ids; one batched read.',
  })
  async users(
    @Arg('ids', () => [ID]) ids: string[],
    @Ctx() ctx: ApiContext,
  ): Promise<(UserInformation | null)[]> {
    // loadMany resolves errors per item instead of rejecting; our batch never fails per item.
    return (await ctx.users.loadMany(ids)) as (UserInformation | null)[];
  }
}
