-- The source database of the Debezium example (docker compose --profile debezium up): the four tables
-- matview's view reads, as an application would name them. Run once by the postgres image at first start
-- (docker-entrypoint-initdb.d). The column names here are the ones deploy/debezium/sources.json maps;
-- test/deploy/debezium.test.ts checks that every mapped column exists.
--
-- REPLICA IDENTITY stays the default: a delete's change event then carries only the primary key in
-- `before`, which is all matview needs.

CREATE TABLE users (
  id                   bigint PRIMARY KEY,
  username             text NOT NULL,
  name                 text,
  description          text,
  location             text,
  url                  text,
  profile_image_url    text,
  background_image_url text,
  created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tweets (
  id         bigint PRIMARY KEY,
  user_id    bigint NOT NULL,
  text       text,
  created_at timestamp NOT NULL DEFAULT now()
);

CREATE TABLE follows (
  id          bigint PRIMARY KEY,
  follower_id bigint NOT NULL,
  followee_id bigint NOT NULL,
  created_at  timestamp NOT NULL DEFAULT now()
);

CREATE TABLE likes (
  id         bigint PRIMARY KEY,
  user_id    bigint NOT NULL,
  tweet_id   bigint NOT NULL,
  created_at timestamp NOT NULL DEFAULT now()
);

-- Seed 002's example user, and one whose id needs all 64 bits (JSON.parse would round it).
INSERT INTO users (id, username, name, location, url, created_at) VALUES
  (1, 'zcox', 'Zach Cox', 'Chicago, IL', 'http://theza.ch', '2008-01-22 15:14:44+00'),
  (2, 'jack', 'Jack', 'California', NULL, '2006-03-21 20:50:14+00'),
  (1234567890123456789, 'bigid', 'Big Id', NULL, NULL, '2020-01-01 00:00:00+00');

INSERT INTO tweets (id, user_id, text) VALUES
  (100, 1, 'hello'),
  (101, 1, 'kafka'),
  (102, 2, 'just setting up my twttr'),
  (103, 1234567890123456789, 'big');

INSERT INTO follows (id, follower_id, followee_id) VALUES
  (200, 1, 2),
  (201, 2, 1),
  (202, 1234567890123456789, 1);

INSERT INTO likes (id, user_id, tweet_id) VALUES
  (300, 1, 102),
  (301, 2, 100),
  (302, 2, 101);
