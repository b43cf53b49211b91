-- A host's maintenance window: an operator marked it expected-offline until a time (Unix ms), and who did.
ALTER TABLE agents ADD COLUMN maintenance_until_ms INTEGER;
ALTER TABLE agents ADD COLUMN maintenance_by TEXT;
