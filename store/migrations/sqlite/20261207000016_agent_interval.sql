-- A sampling interval set from the hub for a host's agent (ms), and who set it; NULL: the agent's own.
ALTER TABLE agents ADD COLUMN interval_ms INTEGER;
ALTER TABLE agents ADD COLUMN interval_by TEXT;
