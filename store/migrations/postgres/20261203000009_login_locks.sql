-- Sign-in lockouts, kept in the store so that `watchpost user unlock` (another process) can lift one and a
-- restart does not. A key is `pair:<name>|<address>`, `ip:<address>` or `name:<name>` (names lower-cased).
CREATE TABLE login_locks (
    lock_key TEXT   PRIMARY KEY,
    until_ms BIGINT NOT NULL
);
