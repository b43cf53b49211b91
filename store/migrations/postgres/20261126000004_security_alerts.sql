-- The PostgreSQL form of ../sqlite/20261126000004_security_alerts.sql.
CREATE TABLE security_alerts (
    id              BIGSERIAL PRIMARY KEY,
    t_ms            BIGINT    NOT NULL,
    kind            TEXT      NOT NULL,
    severity        TEXT      NOT NULL,
    user_name       TEXT,
    ip              TEXT,
    message         TEXT      NOT NULL,
    acknowledged_by TEXT,
    acknowledged_ms BIGINT
);
CREATE INDEX security_alerts_time ON security_alerts (t_ms);
