-- The PostgreSQL form of ../sqlite/20261207000012_user_environments.sql.
CREATE TABLE user_environments (
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    environment TEXT   NOT NULL,
    role        TEXT   CHECK (role IS NULL OR role IN ('viewer', 'operator', 'admin')),
    PRIMARY KEY (user_id, environment)
);
