-- The PostgreSQL form of ../sqlite/20261126000008_alert_rules.sql.
-- Alert rules written on the Alerts page (those of the configuration file are not stored): the rule as JSON,
-- and who wrote it last.
CREATE TABLE alert_rules (
    name       TEXT   PRIMARY KEY,
    rule       TEXT   NOT NULL, -- shared::AlertRule as JSON
    updated_by TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL
);
