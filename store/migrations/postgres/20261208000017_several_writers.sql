-- Log ids from a sequence: on SQLite the one writer numbers entries itself, but several Watchpost instances
-- share this database, so the database hands out the numbers. Taken in order within one batch, so a batch's
-- entries keep the order they were given in.
CREATE SEQUENCE logs_id_seq OWNED BY logs.id;
SELECT setval('logs_id_seq', COALESCE((SELECT MAX(id) FROM logs), 0) + 1, false);
ALTER TABLE logs ALTER COLUMN id SET DEFAULT nextval('logs_id_seq');

-- The rollups and pruning read and delete by time across every series. SQLite walks its (series, time) keys
-- one series at a time for this (see store/src/sqlite.rs); PostgreSQL is given the time order itself.
CREATE INDEX second_open_time ON second_open (t_ms);
CREATE INDEX minute_points_time ON minute_points (t_ms);
CREATE INDEX hour_points_time ON hour_points (t_ms);
