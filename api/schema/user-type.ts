/**
 * `User`, `ViewVersion` and `SourcePosition` exactly as CONTRACT.md §3 declares them. Resolvers return
 * the store's `UserInformation` objects as they are: every field here reads the property of the same name,
 * which is also what the fast path (`api/fast-path/`) relies on.
 *
 * Every decorator names its GraphQL type explicitly: tsx/esbuild emit no decorator metadata.
 */
import 'reflect-metadata';
import { Directive, Field, ID, Int, ObjectType } from 'type-graphql';
import { GraphQLDateTime } from 'graphql-scalars';

@ObjectType({ description: 'Where the record that last changed a user sits in its changelog topic.' })
export class SourcePosition {
  @Field(() => String)
  topic!: string;

  @Field(() => Int)
  partition!: number;

  @Field(() => String, { description: 'Kafka offset (64-bit, as a decimal string).' })
  offset!: string;
}

@ObjectType({ description: 'Which state version of the view a reader saw.' })
export class ViewVersion {
  @Field(() => String, {
    description: 'Store commit sequence that last changed this user (64-bit, as a string).',
  })
  sequence!: string;

  @Field(() => GraphQLDateTime, { description: 'When that commit was applied here.' })
  appliedAt!: string;

  @Field(() => GraphQLDateTime, {
    nullable: true,
    description:
      'Event time of the last record that changed this user: the source database commit time where the format carries it (Debezium source.ts_ms), else the Kafka timestamp.',
  })
  eventTime!: string | null;

  @Field(() => SourcePosition, { description: "That record's topic, partition and offset." })
  source!: SourcePosition;
}

/** The federation entity: other subgraphs extend it by `userId` (Apollo Federation 2 `@key`). */
@Directive('@key(fields: "userId")')
@ObjectType({ description: 'The UserInformation view: profile fields plus counts (CONTRACT.md §2).' })
export class User {
  @Field(() => ID)
  userId!: string;

  @Field(() => String)
  username!: string;

  @Field(() => String, { nullable: true })
  name!: string | null;

  @Field(() => String, { nullable: true })
  description!: string | null;

  @Field(() => String, { nullable: true })
  location!: string | null;

  @Field(() => String, { nullable: true })
  webPageUrl!: string | null;

  @Field(() => GraphQLDateTime, { nullable: true })
  joinedDate!: string | null;

  @Field(() => String, { nullable: true })
  profileImageUrl!: string | null;

  @Field(() => String, { nullable: true })
  backgroundImageUrl!: string | null;

  @Field(() => Int)
  tweetCount!: number;

  @Field(() => Int)
  followingCount!: number;

  @Field(() => Int)
  followerCount!: number;

  @Field(() => Int)
  likeCount!: number;

  @Field(() => ViewVersion, { description: 'Which state version the reader saw.' })
  version!: ViewVersion;
}
