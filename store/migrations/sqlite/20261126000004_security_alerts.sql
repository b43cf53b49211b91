-- Security alerts (failed sign-ins, lockouts, new addresses, forbidden actions, invalid tokens), kept for the
-- notification panel and acknowledged by operators. Never holds a secret.
CREATE TABLE security_alerts (
    id              INTEGER PRIMARY KEY,
    t_ms            INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    user_name       TEXT,
    ip              TEXT,
    message         TEXT    NOT NULL,
    acknowledged_by TEXT,
    acknowledged_ms INTEGER
);
CREATE INDEX security_alerts_time ON security_alerts (t_ms);
