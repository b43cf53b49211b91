-- The PostgreSQL form of ../sqlite/20261126000007_alerts.sql.
-- Alerts: one row per alert episode of a rule's series, from pending (or firing) to resolved, with its peak
-- value and who acknowledged or silenced it.
CREATE TABLE alerts (
    id                BIGSERIAL PRIMARY KEY,
    rule              TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    metric            TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    severity          TEXT    NOT NULL,
    labels            TEXT    NOT NULL, -- a JSON object of strings
    message           TEXT    NOT NULL,
    value             DOUBLE PRECISION    NOT NULL,
    peak              DOUBLE PRECISION    NOT NULL,
    threshold         DOUBLE PRECISION    NOT NULL,
    started_ms        BIGINT NOT NULL,
    fired_ms          BIGINT,
    resolved_ms       BIGINT,
    acknowledged_by   TEXT,
    acknowledged_ms   BIGINT,
    silenced_until_ms BIGINT,
    silenced_by       TEXT,
    updated_ms        BIGINT NOT NULL
);
CREATE INDEX alerts_started ON alerts (started_ms);
CREATE INDEX alerts_open ON alerts (state) WHERE state <> 'resolved';
