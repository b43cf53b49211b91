-- The PostgreSQL form of ../sqlite/20261126000005_audit_commands.sql.
CREATE TABLE audit (
    id          BIGSERIAL PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    ip          TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    target      TEXT   NOT NULL,
    params      TEXT   NOT NULL,
    outcome     TEXT   NOT NULL,
    detail      TEXT   NOT NULL DEFAULT '',
    finished_ms BIGINT
);
CREATE INDEX audit_time ON audit (at_ms);

CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the audit trail is append-only';
    END IF;
    IF OLD.outcome <> 'pending'
        OR NEW.id IS DISTINCT FROM OLD.id OR NEW.at_ms IS DISTINCT FROM OLD.at_ms
        OR NEW.actor IS DISTINCT FROM OLD.actor OR NEW.role IS DISTINCT FROM OLD.role
        OR NEW.ip IS DISTINCT FROM OLD.ip OR NEW.action IS DISTINCT FROM OLD.action
        OR NEW.target IS DISTINCT FROM OLD.target OR NEW.params IS DISTINCT FROM OLD.params THEN
        RAISE EXCEPTION 'an audit entry is completed once and never changed';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TABLE command_runs (
    id           BIGSERIAL PRIMARY KEY,
    command      TEXT   NOT NULL,
    target       TEXT   NOT NULL,
    params       TEXT   NOT NULL,
    actor        TEXT   NOT NULL,
    audit_id     BIGINT NOT NULL REFERENCES audit (id),
    state        TEXT   NOT NULL,
    started_ms   BIGINT NOT NULL,
    finished_ms  BIGINT,
    exit_code    INTEGER,
    detail       TEXT   NOT NULL DEFAULT '',
    output_lines BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX command_runs_started ON command_runs (started_ms);
