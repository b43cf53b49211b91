-- The PostgreSQL form of ../sqlite/20261207000014_agent_maintenance.sql.
ALTER TABLE agents ADD COLUMN maintenance_until_ms BIGINT;
ALTER TABLE agents ADD COLUMN maintenance_by TEXT;
