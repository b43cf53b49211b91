-- The PostgreSQL form of ../sqlite/20261126000001_metric_history.sql, for the scale-out store: the same
-- tables, columns and meaning, so the queries in store/src differ only in placeholders.

CREATE TABLE series (
    id   BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE second_open (
    series_id BIGINT           NOT NULL REFERENCES series (id),
    t_ms      BIGINT           NOT NULL,
    min       DOUBLE PRECISION NOT NULL,
    max       DOUBLE PRECISION NOT NULL,
    avg       DOUBLE PRECISION NOT NULL,
    count     BIGINT           NOT NULL,
    PRIMARY KEY (series_id, t_ms)
);

CREATE TABLE second_chunks (
    series_id BIGINT NOT NULL REFERENCES series (id),
    start_ms  BIGINT NOT NULL,
    end_ms    BIGINT NOT NULL,
    points    BIGINT NOT NULL,
    data      BYTEA  NOT NULL,
    PRIMARY KEY (series_id, start_ms)
);
CREATE INDEX second_chunks_end ON second_chunks (end_ms);

CREATE TABLE minute_points (
    series_id BIGINT           NOT NULL REFERENCES series (id),
    t_ms      BIGINT           NOT NULL,
    min       DOUBLE PRECISION NOT NULL,
    max       DOUBLE PRECISION NOT NULL,
    avg       DOUBLE PRECISION NOT NULL,
    count     BIGINT           NOT NULL,
    PRIMARY KEY (series_id, t_ms)
);

CREATE TABLE hour_points (
    series_id BIGINT           NOT NULL REFERENCES series (id),
    t_ms      BIGINT           NOT NULL,
    min       DOUBLE PRECISION NOT NULL,
    max       DOUBLE PRECISION NOT NULL,
    avg       DOUBLE PRECISION NOT NULL,
    count     BIGINT           NOT NULL,
    PRIMARY KEY (series_id, t_ms)
);

CREATE TABLE rollup_marks (
    tier     TEXT PRIMARY KEY,
    until_ms BIGINT NOT NULL
);
