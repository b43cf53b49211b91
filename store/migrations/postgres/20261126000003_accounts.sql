-- The PostgreSQL form of ../sqlite/20261126000003_accounts.sql.
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT      NOT NULL UNIQUE,
    role          TEXT      NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT      NOT NULL,
    disabled      BOOLEAN   NOT NULL DEFAULT FALSE,
    created_ms    BIGINT    NOT NULL
);
CREATE TABLE sessions (
    token_hash BYTEA  PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    ip         TEXT   NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_ms);
CREATE TABLE api_tokens (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT      NOT NULL,
    token_hash BYTEA     NOT NULL UNIQUE,
    role       TEXT      NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_ms BIGINT    NOT NULL,
    revoked_ms BIGINT
);
CREATE TABLE login_addresses (
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ip       TEXT   NOT NULL,
    first_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, ip)
);
