-- Alerts: one row per alert episode of a rule's series, from pending (or firing) to resolved, with its peak
-- value and who acknowledged or silenced it.
CREATE TABLE alerts (
    id                INTEGER PRIMARY KEY,
    rule              TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    metric            TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    severity          TEXT    NOT NULL,
    labels            TEXT    NOT NULL, -- a JSON object of strings
    message           TEXT    NOT NULL,
    value             REAL    NOT NULL,
    peak              REAL    NOT NULL,
    threshold         REAL    NOT NULL,
    started_ms        INTEGER NOT NULL,
    fired_ms          INTEGER,
    resolved_ms       INTEGER,
    acknowledged_by   TEXT,
    acknowledged_ms   INTEGER,
    silenced_until_ms INTEGER,
    silenced_by       TEXT,
    updated_ms        INTEGER NOT NULL
);
CREATE INDEX alerts_started ON alerts (started_ms);
CREATE INDEX alerts_open ON alerts (state) WHERE state <> 'resolved';
