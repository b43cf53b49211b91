-- The PostgreSQL form of ../sqlite/20261126000002_logs.sql.
CREATE TABLE logs (
    id      BIGINT   PRIMARY KEY,
    t_ms    BIGINT   NOT NULL,
    level   SMALLINT NOT NULL,
    service TEXT     NOT NULL,
    message TEXT     NOT NULL,
    fields  JSONB    NOT NULL DEFAULT '{}'
);
CREATE INDEX logs_time ON logs (t_ms, id);
CREATE INDEX logs_service_time ON logs (service, t_ms, id);
