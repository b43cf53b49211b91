-- The least role that sees a deployment: a deployment carried out by a command sees as far as the command's
-- runs do (an admin-only command's deployment names who ran it and shows its output's steps); reported ones
-- are for everyone.
ALTER TABLE deployments ADD COLUMN audience TEXT NOT NULL DEFAULT 'viewer';
