-- The error log. `id` is the rowid: assigned in insertion order, never reused. Pages are read newest first by
-- (t_ms, id), the order of `logs_time`.
CREATE TABLE logs (
    id      INTEGER PRIMARY KEY,
    t_ms    INTEGER NOT NULL,
    level   INTEGER NOT NULL,
    service TEXT    NOT NULL,
    message TEXT    NOT NULL,
    fields  TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX logs_time ON logs (t_ms, id);
CREATE INDEX logs_service_time ON logs (service, t_ms, id);
