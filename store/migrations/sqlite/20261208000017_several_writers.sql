-- Nothing to change on SQLite: its one writer numbers log entries itself, and it walks the (series, time) keys
-- one series at a time when it rolls up and prunes. ../postgres, which several instances write at once, gets
-- a sequence for log ids and time indexes here. Kept so both engines' schemas carry the same versions.
SELECT 1;
