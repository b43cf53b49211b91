-- Metric history in three tiers. Times are Unix milliseconds; a point covers [t_ms, t_ms + resolution).
-- Every point keeps min, max, average and count, so a spike survives rolling up.

-- One row per stored series, e.g. `cpu{host="web-1"}`.
CREATE TABLE series (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- Per-second points written once a second and not yet sealed into a chunk.
CREATE TABLE second_open (
    series_id INTEGER NOT NULL REFERENCES series (id),
    t_ms      INTEGER NOT NULL,
    min       REAL    NOT NULL,
    max       REAL    NOT NULL,
    avg       REAL    NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (series_id, t_ms)
) WITHOUT ROWID;

-- Sealed per-second points: one compressed chunk per series and hour (see store/src/chunk.rs).
CREATE TABLE second_chunks (
    series_id INTEGER NOT NULL REFERENCES series (id),
    start_ms  INTEGER NOT NULL,
    end_ms    INTEGER NOT NULL,
    points    INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (series_id, start_ms)
);
CREATE INDEX second_chunks_end ON second_chunks (end_ms);

CREATE TABLE minute_points (
    series_id INTEGER NOT NULL REFERENCES series (id),
    t_ms      INTEGER NOT NULL,
    min       REAL    NOT NULL,
    max       REAL    NOT NULL,
    avg       REAL    NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (series_id, t_ms)
) WITHOUT ROWID;

CREATE TABLE hour_points (
    series_id INTEGER NOT NULL REFERENCES series (id),
    t_ms      INTEGER NOT NULL,
    min       REAL    NOT NULL,
    max       REAL    NOT NULL,
    avg       REAL    NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (series_id, t_ms)
) WITHOUT ROWID;

-- How far each rollup has got: points before `until_ms` have been rolled into the tier.
CREATE TABLE rollup_marks (
    tier     TEXT PRIMARY KEY,
    until_ms INTEGER NOT NULL
);
