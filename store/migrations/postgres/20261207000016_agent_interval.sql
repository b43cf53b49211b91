-- The PostgreSQL form of ../sqlite/20261207000016_agent_interval.sql.
ALTER TABLE agents ADD COLUMN interval_ms BIGINT;
ALTER TABLE agents ADD COLUMN interval_by TEXT;
