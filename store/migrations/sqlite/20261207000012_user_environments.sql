-- Roles per environment: where a row exists, it overrides the user's role in that environment; a NULL role is
-- no access to it at all.
CREATE TABLE user_environments (
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    environment TEXT    NOT NULL,
    role        TEXT    CHECK (role IS NULL OR role IN ('viewer', 'operator', 'admin')),
    PRIMARY KEY (user_id, environment)
) WITHOUT ROWID;
