-- Accounts: users with a role, sessions, API tokens, and the addresses each user has signed in from (for the
-- "login from a new address" alert). Secrets are stored only as hashes: argon2id for passwords (PHC string),
-- SHA-256 for session and token secrets, which are 256-bit random values and need no slow hash.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL
);
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    ip         TEXT    NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_ms);
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    token_hash BLOB    NOT NULL UNIQUE,
    role       TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE TABLE login_addresses (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ip       TEXT    NOT NULL,
    first_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, ip)
);
