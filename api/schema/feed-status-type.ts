/**
 * `FeedStatus`: the GraphQL face of `FeedMonitor.snapshot()` (api/feed-monitor.ts). Offsets, lag and
 * the commit sequence are 64-bit, so they travel as decimal strings like `SourcePosition.offset`.
 * Enum members keep GraphQL's upper-case convention; their internal values are the snapshot's strings,
 * so the resolver returns the snapshot untouched.
 */
import 'reflect-metadata';
import { Field, Float, Int, ObjectType, registerEnumType } from 'type-graphql';

/** GraphQL enum `FeedSourceKind`: where the changelog records come from. */
export enum FeedSourceKind {
  KAFKA = 'kafka',
  EMBEDDED = 'embedded',
}
registerEnumType(FeedSourceKind, {
  name: 'FeedSourceKind',
  description: 'Where the changelog comes from: a Kafka cluster or the embedded in-process changelog.',
});

/** GraphQL enum `FeedState`: the feed loop's state (src/feed/types.ts `FeedState`). */
export enum FeedStateValue {
  STARTING = 'starting',
  RUNNING = 'running',
  RETRYING = 'retrying',
  STOPPED = 'stopped',
  CRASHED = 'crashed',
}
registerEnumType(FeedStateValue, { name: 'FeedState', description: 'State of the feed loop.' });

@ObjectType({ description: 'Position and lag of one source topic-partition.' })
export class PartitionStatus {
  @Field(() => String)
  topic!: string;

  @Field(() => Int)
  partition!: number;

  @Field(() => String, { description: 'Next offset to apply (64-bit, as a string).' })
  next!: string;

  @Field(() => String, { nullable: true, description: 'Latest high watermark seen; null until known.' })
  highWatermark!: string | null;

  @Field(() => String, {
    nullable: true,
    description: 'highWatermark - next, never negative; null until known.',
  })
  lag!: string | null;
}

@ObjectType({ description: 'Readiness, per-partition position and lag, and freshness of the view.' })
export class FeedStatus {
  @Field(() => Boolean, { description: 'True once every partition reached the end offsets seen at start.' })
  ready!: boolean;

  @Field(() => FeedSourceKind)
  source!: FeedSourceKind;

  @Field(() => FeedStateValue)
  state!: FeedStateValue;

  @Field(() => String, { nullable: true, description: 'Why the feed is not ready or not running, if so.' })
  reason!: string | null;

  @Field(() => [PartitionStatus])
  partitions!: PartitionStatus[];

  @Field(() => Float, {
    nullable: true,
    description:
      'Seconds since the event time of the newest applied record (the source commit time where the format carries it, e.g. Debezium source.ts_ms; else the Kafka timestamp); null before the first.',
  })
  newestEventAgeSeconds!: number | null;

  @Field(() => Float, {
    nullable: true,
    description:
      'Seconds since the source stopped answering (brokers unreachable, state RETRYING): the view is served as it was then, and ready stays true unless READY_DURING_FEED_OUTAGE=false. Null while the source answers.',
  })
  feedDownSeconds!: number | null;

  @Field(() => String, { description: 'Last store commit sequence (64-bit, as a string).' })
  sequence!: string;

  @Field(() => Int, { description: 'Version of the UserInformation view definition being served.' })
  viewVersion!: number;

  @Field(() => Int, {
    description:
      'Invalid records kept for the dead-letter topics and not yet acknowledged by them (0 when every one was sent).',
  })
  deadLettersWaiting!: number;
}
