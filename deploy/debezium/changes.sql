-- Statements that move counts while matview runs (docker compose --profile debezium up, then):
--   docker compose exec postgres psql -U matview -d social -f /sql/changes.sql
-- and watch: curl -s localhost:4001/users/1
-- Each statement is one change event per row (a TRUNCATE is one event for the table).

-- zcox tweets: tweetCount 2 → 3
INSERT INTO tweets (id, user_id, text) VALUES (104, 1, 'live from Postgres');

-- the follow 2 → 1 becomes 2 → 1234567890123456789: zcox's followerCount 2 → 1, bigid's 0 → 1
UPDATE follows SET followee_id = 1234567890123456789 WHERE id = 201;

-- jack unlikes a tweet: likeCount 2 → 1 (Postgres sends only the key in `before`, then a tombstone)
DELETE FROM likes WHERE id = 302;

-- a profile edit: the view changes, the counts do not
UPDATE users SET location = 'Chicago' WHERE id = 1;

-- every like goes: every likeCount falls to 0 (Debezium op "t")
TRUNCATE likes;
