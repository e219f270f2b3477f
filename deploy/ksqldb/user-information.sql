-- The view topic of docs/view-topic.md computed by ksqlDB instead of a materializing matview instance:
-- the same user records (key = userId, value = seed 002's JSON plus `version`, a tombstone when the users
-- row is deleted), read by matview replicas started with VIEW_TOPIC_IN=user-information.
--
-- NOT RUN HERE: there is no JVM engine on the machines this repository is built and tested on. It is written
-- for ksqlDB 0.29 (Confluent Platform 7.x) and reviewed against its documentation, not executed. The replica
-- side of the contract is tested with a topic the test writes itself (test/integration/view-topic.test.ts).
--
-- Run it with the ksqlDB CLI: `ksql http://ksqldb:8088 -f deploy/ksqldb/user-information.sql`.
-- Identifiers are back-quoted so the JSON field names keep their case (ksqlDB upper-cases bare ones).

SET 'auto.offset.reset' = 'earliest';

-- The four changelog topics of CONTRACT.md §1, as tables: the latest row per key, a tombstone deletes it.
CREATE TABLE users_t (
  `user_key` STRING PRIMARY KEY,
  `username` STRING,
  `name` STRING,
  `description` STRING,
  `location` STRING,
  `webPageUrl` STRING,
  `joinedDate` STRING,
  `profileImageUrl` STRING,
  `backgroundImageUrl` STRING
) WITH (KAFKA_TOPIC = 'users', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON');

CREATE TABLE tweets_t (`tweet_key` STRING PRIMARY KEY, `userId` STRING)
  WITH (KAFKA_TOPIC = 'tweets', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON');

CREATE TABLE follows_t (`follow_key` STRING PRIMARY KEY, `followerId` STRING, `followeeId` STRING)
  WITH (KAFKA_TOPIC = 'follows', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON');

CREATE TABLE likes_t (`like_key` STRING PRIMARY KEY, `userId` STRING)
  WITH (KAFKA_TOPIC = 'likes', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON');

-- CONTRACT.md §2's four counts. An aggregation over a TABLE retracts a row's old value before adding its new
-- one, so an update that changes userId / followerId / followeeId moves the count from the old user to the
-- new one, and a tombstone decrements exactly once: the SQL over the current rows, whatever the order.
CREATE TABLE tweet_counts AS
  SELECT `userId`, COUNT(*) AS `tweetCount` FROM tweets_t GROUP BY `userId` EMIT CHANGES;

CREATE TABLE following_counts AS
  SELECT `followerId`, COUNT(*) AS `followingCount` FROM follows_t GROUP BY `followerId` EMIT CHANGES;

CREATE TABLE follower_counts AS
  SELECT `followeeId`, COUNT(*) AS `followerCount` FROM follows_t GROUP BY `followeeId` EMIT CHANGES;

CREATE TABLE like_counts AS
  SELECT `userId`, COUNT(*) AS `likeCount` FROM likes_t GROUP BY `userId` EMIT CHANGES;

-- The view: users LEFT JOIN the counts (primary-key joins). A user appears when its users row exists, with
-- the counts accumulated before it (they exist before the row does); deleting the users row deletes the
-- joined row, which ksqlDB writes as a tombstone; a count with no rows is null or 0, written as 0.
--
-- version.sequence: ksqlDB has no commit counter; the processing time in milliseconds increases per key in
-- the order ksqlDB writes the key's changes, which is all a replica needs (docs/view-topic.md "Order").
-- version.eventTime: the newest input timestamp that produced the row. appliedAt and source are left out:
-- a replica fills them from the record itself. The sink topic of a CTAS table is created compacted.
CREATE TABLE user_information
  WITH (KAFKA_TOPIC = 'user-information', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'JSON', PARTITIONS = 24) AS
  SELECT
    u.`user_key` AS `user_key`,
    AS_VALUE(u.`user_key`) AS `userId`,
    u.`username` AS `username`,
    u.`name` AS `name`,
    u.`description` AS `description`,
    u.`location` AS `location`,
    u.`webPageUrl` AS `webPageUrl`,
    u.`joinedDate` AS `joinedDate`,
    u.`profileImageUrl` AS `profileImageUrl`,
    u.`backgroundImageUrl` AS `backgroundImageUrl`,
    COALESCE(t.`tweetCount`, CAST(0 AS BIGINT)) AS `tweetCount`,
    COALESCE(fg.`followingCount`, CAST(0 AS BIGINT)) AS `followingCount`,
    COALESCE(fr.`followerCount`, CAST(0 AS BIGINT)) AS `followerCount`,
    COALESCE(l.`likeCount`, CAST(0 AS BIGINT)) AS `likeCount`,
    STRUCT(
      `sequence` := CAST(UNIX_TIMESTAMP() AS STRING),
      `eventTime` := TIMESTAMPTOSTRING(
        GREATEST(u.ROWTIME, COALESCE(t.ROWTIME, 0), COALESCE(fg.ROWTIME, 0), COALESCE(fr.ROWTIME, 0), COALESCE(l.ROWTIME, 0)),
        'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''',
        'UTC'
      )
    ) AS `version`
  FROM users_t u
  LEFT JOIN tweet_counts t ON u.`user_key` = t.`userId`
  LEFT JOIN following_counts fg ON u.`user_key` = fg.`followerId`
  LEFT JOIN follower_counts fr ON u.`user_key` = fr.`followeeId`
  LEFT JOIN like_counts l ON u.`user_key` = l.`userId`
  EMIT CHANGES;
