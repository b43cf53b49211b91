-- The PostgreSQL form of ../sqlite/20261126000006_deployments.sql.
CREATE TABLE deployments (
    id          BIGSERIAL PRIMARY KEY,
    service     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    version     TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    step        TEXT,
    progress    REAL,
    actor       TEXT   NOT NULL,
    run_id      BIGINT REFERENCES command_runs (id),
    url         TEXT,
    description TEXT,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    finished_ms BIGINT
);
CREATE INDEX deployments_service ON deployments (service, environment, id);
