-- The PostgreSQL form of ../sqlite/20261207000013_environment_marks.sql.
UPDATE logs
SET fields = fields || jsonb_build_object('environment',
    (SELECT a.environment FROM agents a WHERE a.name = logs.fields ->> 'host'
     ORDER BY a.id DESC LIMIT 1))
WHERE fields ->> 'environment' IS NULL
  AND fields ->> 'host' IN (SELECT name FROM agents);

UPDATE alerts
SET labels = (labels::jsonb || jsonb_build_object('host', subject, 'environment',
    (SELECT a.environment FROM agents a WHERE a.name = alerts.subject ORDER BY a.id DESC LIMIT 1)))::text
WHERE labels::jsonb ->> 'environment' IS NULL
  AND metric IN ('cpu', 'memory', 'disk', 'swap', 'load1', 'net_rx', 'net_tx')
  AND subject IN (SELECT name FROM agents);
