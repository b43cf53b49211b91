-- Deployments: a row per deployment of a version of a service to an environment, updated as its status moves
-- (queued → in_progress → success / failure / error).
CREATE TABLE deployments (
    id          INTEGER PRIMARY KEY,
    service     TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    step        TEXT,
    progress    REAL,
    actor       TEXT    NOT NULL,
    run_id      INTEGER REFERENCES command_runs (id),
    url         TEXT,
    description TEXT,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    finished_ms INTEGER
);
CREATE INDEX deployments_service ON deployments (service, environment, id);
