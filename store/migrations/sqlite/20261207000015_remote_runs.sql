-- Commands run where they belong: a run on an agent's host names that host and its environment, and so does
-- the audit entry of an action on another host than the hub's. NULL: the hub's own host.
ALTER TABLE command_runs ADD COLUMN host TEXT;
ALTER TABLE command_runs ADD COLUMN environment TEXT;
ALTER TABLE audit ADD COLUMN host TEXT;
ALTER TABLE audit ADD COLUMN environment TEXT;

-- The new columns are as unchangeable as the others.
DROP TRIGGER audit_complete_once;
CREATE TRIGGER audit_complete_once BEFORE UPDATE ON audit
WHEN OLD.outcome <> 'pending'
    OR NEW.id IS NOT OLD.id OR NEW.at_ms IS NOT OLD.at_ms OR NEW.actor IS NOT OLD.actor
    OR NEW.role IS NOT OLD.role OR NEW.ip IS NOT OLD.ip OR NEW.action IS NOT OLD.action
    OR NEW.target IS NOT OLD.target OR NEW.params IS NOT OLD.params
    OR NEW.host IS NOT OLD.host OR NEW.environment IS NOT OLD.environment
BEGIN
    SELECT RAISE(ABORT, 'an audit entry is completed once and never changed');
END;
