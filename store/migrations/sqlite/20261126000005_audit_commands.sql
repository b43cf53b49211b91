-- The audit trail and the runs of configured commands.
--
-- The audit trail is append-only: an entry is written before the action takes effect (outcome 'pending') and
-- completed once after; the triggers refuse any other change and any delete, so not even a bug in Watchpost
-- can rewrite history.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    ip          TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    params      TEXT    NOT NULL, -- a JSON object of strings
    outcome     TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '',
    finished_ms INTEGER
);
CREATE INDEX audit_time ON audit (at_ms);

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER audit_complete_once BEFORE UPDATE ON audit
WHEN OLD.outcome <> 'pending'
    OR NEW.id IS NOT OLD.id OR NEW.at_ms IS NOT OLD.at_ms OR NEW.actor IS NOT OLD.actor
    OR NEW.role IS NOT OLD.role OR NEW.ip IS NOT OLD.ip OR NEW.action IS NOT OLD.action
    OR NEW.target IS NOT OLD.target OR NEW.params IS NOT OLD.params
BEGIN
    SELECT RAISE(ABORT, 'an audit entry is completed once and never changed');
END;

-- One row per run of a configured command; its output is in a log file of its own (commands/<id>.log).
CREATE TABLE command_runs (
    id           INTEGER PRIMARY KEY,
    command      TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    params       TEXT    NOT NULL, -- a JSON object of strings
    actor        TEXT    NOT NULL,
    audit_id     INTEGER NOT NULL REFERENCES audit (id),
    state        TEXT    NOT NULL,
    started_ms   INTEGER NOT NULL,
    finished_ms  INTEGER,
    exit_code    INTEGER,
    detail       TEXT    NOT NULL DEFAULT '',
    output_lines INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX command_runs_started ON command_runs (started_ms);
