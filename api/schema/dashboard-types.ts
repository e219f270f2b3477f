/**
 * `UserRanking` and `Totals` exactly as issue 16 declares them: the GraphQL face of the TopUsers and Totals
 * views (src/views/top-users.ts, src/views/totals.ts). Resolvers return the views' values as they are, so
 * every field reads the property of the same name (what the fast path and the selection prints rely on).
 */
import 'reflect-metadata';
import { ArgsType, Field, Int, ObjectType, registerEnumType } from 'type-graphql';
import { RANKINGS, type Ranking } from '../../src/views/top-users.js';
import { DEFAULT_TOP_LIMIT } from './dashboard-reads.js';
import { ViewVersion } from './user-type.js';

/** GraphQL enum `UserRanking`; each value is the ranking's own name, as the store reads it. */
export const UserRanking = Object.fromEntries(RANKINGS.map((r) => [r, r])) as { [R in Ranking]: R };

registerEnumType(UserRanking, {
  name: 'UserRanking',
  description: 'Which count a ranking orders users by (descending, then userId ascending).',
  valuesConfig: {
    FOLLOWERS: { description: 'followerCount' },
    TWEETS: { description: 'tweetCount' },
    LIKES: { description: 'likeCount' },
    FOLLOWING: { description: 'followingCount' },
  },
});

@ObjectType({ description: 'How many current rows each table holds (the Totals view).' })
export class Totals {
  @Field(() => Int, { description: 'Users with a users row.' })
  users!: number;

  @Field(() => Int, { description: 'Current rows of the tweets table.' })
  tweets!: number;

  @Field(() => Int, { description: 'Current rows of the follows table.' })
  follows!: number;

  @Field(() => Int, { description: 'Current rows of the likes table.' })
  likes!: number;

  @Field(() => ViewVersion, {
    description:
      'The commit that last changed a total and the record that did. Before the first row: sequence "0", appliedAt the epoch, eventTime null, source { topic: "", partition: -1, offset: "-1" }.',
  })
  version!: ViewVersion;
}

/** The arguments of `topUsers` and `topUsersChanged`, in the SDL's order. */
@ArgsType()
export class TopUsersArgs {
  @Field(() => UserRanking)
  by!: Ranking;

  // Nullable with a default, as the SDL says (`limit: Int = 10`): an explicit null reaches the resolver,
  // which answers it with LIMIT_OUT_OF_RANGE like any other value outside 1..100.
  @Field(() => Int, { nullable: true, defaultValue: DEFAULT_TOP_LIMIT, description: '1 to 100.' })
  limit!: number | null;
}
