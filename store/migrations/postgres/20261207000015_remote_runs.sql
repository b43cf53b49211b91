-- The PostgreSQL form of ../sqlite/20261207000015_remote_runs.sql.
ALTER TABLE command_runs ADD COLUMN host TEXT;
ALTER TABLE command_runs ADD COLUMN environment TEXT;
ALTER TABLE audit ADD COLUMN host TEXT;
ALTER TABLE audit ADD COLUMN environment TEXT;

CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the audit trail is append-only';
    END IF;
    IF OLD.outcome <> 'pending'
        OR NEW.id IS DISTINCT FROM OLD.id OR NEW.at_ms IS DISTINCT FROM OLD.at_ms
        OR NEW.actor IS DISTINCT FROM OLD.actor OR NEW.role IS DISTINCT FROM OLD.role
        OR NEW.ip IS DISTINCT FROM OLD.ip OR NEW.action IS DISTINCT FROM OLD.action
        OR NEW.target IS DISTINCT FROM OLD.target OR NEW.params IS DISTINCT FROM OLD.params
        OR NEW.host IS DISTINCT FROM OLD.host OR NEW.environment IS DISTINCT FROM OLD.environment THEN
        RAISE EXCEPTION 'an audit entry is completed once and never changed';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
