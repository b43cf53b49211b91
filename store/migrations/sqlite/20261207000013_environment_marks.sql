-- Log entries and alerts written before they were marked with their environment: an agent's lines carried
-- their host already, and a host's alert names it as its subject; each gets the environment its host was
-- enrolled in (the newest enrolment of that name), so a reader with no role there is not shown it as the
-- hub's own.
UPDATE logs
SET fields = json_set(fields, '$.environment',
    (SELECT a.environment FROM agents a WHERE a.name = json_extract(logs.fields, '$.host')
     ORDER BY a.id DESC LIMIT 1))
WHERE json_extract(fields, '$.environment') IS NULL
  AND json_extract(fields, '$.host') IN (SELECT name FROM agents);

UPDATE alerts
SET labels = json_set(labels, '$.host', subject, '$.environment',
    (SELECT a.environment FROM agents a WHERE a.name = alerts.subject ORDER BY a.id DESC LIMIT 1))
WHERE json_extract(labels, '$.environment') IS NULL
  AND metric IN ('cpu', 'memory', 'disk', 'swap', 'load1', 'net_rx', 'net_tx')
  AND subject IN (SELECT name FROM agents);
